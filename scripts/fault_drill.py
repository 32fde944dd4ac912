#!/usr/bin/env python
"""Fault drill: every `asr` command against bad audio, text, manifests, models and LMs.

Each bad input is written as a real file under a work folder; a tiny model is trained on 30
espeak-ng utterances (`asr train --size tiny`, under a minute on one core); then the real CLI
runs on each case as a subprocess with a timeout, and the case is classified:

- handled: exit 0 with the right output, or a non-zero exit with one `asr: error:` line that
  names the file (and line, for text files) and no traceback; batch commands finish and name
  every bad item;
- crashed: a traceback, an unexpected exit status, a wrong output, or an unclear message;
- hung: the command ran past its timeout (its process group is killed);
- data_lost: a partial output left behind, or an earlier good output changed or removed.

Prints a table (case, expected, outcome, detail) and, last, one JSON line
{"tried", "handled", "crashed", "hung", "data_lost"}; exits 1 unless every case was handled.

    python scripts/fault_drill.py [--only PATTERN] [--keep DIR] [--list] [--timeout S]

A case is `Case(name, expected, run)` in CASES: `run(drill)` returns an Outcome. Add cases with
`@case(name, expected)` or `CASES.append(Case(...))`; `Drill` gives them the work folder, the
model, speech and the `asr` runner; `refused`, `accepted` and `Guard` judge the results.
"""

from __future__ import annotations

import argparse
import fnmatch
import gzip
import hashlib
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path

import numpy as np
import soundfile
import soxr

RATE = 16000
TIMEOUT = 180.0  # seconds per command
LONG_TIMEOUT = 1500.0  # the 3-hour file
MAX_CER = 0.25  # "the words": character error rate of a transcript against the spoken text
SENTENCES = [
    "the cat sat on the mat", "a dog ran to the park", "she reads a good book",
    "we eat bread and jam", "open the red door", "my fish can swim",
    "the sun is hot today", "he has a big hat", "put the cup down", "birds sing at dawn",
]
LFS_POINTER = ("version https://git-lfs.github.com/spec/v1\n"
               "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
               "size 19572265\n")
LOG_PREFIXES = ("asr:", "INFO ", "WARNING ", "ERROR ", "DEBUG ", "decoding:")


# --- running commands -------------------------------------------------------------------

@dataclass
class Result:
    """A finished (or killed) command."""

    rc: int
    out: str
    err: str
    seconds: float
    timed_out: bool
    max_rss_mb: float

    @property
    def errors(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("asr: error:")]


def run_command(args: list[str], cwd: Path, timeout: float, during: Callable[[], bool] | None = None,
                env: dict | None = None) -> Result:
    """Run `args` in a process group of its own, killed after `timeout` s; `during()` is called
    every 20 ms while it runs (to change files under a running job) until it returns True."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen(args, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env)
        timed_out = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > timeout:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)
                _, status, usage = os.wait4(proc.pid, 0)
                break
            if during and during():
                during = None
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # workers it left behind
        except (ProcessLookupError, PermissionError):
            pass
        out.seek(0)
        err.seek(0)
        return Result(proc.returncode, out.read().decode(errors="replace"),
                      err.read().decode(errors="replace"), time.monotonic() - start, timed_out,
                      usage.ru_maxrss / 1024)


# --- outcomes -----------------------------------------------------------------------------

@dataclass
class Outcome:
    status: str  # handled, crashed, hung or data_lost
    detail: str = ""


@dataclass
class Case:
    name: str
    expected: str
    run: Callable[[Drill], Outcome]


CASES: list[Case] = []


def case(name: str, expected: str):
    """Register the decorated `run(drill) -> Outcome` as a case."""
    def register(run):
        CASES.append(Case(name, expected, run))
        return run
    return register


def handled(detail: str = "") -> Outcome:
    return Outcome("handled", detail)


def crashed(detail: str) -> Outcome:
    return Outcome("crashed", detail)


def broke(res: Result) -> Outcome | None:
    """Hung or crashed, whatever the case expected; None when the command ended normally."""
    if res.timed_out:
        return Outcome("hung", f"killed after {res.seconds:.0f} s")
    text = res.err + res.out
    if "Traceback (most recent call last)" in text:
        return crashed("traceback: " + [ln for ln in text.splitlines() if ln.strip()][-1][:200])
    if res.rc not in (0, 1, 2):
        return crashed(f"exit status {res.rc}: {_tail(res)}")
    return None


def _tail(res: Result) -> str:
    lines = [ln for ln in res.err.splitlines() if ln.strip()]
    return lines[-1][:200] if lines else "(no output)"


def _spills(res: Result, line: str) -> bool:
    """True when the line after `line` in stderr continues its message."""
    lines = res.err.splitlines()
    rest = lines[lines.index(line) + 1:]
    return bool(rest) and bool(rest[0].strip()) and not rest[0].startswith(LOG_PREFIXES)


def refused(res: Result, *names: str) -> Outcome:
    """Handled when the command stopped (exit 1 or 2) with an `asr: error:` line naming each of
    `names` (a file, `file:line`) on one line."""
    if bad := broke(res):
        return bad
    if res.rc == 0:
        return crashed("exit 0: the bad input was accepted")
    if not res.errors:
        return crashed(f"exit {res.rc} without an `asr: error:` line: {_tail(res)}")
    line = res.errors[0]
    missing = [n for n in names if n not in line]
    if missing:
        return crashed(f"does not name {', '.join(missing)}: {line[:200]}")
    if _spills(res, line):
        return crashed(f"the message runs over several lines: {line[:120]}")
    return handled(line[len("asr: error: "):][:160])


def accepted(res: Result, check: Callable[[], str | None] | None = None, detail: str = "",
             rc: int = 0) -> Outcome:
    """Handled when the command exited with `rc` (1: a batch run where some files failed) and
    `check()` finds no problem (returns None)."""
    if bad := broke(res):
        return bad
    if res.rc != rc:
        return crashed(f"exit {res.rc}: {(res.errors or [_tail(res)])[0][:200]}")
    problem = check() if check else None
    return crashed(problem) if problem else handled(detail or f"exit {rc} in {res.seconds:.1f} s")


TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}$")  # asr.atomic.atomic_path's temporary files


class Guard:
    """The files under `paths` before a command; `lost()` names those changed or removed since,
    and new files: atomic-write temporaries always, with `no_new` any but logs."""

    LOGS = ("*.log", "events.out.tfevents.*")  # a failed run may say why in its log

    def __init__(self, *paths: Path, no_new: bool = False):
        self.paths, self.no_new = paths, no_new
        self.before = self._files()

    def _files(self) -> dict[Path, str]:
        files = {}
        for path in self.paths:
            for f in [path] if path.is_file() else sorted(path.rglob("*")) if path.is_dir() else []:
                if f.is_file():
                    files[f] = hashlib.sha1(f.read_bytes()).hexdigest()
        return files

    def lost(self) -> str | None:
        after = self._files()
        changed = [f.name for f, digest in self.before.items() if after.get(f) != digest]
        is_log = lambda name: any(fnmatch.fnmatch(name, p) for p in self.LOGS)  # noqa: E731
        new = [f.name for f in after if f not in self.before
               and (TEMPORARY.match(f.name) or self.no_new and not is_log(f.name))]
        if changed or new:
            return (f"changed or removed: {', '.join(changed)}; " if changed else "") + \
                   (f"left behind: {', '.join(new)}" if new else "")
        return None


def guarded(outcome: Outcome, guard: Guard) -> Outcome:
    """`outcome`, or data_lost when `guard` finds a file changed, removed or left behind."""
    lost = guard.lost()
    return Outcome("data_lost", lost) if lost and outcome.status != "hung" else outcome


def cer(ref: str, hyp: str) -> float:
    """Character error rate of `hyp` against `ref` (normalised as training text)."""
    from asr.text import normalize

    ref, hyp = normalize(ref), normalize(hyp)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(1, len(ref))


# --- the work folder ----------------------------------------------------------------------

class Drill:
    """The work folder, the spoken corpus and model (made once, kept with --keep), and `asr`."""

    def __init__(self, root: Path, timeout: float = TIMEOUT):
        self.root, self.timeout = root, timeout

    def folder(self, name: str) -> Path:
        """An empty folder for a case."""
        path = self.root / "cases" / re.sub(r"[^\w.-]+", "_", name)
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def asr(self, *args, cwd: Path | None = None, timeout: float | None = None,
            during: Callable[[], bool] | None = None) -> Result:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        return run_command([sys.executable, "-m", "asr.cli", *map(str, args)], cwd or self.root,
                           timeout or self.timeout, during, env)

    @cached_property
    def corpus(self) -> Path:
        """A manifest of the ten sentences, each spoken by three espeak-ng voices."""
        manifest = self.root / "corpus" / "train.jsonl"
        if not manifest.is_file():
            from asr.corpora.common import Utterance, synthesize_splits
            from asr.tts import english_voices

            voices = english_voices(seed=1, n=3, rates=(160,), pitches=(50,))
            utts = [Utterance(f"u{i:02d}", text, text, voices[i % 3])
                    for i, text in enumerate(SENTENCES * 3)]
            synthesize_splits({"train": utts}, manifest.parent, jobs=1)
        return manifest

    @cached_property
    def rows(self) -> list[dict]:
        """The corpus rows, audio paths absolute."""
        rows = [json.loads(line) for line in self.corpus.read_text().splitlines()]
        return [{**r, "audio_filepath": str(self.corpus.parent / r["audio_filepath"])} for r in rows]

    @cached_property
    def model(self) -> Path:
        """A tiny model that knows the corpus (CER < 10 %), trained by `asr train`."""
        best = self.root / "model" / "best.pt"
        if not best.is_file():
            res = self.asr("train", "--train", self.corpus, "--dev", self.corpus, "--exp-dir",
                           best.parent, "--size", "tiny", "--epochs", 60, "--max-batch-seconds", 12,
                           "--lr", 4e-3, "--warmup-steps", 30, "--patience", 60, "--num-workers", 0,
                           "--dropout", 0, "--n-time-masks", 0, "--n-freq-masks", 0, timeout=900)
            if res.rc != 0 or not best.is_file():
                raise SystemExit(f"fault_drill: training the drill's model failed:\n{res.err[-3000:]}")
        return best

    @cached_property
    def exported(self) -> Path:
        """The model as an `asr export` folder."""
        folder = self.root / "model" / "exported"
        if not (folder / "config.json").is_file():
            res = self.asr("export", self.model, "--out", folder)
            if res.rc != 0:
                raise SystemExit(f"fault_drill: asr export failed:\n{res.err[-3000:]}")
        return folder

    @cached_property
    def lm(self) -> Path:
        """A bigram ARPA LM of the ten sentences."""
        arpa = self.root / "model" / "lm.arpa"
        if not arpa.is_file():
            text = self.root / "model" / "lm.txt"
            text.write_text("\n".join(SENTENCES) + "\n")
            res = self.asr("lm", "build", text, "--order", 2, "--out", arpa)
            if res.rc != 0:
                raise SystemExit(f"fault_drill: asr lm build failed:\n{res.err[-3000:]}")
        return arpa

    @cached_property
    def speech(self) -> tuple[np.ndarray, str]:
        """One utterance: 16 kHz mono samples and its words."""
        row = self.rows[0]
        return soundfile.read(row["audio_filepath"], dtype="float32")[0], row["text"]

    def recording(self, seconds: float) -> Path:
        """FLAC of the corpus's utterances read out again and again with pauses, `seconds` long,
        written block by block (cached in the work folder); its words are `recording_words`."""
        path = self.root / "long" / f"recording-{int(seconds)}s.flac"
        if not path.is_file():
            path.parent.mkdir(exist_ok=True)
            tile = self._tile()
            with soundfile.SoundFile(path.with_suffix(".part"), "w", RATE, 1, "PCM_16", format="FLAC") as f:
                for _ in range(int(seconds * RATE) // len(tile)):
                    f.write(tile)
            path.with_suffix(".part").rename(path)
        return path

    def recording_words(self, seconds: float) -> int:
        words = sum(len(r["text"].split()) for r in self.rows)
        return words * (int(seconds * RATE) // len(self._tile()))

    def _tile(self) -> np.ndarray:
        """The corpus's utterances with 0.8 s of -70 dBFS noise between them, each starting on
        the model's frame grid (640 samples), as the model heard them."""
        rng = np.random.default_rng(0)
        parts, at = [], 0
        for row in self.rows:
            gap = int(0.8 * RATE)
            gap += -(at + gap) % 640
            wave = soundfile.read(row["audio_filepath"], dtype="float32")[0]
            parts += [(3e-4 * rng.standard_normal(gap)).astype(np.float32), wave]
            at += gap + len(wave)
        parts.append(np.zeros(-at % 640, np.float32))
        return np.concatenate(parts)


# --- bad audio ----------------------------------------------------------------------------

@dataclass(frozen=True)
class AudioKind:
    """A kind of audio file and what every command should make of it."""

    name: str  # the file's name (unique stems: `asr prepare folder` pairs them with .txt files)
    want: str  # refused, words (the spoken words, CER <= MAX_CER), same (the words of the same
    #            samples read from a float WAV), transcribed (exit 0, any words), silent (exit 0,
    #            no words) or either (transcribed or refused)
    write: Callable[[Path, np.ndarray], None]  # (path, 16 kHz mono speech)
    header_bad: bool = False  # refused from its header alone (`asr prepare`, `--report`)

    @property
    def expected(self) -> str:
        return {"refused": "one-line refusal naming the file", "words": f"the words (CER <= {MAX_CER:.0%})",
                "same": "the transcript of its samples as float",
                "transcribed": "a transcript (exit 0)", "silent": "an empty transcript (exit 0)",
                "either": "a transcript or a one-line refusal"}[self.want]


def _sound(rate: int = RATE, subtype: str = "PCM_16", channels: int = 1, fmt: str | None = None,
           gain: float = 1.0, live: int | None = None, special: float | None = None):
    """A writer of the speech at `rate` Hz in `channels` channels (every one, or only `live`),
    times `gain` and clipped, with one sample set to `special` (nan, inf)."""
    def write(path: Path, wave: np.ndarray) -> None:
        wave = soxr.resample(wave, RATE, rate).astype(np.float64) if rate != RATE else wave.astype(np.float64)
        wave = np.clip(wave * gain, -1.0, 1.0)
        if special is not None:
            wave[len(wave) // 2] = special
        data = np.zeros((len(wave), channels))
        if live is None:
            data[:] = wave[:, None]
        else:
            data[:, live] = wave
        soundfile.write(path, data, rate, subtype=subtype, format=fmt)
    return write


def _samples(n: int, value: float = 0.0):
    return lambda path, wave: soundfile.write(path, np.full(n, value, np.float32), RATE, subtype="PCM_16")


def _cut(keep: float):
    """The speech as a WAV, cut after `keep` bytes (a fraction of the file when < 1)."""
    def write(path: Path, wave: np.ndarray) -> None:
        soundfile.write(path, wave, RATE, subtype="PCM_16")
        data = path.read_bytes()
        path.write_bytes(data[:int(keep * len(data)) if keep < 1 else int(keep)])
    return write


def _bytes(data: bytes):
    return lambda path, wave: path.write_bytes(data)


def _m4a(path: Path, wave: np.ndarray) -> None:
    wav = path.with_suffix(".tmp.wav")
    soundfile.write(wav, wave, RATE)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), "-c:a", "aac", str(path)], check=True)
    wav.unlink()


_NOISE = np.random.default_rng(7).bytes(48000)
AUDIO_KINDS = [
    AudioKind("zero-length.wav", "refused", _bytes(b""), header_bad=True),
    AudioKind("no-samples.wav", "refused", _samples(0), header_bad=True),
    AudioKind("header-cut.wav", "refused", _cut(20), header_bad=True),
    AudioKind("data-cut.wav", "either", _cut(0.5)),
    AudioKind("random-wav.wav", "refused", _bytes(_NOISE), header_bad=True),
    AudioKind("random-flac.flac", "refused", _bytes(_NOISE), header_bad=True),
    AudioKind("random-mp3.mp3", "refused", _bytes(_NOISE), header_bad=True),
    AudioKind("random-ogg.ogg", "refused", _bytes(_NOISE), header_bad=True),
    AudioKind("random-m4a.m4a", "refused", _bytes(_NOISE), header_bad=True),
    AudioKind("text-as-wav.wav", "refused", _bytes(b"these are words, not sound\n" * 50), header_bad=True),
    AudioKind("nan.wav", "refused", _sound(subtype="FLOAT", special=float("nan"))),
    AudioKind("inf.wav", "refused", _sound(subtype="FLOAT", special=float("inf"))),
    AudioKind("one-sample.wav", "silent", _samples(1, 0.5)),
    AudioKind("silence.wav", "silent", _samples(3 * RATE)),
    AudioKind("rate-1k.wav", "refused", _sound(rate=1000), header_bad=True),
    AudioKind("rate-8k.wav", "transcribed", _sound(rate=8000)),
    AudioKind("rate-44k1.wav", "words", _sound(rate=44100)),
    AudioKind("rate-192k.wav", "words", _sound(rate=192000)),
    *[AudioKind(f"channels-{n}.wav", "words", _sound(channels=n)) for n in range(2, 9)],
    AudioKind("channels-8-one-live.wav", "transcribed", _sound(channels=8, live=0)),
    AudioKind("pcm-u8.wav", "same", _sound(subtype="PCM_U8")),
    AudioKind("pcm-s8.aiff", "same", _sound(subtype="PCM_S8", fmt="AIFF")),
    AudioKind("pcm-24.wav", "words", _sound(subtype="PCM_24")),
    AudioKind("pcm-32.wav", "words", _sound(subtype="PCM_32")),
    AudioKind("float64.wav", "words", _sound(subtype="DOUBLE")),
    AudioKind("clipped.wav", "transcribed", _sound(gain=30.0)),
    *([AudioKind("speech-aac.m4a", "words", _m4a)] if shutil.which("ffmpeg") else []),
]


def write_kinds(folder: Path, wave: np.ndarray, text: str) -> dict[str, Path]:
    """Every AudioKind in `folder`, each with its transcript beside it; {stem: path}."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for kind in AUDIO_KINDS:
        path = folder / kind.name
        kind.write(path, wave)
        path.with_suffix(".txt").write_text(text + "\n")
        paths[path.stem] = path
    return paths


def judge_audio(kind: AudioKind, res: Result, text: str, ref: str) -> Outcome:
    """A command's outcome on one file of `kind` (`text`: its transcript when it ran)."""
    if kind.want == "refused" or (kind.want == "either" and res.rc != 0):
        return refused(res, kind.name)
    if kind.want == "silent":
        return accepted(res, lambda: f"expected no words, got {text!r}" if text.strip() else None)
    rate = cer(ref, text)
    if kind.want == "words":
        return accepted(res, lambda: f"CER {rate:.0%}: {text!r}" if rate > MAX_CER else None,
                        f"CER {rate:.0%}")
    return accepted(res, detail=f"CER {rate:.0%}: {text[:60]!r}")


def _transcribe_one(kind: AudioKind, drill: Drill) -> Outcome:
    path = drill.folder(f"transcribe-{kind.name}") / kind.name
    wave, text = drill.speech
    kind.write(path, wave)
    if kind.want != "same":
        res = drill.asr("transcribe", "--model", drill.model, path)
        return judge_audio(kind, res, res.out.strip(), text)
    twin = path.with_name(f"{path.stem}-float.wav")  # the samples as read, as 32-bit floats
    samples, rate = soundfile.read(path, dtype="float64")
    soundfile.write(twin, samples, rate, subtype="FLOAT")
    res = drill.asr("transcribe", "--model", drill.model, path, twin)
    texts = dict(line.split(": ", 1) if ": " in line else (line.rstrip(":"), "")
                 for line in res.out.splitlines())
    same = texts.get(path.stem) == texts.get(twin.stem) is not None
    return accepted(res, lambda: None if same else f"{texts}", f"{texts.get(path.stem)!r} both")


for _kind in AUDIO_KINDS:
    CASES.append(Case(f"audio/transcribe/{_kind.name}", _kind.expected, partial(_transcribe_one, _kind)))


def _kinds_manifest(drill: Drill, folder: Path) -> tuple[Path, dict[str, Path]]:
    """Every kind of audio in folder/audio and a manifest of them (duration and text of the
    speech)."""
    wave, text = drill.speech
    paths = write_kinds(folder / "audio", wave, text)
    manifest = folder / "kinds.jsonl"
    manifest.write_text("".join(json.dumps({"id": stem, "audio_filepath": f"audio/{p.name}",
                                            "duration": round(len(wave) / RATE, 3), "text": text}) + "\n"
                                for stem, p in paths.items()))
    return manifest, paths


def _kind_problems(listed: Callable[[AudioKind, Path], bool], paths: dict[str, Path],
                   judge: Callable[[AudioKind, str], str | None]) -> list[str]:
    """Problems over all kinds: a refused kind not `listed`, or `judge(kind, stem)`'s."""
    problems = []
    for kind in AUDIO_KINDS:
        stem = Path(kind.name).stem
        if kind.want == "refused" and not listed(kind, paths[stem]):
            problems.append(f"{kind.name} not listed")
        elif kind.want != "refused" and (problem := judge(kind, stem)):
            problems.append(problem)
    return problems


def _judge_text(kind: AudioKind, text: str | None, ref: str, vad: bool = True) -> str | None:
    """What is wrong with `text` (None: no result) for a kind that is not refused; without a
    `vad` (asr decode runs the model on the whole utterance) silence may give a few letters."""
    if text is None:
        return None if kind.want == "either" else f"{kind.name}: no result"
    if kind.want == "silent" and vad and text.strip():
        return f"{kind.name}: words in silence: {text!r}"
    if kind.want == "words" and cer(ref, text) > MAX_CER:
        return f"{kind.name}: CER {cer(ref, text):.0%}"
    return None


def _problems(problems: list[str], res: Result, detail: str, rc: int = 0) -> Outcome:
    return accepted(res, lambda: "; ".join(problems)[:300] if problems else None, detail, rc)


@case("audio/transcribe-folder", "finishes; the ledger lists every bad file as failed, naming it; "
      "the rest transcribed")
def _transcribe_folder(drill: Drill) -> Outcome:
    folder = drill.folder("transcribe-folder")
    _, paths = _kinds_manifest(drill, folder)
    out = folder / "out"
    res = drill.asr("transcribe", "--model", drill.model, folder / "audio", "-o", out, "--format", "json")
    if bad := broke(res):
        return bad
    ledger = {row["id"]: row for row in _jsonl(out / "ledger.jsonl")}
    ref = drill.speech[1]

    def listed(kind, path):
        row = ledger.get(path.stem, {})
        return row.get("status") == "failed" and path.name in row.get("error", "") and path.name in res.err

    def judge(kind, stem):
        row = ledger.get(stem)
        if row and row["status"] == "failed":
            return None if kind.want == "either" else f"{stem} failed: {row['error'][:80]}"
        return _judge_text(kind, row and row["text"], ref)

    problems = _kind_problems(listed, paths, judge)
    failed = sum(r["status"] == "failed" for r in ledger.values())
    return _problems(problems, res, f"{len(ledger)} in the ledger, {failed} failed", rc=1)


def _warned(res: Result, kind: AudioKind, path: Path) -> bool:
    """A warning line names the utterance and its file."""
    return any(path.stem in line and path.name in line for line in res.err.splitlines()
               if line.startswith("WARNING"))


@case("audio/decode-manifest", "finishes; a warning names each bad file; the rest decoded")
def _decode_kinds(drill: Drill) -> Outcome:
    folder = drill.folder("decode-manifest")
    manifest, paths = _kinds_manifest(drill, folder)
    res = drill.asr("decode", "--model", drill.model, "--manifest", manifest, "--out", folder / "hyps.jsonl")
    if bad := broke(res):
        return bad
    hyps = {r["id"]: r["text"] for r in _jsonl(folder / "hyps.jsonl")}
    ref = drill.speech[1]
    problems = _kind_problems(lambda k, p: _warned(res, k, p) and p.stem not in hyps, paths,
                              lambda k, stem: _judge_text(k, hyps.get(stem), ref, vad=False))
    return _problems(problems, res, f"{len(hyps)} hypotheses")


@case("audio/train-manifest", "training finishes; a warning names each bad file")
def _train_kinds(drill: Drill) -> Outcome:
    folder = drill.folder("train-manifest")
    manifest, paths = _kinds_manifest(drill, folder)
    with manifest.open("a") as f:
        f.writelines(json.dumps(r) + "\n" for r in drill.rows)
    res = drill.asr("train", "--train", manifest, "--dev", drill.corpus, "--exp-dir", folder / "exp",
                    "--size", "tiny", "--epochs", 1, "--num-workers", 0, "--max-batch-seconds", 12)
    problems = _kind_problems(lambda k, p: _warned(res, k, p), paths, lambda k, stem: None)
    if not (folder / "exp" / "best.pt").is_file():
        problems.append("no best.pt")
    return _problems(problems, res, "trained one epoch")


@case("audio/benchmark", "finishes; benchmark.json lists each bad file as skipped")
def _benchmark_kinds(drill: Drill) -> Outcome:
    folder = drill.folder("benchmark")
    manifest, paths = _kinds_manifest(drill, folder)
    res = drill.asr("benchmark", "--models", drill.model, "--sets", manifest, "--decoders", "greedy",
                    "--out-dir", folder / "out")
    if bad := broke(res):
        return bad
    rows = json.loads((folder / "out" / "benchmark.json").read_text())["rows"] \
        if (folder / "out" / "benchmark.json").is_file() else [{}]
    skipped = set(rows[0].get("skipped_ids", []))
    problems = _kind_problems(lambda k, p: p.stem in skipped and _warned(res, k, p), paths,
                              lambda k, stem: f"{stem} skipped" if stem in skipped and k.want != "either"
                              else None)
    return _problems(problems, res, f"{len(skipped)} skipped")


@case("audio/prepare-folder", "a manifest of the readable files; a warning names each unreadable one")
def _prepare_kinds(drill: Drill) -> Outcome:
    folder = drill.folder("prepare-folder")
    wave, text = drill.speech
    paths = write_kinds(folder / "audio", wave, text)
    res = drill.asr("prepare", "folder", folder / "audio", "--out", folder / "out")
    rows = {r["id"]: r for r in _jsonl(folder / "out" / "all.jsonl")}
    problems = [f"{k.name}: {'kept' if k.header_bad else 'left out'}" for k in AUDIO_KINDS
                if (Path(k.name).stem in rows) == k.header_bad]
    problems += [f"{k.name} not named" for k in AUDIO_KINDS
                 if k.header_bad and not _warned(res, k, paths[Path(k.name).stem])]
    return _problems(problems, res, f"{len(rows)} rows")


@case("audio/prepare-report", "the report lists every file whose header is unreadable")
def _report_kinds(drill: Drill) -> Outcome:
    folder = drill.folder("prepare-report")
    manifest, _ = _kinds_manifest(drill, folder)
    res = drill.asr("prepare", "--report", manifest, "--json", "--model", drill.model)

    def check():
        report = json.loads(res.out.splitlines()[-1])
        named = set(report.get("missing", [])) | {u["id"] for u in report.get("unreadable", [])}
        missed = [k.name for k in AUDIO_KINDS if k.header_bad and Path(k.name).stem not in named]
        return f"not listed: {', '.join(missed)}" if missed else None
    return accepted(res, check)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


# --- files that vanish or turn unreadable while a job runs ----------------------------------

def _spoil(path: Path, how: str) -> None:
    """Make `path` go away or unreadable: deleted, a folder, empty, a dangling link, mode 000."""
    if how == "unreadable" and os.geteuid() == 0:  # root reads mode-000 files: a dangling link
        how = "dangling-link"
    if how == "unreadable":
        path.chmod(0)
        return
    path.unlink()
    if how == "folder":
        path.mkdir()
    elif how == "emptied":
        path.write_bytes(b"")
    elif how == "dangling-link":
        path.symlink_to(path.with_name("gone.wav"))


def _vanish_transcribe(how: str, drill: Drill) -> Outcome:
    """A folder run: a 10-minute recording goes first; the victim is spoiled once the job has
    listed the files (its ledger is open) and before it reaches the victim."""
    folder = drill.folder(f"vanish-transcribe-{how}")
    audio = folder / "audio"
    audio.mkdir()
    shutil.copy(drill.recording(600), audio / "long.flac")
    wave, text = drill.speech
    victim, good = audio / "victim.wav", audio / "good.wav"
    for path in (victim, good):
        soundfile.write(path, wave, RATE)
    out = folder / "out"

    def spoil_when_listed() -> bool:
        if (out / ".ledger.rank0.jsonl").exists():
            _spoil(victim, how)
            return True
        return False

    res = drill.asr("transcribe", "--model", drill.model, audio, "-o", out, "--format", "txt",
                    during=spoil_when_listed)
    if victim.exists() and how == "unreadable":
        victim.chmod(0o644)
    if bad := broke(res):
        return bad
    ledger = {r["id"]: r for r in _jsonl(out / "ledger.jsonl")}
    problems = []
    row = ledger.get("victim", {})
    if row.get("status") != "failed" or "victim.wav" not in row.get("error", ""):
        problems.append(f"victim: {row}")
    for stem in ("long", "good"):
        if ledger.get(stem, {}).get("status") != "done":
            problems.append(f"{stem}: {ledger.get(stem)}")
    return _problems(problems, res, row.get("error", "")[:120], rc=1)


for _how in ("deleted", "folder", "emptied", "unreadable"):
    CASES.append(Case(f"vanish/transcribe-{_how}", "the run finishes; the ledger names the file as failed",
                      partial(_vanish_transcribe, _how)))


@case("vanish/train-deleted", "training goes on; a warning names the file in each later epoch")
def _vanish_train(drill: Drill) -> Outcome:
    folder = drill.folder("vanish-train")
    victim = folder / "victim.wav"
    shutil.copy(drill.rows[0]["audio_filepath"], victim)
    rows = drill.rows * 3 + [{**drill.rows[0], "id": "victim", "audio_filepath": str(victim)}]
    manifest = folder / "train.jsonl"
    manifest.write_text("".join(json.dumps({**r, "id": f"{r['id']}-{i}" if r["id"] != "victim" else "victim"})
                                + "\n" for i, r in enumerate(rows)))
    exp = folder / "exp"

    def delete_after_epoch_1() -> bool:
        if (exp / "epoch-1.pt").exists():
            victim.unlink()
            return True
        return False

    res = drill.asr("train", "--train", manifest, "--dev", drill.corpus, "--exp-dir", exp, "--size",
                    "tiny", "--epochs", 3, "--num-workers", 0, "--max-batch-seconds", 12,
                    during=delete_after_epoch_1)
    named = [ln for ln in res.err.splitlines() if "victim" in ln and ln.startswith("WARNING")]
    return accepted(res, lambda: None if named and not victim.exists() else "the vanished file is not named",
                    named[0][:150] if named else "")


# --- a 3-hour recording -------------------------------------------------------------------

@case("long/transcribe-3h", "transcribed to its end; memory as for a 10-minute file (+ < 300 MB)")
def _long_transcribe(drill: Drill) -> Outcome:
    folder = drill.folder("long-transcribe")
    short = drill.asr("transcribe", "--model", drill.model, drill.recording(600), "-o", folder / "10min",
                      "--format", "json")
    if short.rc != 0:
        return accepted(short)
    seconds = 3 * 3600
    res = drill.asr("transcribe", "--model", drill.model, drill.recording(seconds), "-o", folder / "3h",
                    "--format", "json", timeout=LONG_TIMEOUT)

    def check():
        result = json.loads(next((folder / "3h").glob("*.json")).read_text())
        words, expected = len(result["text"].split()), drill.recording_words(seconds)
        end = result["segments"][-1]["end"] if result["segments"] else 0
        if not 0.85 <= words / expected <= 1.15:
            return f"{words} words, {expected} spoken"
        if end < result["duration"] - 120:
            return f"the transcript ends at {end:.0f} s of {result['duration']:.0f} s"
        if res.max_rss_mb > short.max_rss_mb + 300:
            return f"peak memory {res.max_rss_mb:.0f} MB, {short.max_rss_mb:.0f} MB for 10 minutes"
        return None
    return accepted(res, check, f"{res.seconds:.0f} s, peak {res.max_rss_mb:.0f} MB "
                                f"(10 min: {short.max_rss_mb:.0f} MB)")


def _long_manifest(drill: Drill, folder: Path) -> Path:
    path = drill.recording(3 * 3600)
    info = soundfile.info(path)
    rows = [{"id": "three-hours", "audio_filepath": str(path), "duration": info.frames / info.samplerate,
             "text": "words"}, *drill.rows[:2]]
    manifest = folder / "long.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


@case("long/decode-3h", "the others decoded; the 3-hour one decoded in bounded memory, or skipped "
      "with a warning naming it")
def _long_decode(drill: Drill) -> Outcome:
    folder = drill.folder("long-decode")
    manifest = _long_manifest(drill, folder)
    res = drill.asr("decode", "--model", drill.model, "--manifest", manifest, "--out", folder / "hyps.jsonl",
                    timeout=LONG_TIMEOUT)

    def check():
        hyps = {r["id"] for r in _jsonl(folder / "hyps.jsonl")}
        if not {r["id"] for r in drill.rows[:2]} <= hyps:
            return "the short utterances were not decoded"
        if "three-hours" not in hyps and not any("three-hours" in ln for ln in res.err.splitlines()
                                                 if ln.startswith("WARNING")):
            return "the 3-hour utterance is neither decoded nor named"
        if res.max_rss_mb > 3000:
            return f"peak memory {res.max_rss_mb:.0f} MB"
        return None
    return accepted(res, check, f"{res.seconds:.0f} s, peak {res.max_rss_mb:.0f} MB")


@case("long/train-3h", "training skips the 3-hour utterance naming it, or refuses naming it")
def _long_train(drill: Drill) -> Outcome:
    folder = drill.folder("long-train")
    manifest = _long_manifest(drill, folder)
    with manifest.open("a") as f:
        f.writelines(json.dumps({**r, "id": f"{r['id']}-b"}) + "\n" for r in drill.rows)
    res = drill.asr("train", "--train", manifest, "--dev", drill.corpus, "--exp-dir", folder / "exp",
                    "--size", "tiny", "--epochs", 1, "--num-workers", 0, "--max-batch-seconds", 12)
    if res.rc != 0:
        return refused(res, "three-hours")
    named = any("three-hours" in ln for ln in res.err.splitlines() if ln.startswith("WARNING"))
    return accepted(res, lambda: None if named else "the 3-hour utterance is not named")


# --- bad text -----------------------------------------------------------------------------

BAD_TEXTS = {  # id: transcript
    "t-empty": "", "t-outside-vocabulary": "привет мир", "t-emoji": "😀🎉🚀", "t-punctuation": "?!... -- ;;",
    "t-too-long": "abcdefghijklmnopqrstuvwxyz " * 20, "t-digits-5000": "7" * 5000,
    "t-control": "\x00\x07\x1b",
}
FINE_TEXTS = {"t-digits": "42 and 7", "t-accents": "naïve café déjà vu"}


def _text_manifest(drill: Drill, folder: Path, texts: dict[str, str]) -> Path:
    audio = drill.rows[0]["audio_filepath"]
    manifest = folder / "texts.jsonl"
    rows = [{"id": i, "audio_filepath": audio, "duration": drill.rows[0]["duration"], "text": t}
            for i, t in texts.items()]
    manifest.write_text(_lines(rows))
    return manifest


@case("text/train", "training finishes; a warning names each utterance it cannot use")
def _train_texts(drill: Drill) -> Outcome:
    folder = drill.folder("text-train")
    manifest = _text_manifest(drill, folder, {**BAD_TEXTS, **FINE_TEXTS})
    with manifest.open("a") as f:
        f.writelines(json.dumps(r) + "\n" for r in drill.rows)
    res = drill.asr("train", "--train", manifest, "--dev", drill.corpus, "--exp-dir", folder / "exp",
                    "--size", "tiny", "--epochs", 1, "--num-workers", 0, "--max-batch-seconds", 12)
    warnings = "\n".join(ln for ln in res.err.splitlines() if ln.startswith("WARNING"))
    missed = [i for i in BAD_TEXTS if not re.search(rf"(?<![\w-]){i}(?![\w-])", warnings)]
    return accepted(res, lambda: f"not named: {', '.join(missed)}" if missed else None)


@case("text/decode", "decoded; bad reference text does not matter")
def _decode_texts(drill: Drill) -> Outcome:
    folder = drill.folder("text-decode")
    manifest = _text_manifest(drill, folder, {**BAD_TEXTS, **FINE_TEXTS})
    res = drill.asr("decode", "--model", drill.model, "--manifest", manifest, "--out", folder / "hyps.jsonl")
    hyps = {r["id"] for r in _jsonl(folder / "hyps.jsonl")}
    missing = (set(BAD_TEXTS) | set(FINE_TEXTS)) - hyps
    return accepted(res, lambda: f"no hypothesis for {sorted(missing)}" if missing else None)


@case("text/score", "scored; empty, emoji and punctuation-only texts count as no words")
def _score_texts(drill: Drill) -> Outcome:
    folder = drill.folder("text-score")
    refs = {**BAD_TEXTS, **FINE_TEXTS, "ok": "the cat sat on the mat"}
    hyps = {i: t for i, t in zip(refs, [*reversed(BAD_TEXTS.values()), "x", "", "the cat sat"])}
    for name, texts in (("ref", refs), ("hyp", hyps)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps({"id": i, "text": t}, ensure_ascii=False)
                                                      + "\n" for i, t in texts.items()))
    res = drill.asr("score", folder / "ref.jsonl", folder / "hyp.jsonl", "--json")
    return accepted(res, lambda: None if '"wer"' in res.out else "no WER printed")


@case("text/score-all-empty", "refused: no reference words, naming the reference file")
def _score_empty(drill: Drill) -> Outcome:
    folder = drill.folder("text-score-empty")
    (folder / "ref.jsonl").write_text('{"id": "a", "text": ""}\n{"id": "b", "text": "😀"}\n')
    (folder / "hyp.jsonl").write_text('{"id": "a", "text": "x"}\n')
    return refused(drill.asr("score", folder / "ref.jsonl", folder / "hyp.jsonl"), "ref.jsonl")


@case("text/lm-build-and-ppl", "an ARPA LM from the usable lines; perplexity of the bad ones")
def _lm_texts(drill: Drill) -> Outcome:
    folder = drill.folder("text-lm")
    text = folder / "text.txt"
    text.write_text("\n".join([*BAD_TEXTS.values(), *FINE_TEXTS.values(), *SENTENCES, "", "word " * 20000])
                    + "\n")
    res = drill.asr("lm", "build", text, "--order", 3, "--out", folder / "lm.arpa")
    if res.rc != 0 or broke(res):
        return accepted(res)
    return accepted(drill.asr("lm", "ppl", folder / "lm.arpa", text, "--json"))


@case("text/prepare-report", "the report lists the utterances CTC cannot align")
def _report_texts(drill: Drill) -> Outcome:
    folder = drill.folder("text-report")
    manifest = _text_manifest(drill, folder, {**BAD_TEXTS, **FINE_TEXTS})
    res = drill.asr("prepare", "--report", manifest, "--json", "--model", drill.model)

    def check():
        report = json.loads(res.out.splitlines()[-1])
        return None if "t-too-long" in json.dumps(report) else "t-too-long not listed"
    return accepted(res, check)


@case("text/prepare-folder", "transcripts in other encodings named and left out; a UTF-8 BOM read")
def _prepare_texts(drill: Drill) -> Outcome:
    folder = drill.folder("text-prepare-folder")
    audio = folder / "audio"
    audio.mkdir()
    texts = {"latin-1": "café au lait".encode("latin-1"), "utf-16": "hello world".encode("utf-16"),
             "bom": "\ufeffhello world".encode(), "empty": b"", "emoji": "😀".encode()}
    for name, data in texts.items():
        shutil.copy(drill.rows[0]["audio_filepath"], audio / f"{name}.wav")
        (audio / f"{name}.txt").write_bytes(data)
    res = drill.asr("prepare", "folder", audio, "--out", folder / "out")
    rows = {r["id"]: r for r in _jsonl(folder / "out" / "all.jsonl")}

    def check():
        problems = [f"{n}.txt not named" for n in ("latin-1", "utf-16")
                    if not any(f"{n}.txt" in ln for ln in res.err.splitlines() if ln.startswith("WARNING"))]
        if rows.get("bom", {}).get("text") != "hello world":
            problems.append(f"bom: {rows.get('bom')}")
        return "; ".join(problems) or None
    return accepted(res, check)


@case("text/lm-build-empty", "refused: too little text, naming the file")
def _lm_empty(drill: Drill) -> Outcome:
    folder = drill.folder("text-lm-empty")
    (folder / "text.txt").write_text("\n\n?!\n😀\n")
    return refused(drill.asr("lm", "build", folder / "text.txt", "--out", folder / "lm.arpa"), "text.txt")


# --- output paths that cannot be written ---------------------------------------------------

def _blocked_output(command: str, drill: Drill) -> Outcome:
    """--out names a folder where a file goes, or a file where a folder goes."""
    folder = drill.folder(f"output-{command}")
    manifest = _text_manifest(drill, folder, {"a": "the cat sat on the mat"})
    blocked = folder / ("out.jsonl" if command == "decode" else "out")
    blocked.mkdir() if command == "decode" else blocked.write_text("a file in the way\n")
    args = {"decode": ["decode", "--model", drill.model, "--manifest", manifest, "--out", blocked],
            "transcribe": ["transcribe", "--model", drill.model, manifest, "-o", blocked],
            "export": ["export", drill.model, "--out", blocked],
            "benchmark": ["benchmark", "--models", drill.model, "--sets", manifest, "--out-dir", blocked],
            "prepare": ["prepare", "nemo", manifest, "--out", blocked]}[command]
    guard = Guard(folder)
    return guarded(refused(drill.asr(*args), blocked.name), guard)


for _command in ("decode", "transcribe", "export", "benchmark", "prepare"):
    CASES.append(Case(f"output/{_command}-blocked", "refused in one line naming the output path",
                      partial(_blocked_output, _command)))


# --- bad manifests and transcript files ----------------------------------------------------

def _good_rows(drill: Drill) -> list[dict]:
    return [{k: r[k] for k in ("id", "audio_filepath", "duration", "text")} for r in drill.rows[:3]]


def _lines(rows: list) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows)


MANIFEST_DEFECTS = {  # name: (what is wrong, the line named, rows -> file bytes)
    "missing-fields": (2, lambda rows: _lines([rows[0], {"id": "x", "duration": 1.0}, rows[2]]).encode()),
    "duplicate-id": (3, lambda rows: _lines([*rows[:2], {**rows[2], "id": rows[0]["id"]}]).encode()),
    "not-json": (2, lambda rows: _lines([rows[0], '{"id": "x", "text": oops', rows[2]]).encode()),
    "json-null": (2, lambda rows: _lines([rows[0], "null", rows[2]]).encode()),
    "json-list": (2, lambda rows: _lines([rows[0], "[1, 2]", rows[2]]).encode()),
    "wrong-types": (2, lambda rows: _lines([rows[0], {**rows[1], "audio_filepath": 17, "text": 3}, rows[2]])
                    .encode()),
    "latin-1": (2, lambda rows: _lines([rows[0], {**rows[1], "text": "café"}, rows[2]]).encode("latin-1")),
    "utf-16": (1, lambda rows: _lines(rows).encode("utf-16")),
}
MANIFEST_FINE = {  # accepted as they are
    "utf-8-bom": lambda rows: b"\xef\xbb\xbf" + _lines(rows).encode(),
    "blank-lines": lambda rows: ("\n\n" + _lines(rows).replace("\n", "\n\n")).encode(),
}


def _manifest_command(drill: Drill, command: str, manifest: Path, folder: Path) -> Result:
    """Run `command` on `manifest`; its outputs go under `folder`."""
    model, hyps = drill.model, folder / "out" / "hyps.jsonl"
    args = {
        "decode": ["decode", "--model", model, "--manifest", manifest, "--out", hyps],
        "train": ["train", "--train", manifest, "--dev", drill.corpus, "--exp-dir", folder / "out" / "exp",
                  "--size", "tiny", "--epochs", 1, "--num-workers", 0, "--max-batch-seconds", 12],
        "transcribe": ["transcribe", "--model", model, manifest, "-o", folder / "out", "--format", "txt"],
        "score": ["score", manifest, manifest],
        "report": ["prepare", "--report", manifest, "--json"],
        "benchmark": ["benchmark", "--models", model, "--sets", manifest, "--decoders", "greedy",
                      "--out-dir", folder / "out"],
        "tune-lm": ["tune-lm", "--model", model, "--manifest", manifest, "--lm", drill.lm, "--no-save",
                    "--alphas", 0.5, "--betas", 0],
        "combine": ["combine", folder / "out" / "combined.jsonl", manifest],
    }[command]
    return drill.asr(*args)


MANIFEST_COMMANDS = ("decode", "train", "transcribe", "score", "report", "benchmark", "tune-lm", "combine")


def _bad_manifest(defect: str, command: str, drill: Drill) -> Outcome:
    folder = drill.folder(f"manifest-{defect}-{command}")
    line, write = MANIFEST_DEFECTS[defect]
    manifest = folder / f"{defect}.jsonl"
    manifest.write_bytes(write(_good_rows(drill)))
    (folder / "out").mkdir()
    (folder / "out" / "earlier.txt").write_text("an earlier good output\n")
    guard = Guard(folder / "out", no_new=True)
    res = _manifest_command(drill, command, manifest, folder)
    named = f"{manifest.name}:{line}"
    if command == "transcribe" and defect == "wrong-types":
        named = manifest.name
    return guarded(refused(res, named), guard)


def _fine_manifest(defect: str, command: str, drill: Drill) -> Outcome:
    folder = drill.folder(f"manifest-{defect}-{command}")
    manifest = folder / f"{defect}.jsonl"
    manifest.write_bytes(MANIFEST_FINE[defect](_good_rows(drill)))
    return accepted(_manifest_command(drill, command, manifest, folder))


for _defect, (_line, _) in MANIFEST_DEFECTS.items():
    for _command in MANIFEST_COMMANDS:
        if _command == "transcribe" and _defect == "missing-fields":  # needs audio_filepath only
            continue
        CASES.append(Case(f"manifest/{_defect}/{_command}", f"refused naming the file and line {_line}",
                          partial(_bad_manifest, _defect, _command)))
for _defect in MANIFEST_FINE:
    for _command in ("decode", "score", "transcribe", "report"):
        CASES.append(Case(f"manifest/{_defect}/{_command}", "accepted",
                          partial(_fine_manifest, _defect, _command)))


@case("manifest/missing-audio/decode", "decoded; a warning names the missing file")
def _missing_audio(drill: Drill) -> Outcome:
    folder = drill.folder("manifest-missing-audio")
    rows = _good_rows(drill)
    rows[1] = {**rows[1], "id": "gone", "audio_filepath": str(folder / "gone.wav")}
    manifest = folder / "m.jsonl"
    manifest.write_text(_lines(rows))
    res = drill.asr("decode", "--model", drill.model, "--manifest", manifest, "--out", folder / "h.jsonl")
    named = any("gone.wav" in ln for ln in res.err.splitlines() if ln.startswith("WARNING"))
    hyps = {r["id"] for r in _jsonl(folder / "h.jsonl")}
    return accepted(res, lambda: None if named and hyps == {rows[0]["id"], rows[2]["id"]}
                    else f"named {named}, hypotheses {sorted(hyps)}")


@case("manifest/empty/decode", "refused (nothing to decode) or an empty output")
def _empty_manifest(drill: Drill) -> Outcome:
    folder = drill.folder("manifest-empty")
    (folder / "m.jsonl").write_text("")
    res = drill.asr("decode", "--model", drill.model, "--manifest", folder / "m.jsonl",
                    "--out", folder / "h.jsonl")
    return accepted(res) if res.rc == 0 else refused(res, "m.jsonl")


TRANSCRIPT_DEFECTS = {  # score's inputs: name: (suffix, bytes, line)
    "kaldi-latin-1": (".txt", "a the cat\nb café au lait\n".encode("latin-1"), 2),
    "trn-utf-16": (".trn", "the cat (a)\n".encode("utf-16"), 1),
    "trn-no-id": (".trn", b"the cat (a)\nthe dog\n", 2),
    "kaldi-duplicate": (".txt", b"a the cat\na the dog\n", 2),
}


def _bad_transcripts(name: str, drill: Drill) -> Outcome:
    folder = drill.folder(f"transcripts-{name}")
    suffix, data, line = TRANSCRIPT_DEFECTS[name]
    bad = folder / f"{name}{suffix}"
    bad.write_bytes(data)
    good = folder / f"good{suffix}"
    good.write_text("the cat (a)\n" if suffix == ".trn" else "a the cat\n")
    (folder / "earlier.json").write_text("{}\n")
    guard = Guard(folder / "earlier.json")
    res = drill.asr("score", good, bad, "--json-out", folder / "earlier.json")
    return guarded(refused(res, f"{bad.name}:{line}"), guard)


for _name, (_, _, _line) in TRANSCRIPT_DEFECTS.items():
    CASES.append(Case(f"transcripts/{_name}/score", f"refused naming the file and line {_line}",
                      partial(_bad_transcripts, _name)))


@case("transcripts/list-file-latin-1/transcribe", "refused naming the list file and line")
def _list_file(drill: Drill) -> Outcome:
    folder = drill.folder("transcripts-list-file")
    shutil.copy(drill.rows[0]["audio_filepath"], folder / "a.wav")
    (folder / "files.txt").write_bytes("a.wav\ncafé.wav\n".encode("latin-1"))
    return refused(drill.asr("transcribe", "--model", drill.model, folder / "files.txt"), "files.txt:2")


# --- bad model files ----------------------------------------------------------------------

class _RunsCode:
    """Unpickling this creates a file: what a malicious checkpoint would do."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _bad_model(name: str, drill: Drill, folder: Path, marker: Path) -> Path:
    """A model path that is not a usable model."""
    import torch

    good = drill.model.read_bytes()
    path = folder / f"{name}.pt"
    if name == "truncated":
        path.write_bytes(good[:len(good) // 2])
    elif name == "random-bytes":
        path.write_bytes(np.random.default_rng(1).bytes(100_000))
    elif name == "empty":
        path.write_bytes(b"")
    elif name == "lfs-pointer":
        path.write_text(LFS_POINTER)
    elif name == "pickle-runs-code":
        torch.save({"config": _RunsCode(marker), "tokenizer": {}, "model": {}}, path)
    elif name == "plain-pickle-runs-code":
        path.write_bytes(pickle.dumps({"config": _RunsCode(marker)}))
    elif name in ("folder-lfs-weights", "folder-bad-config"):
        path = folder / name
        shutil.copytree(drill.exported, path)
        if name == "folder-lfs-weights":
            (path / "model.safetensors").write_text(LFS_POINTER)
        else:
            (path / "config.json").write_text('{"format": "asr-model", "version": 1, "model": ')
    return path


MODEL_DEFECTS = ("truncated", "random-bytes", "empty", "lfs-pointer", "pickle-runs-code",
                 "plain-pickle-runs-code", "folder-lfs-weights", "folder-bad-config")


def _model_command(drill: Drill, command: str, model: Path, folder: Path) -> Result:
    manifest = _text_manifest(drill, folder, {"a": "the cat sat on the mat"})
    hyps = folder / "out" / "hyps.jsonl"
    args = {
        "decode": ["decode", "--model", model, "--manifest", manifest, "--out", hyps],
        "transcribe": ["transcribe", "--model", model, drill.rows[0]["audio_filepath"], "-o", folder / "out"],
        "export": ["export", model, "--out", folder / "out"],
        "benchmark": ["benchmark", "--models", model, "--sets", manifest, "--out-dir", folder / "out"],
        "report": ["prepare", "--report", manifest, "--model", model, "--png", folder / "out" / "h.png"],
        "tune-lm": ["tune-lm", "--model", model, "--manifest", manifest, "--lm", drill.lm],
        "train-init": ["train", "--train", manifest, "--dev", manifest, "--exp-dir", folder / "out" / "exp",
                       "--size", "tiny", "--init-from", model, "--epochs", 1, "--num-workers", 0],
    }[command]
    return drill.asr(*args)


def _model_case(defect: str, command: str, drill: Drill) -> Outcome:
    folder = drill.folder(f"model-{defect}-{command}")
    marker = folder / "CODE-RAN"
    model = _bad_model(defect, drill, folder, marker)
    (folder / "out").mkdir()
    (folder / "out" / "earlier.txt").write_text("an earlier good output\n")
    guard = Guard(folder / "out", model, no_new=True)
    outcome = guarded(refused(_model_command(drill, command, model, folder), model.name), guard)
    return crashed("unpickling ran code") if marker.exists() else outcome


for _defect in MODEL_DEFECTS:
    for _command in ("decode", "transcribe", "export", "benchmark", "report", "tune-lm", "train-init"):
        CASES.append(Case(f"model/{_defect}/{_command}", "refused in one line naming the file; nothing run",
                          partial(_model_case, _defect, _command)))


# --- bad language models ------------------------------------------------------------------

def _bad_lm(name: str, drill: Drill, folder: Path, marker: Path) -> Path:
    """An ARPA path that is not a usable LM (or, "poisoned-cache", a good one with a bad cache)."""
    good = drill.lm.read_text()
    path = folder / ("lm.arpa.gz" if name == "random-gzip" else "lm.arpa")
    if name == "broken-header":
        path.write_text(good.replace("\\data\\", "\\dota\\"))
    elif name == "wrong-counts":
        path.write_text(re.sub(r"ngram 2=(\d+)", lambda m: f"ngram 2={int(m[1]) + 5}", good))
    elif name == "truncated":
        path.write_text(good[:len(good) // 2])
    elif name == "lfs-pointer":
        path.write_text(LFS_POINTER)
    elif name in ("random-bytes", "random-gzip"):
        path.write_bytes(np.random.default_rng(2).bytes(20_000))
    elif name == "empty":
        path.write_text("")
    elif name == "latin-1":
        path.write_bytes(good.replace("cat", "cät").encode("latin-1"))
    elif name == "gzip-truncated":
        path = folder / "lm.arpa.gz"
        path.write_bytes(gzip.compress(good.encode())[:200])
    elif name == "poisoned-cache":
        import torch

        path.write_text(good)
        torch.save({"version": 1, "source": _RunsCode(marker)}, folder / "lm.arpa.pt")
    return path


LM_DEFECTS = ("broken-header", "wrong-counts", "truncated", "lfs-pointer", "random-bytes", "random-gzip",
              "empty", "latin-1", "gzip-truncated")


def _lm_command(drill: Drill, command: str, lm: Path, folder: Path) -> Result:
    manifest = _text_manifest(drill, folder, {"a": "the cat sat on the mat"})
    audio = drill.rows[0]["audio_filepath"]
    args = {
        "ppl": ["lm", "ppl", lm, drill.root / "model" / "lm.txt"],
        "decode": ["decode", "--model", drill.model, "--manifest", manifest, "--decoder", "beam", "--lm", lm,
                   "--out", folder / "out" / "hyps.jsonl"],
        "transcribe": ["transcribe", "--model", drill.model, audio, "--decoder", "beam", "--lm", lm],
        "tune-lm": ["tune-lm", "--model", drill.model, "--manifest", manifest, "--lm", lm, "--no-save",
                    "--alphas", 0.5, "--betas", 0],
        "flashlight": ["decode", "--model", drill.model, "--manifest", manifest, "--decoder", "flashlight",
                       "--lm", lm, "--out", folder / "out" / "hyps.jsonl"],
    }[command]
    return drill.asr(*args)


def _lm_case(defect: str, command: str, drill: Drill) -> Outcome:
    folder = drill.folder(f"lm-{defect}-{command}")
    marker = folder / "CODE-RAN"
    drill.lm  # noqa: B018 (built before the case's folder is guarded)
    lm = _bad_lm(defect, drill, folder, marker)
    (folder / "out").mkdir()
    (folder / "out" / "earlier.txt").write_text("an earlier good output\n")
    guard = Guard(folder / "out", no_new=True)
    res = _lm_command(drill, command, lm, folder)
    if defect == "poisoned-cache":
        outcome = accepted(res)
    else:
        outcome = guarded(refused(res, lm.name), guard)
    return crashed("unpickling ran code") if marker.exists() else outcome


for _command in ("ppl", "decode", "transcribe", "tune-lm", "flashlight"):
    for _defect in LM_DEFECTS:
        CASES.append(Case(f"lm/{_defect}/{_command}", "refused in one line naming the file",
                          partial(_lm_case, _defect, _command)))
    CASES.append(Case(f"lm/poisoned-cache/{_command}", "the cache is ignored, the ARPA read; nothing run",
                      partial(_lm_case, "poisoned-cache", _command)))


# --- earlier outputs survive a failure -----------------------------------------------------

@case("keep/lm-build", "a failed `asr lm build` leaves the earlier lm.arpa as it was")
def _keep_lm(drill: Drill) -> Outcome:
    folder = drill.folder("keep-lm")
    shutil.copy(drill.lm, folder / "lm.arpa")
    (folder / "text.txt").write_bytes("the cat\ncafé\n".encode("latin-1"))
    guard = Guard(folder)
    return guarded(refused(drill.asr("lm", "build", folder / "text.txt", "--out", folder / "lm.arpa"),
                           "text.txt:2"), guard)


@case("keep/transcribe-overwrite", "a file that turned bad fails on --overwrite; its earlier outputs stay")
def _keep_transcribe(drill: Drill) -> Outcome:
    folder = drill.folder("keep-transcribe")
    audio = folder / "audio"
    audio.mkdir()
    shutil.copy(drill.rows[0]["audio_filepath"], audio / "a.wav")
    shutil.copy(drill.rows[1]["audio_filepath"], audio / "b.wav")
    first = drill.asr("transcribe", "--model", drill.model, audio, "-o", folder / "out", "--format", "txt")
    if first.rc != 0:
        return accepted(first)
    (audio / "a.wav").write_bytes(_NOISE)
    guard = Guard(folder / "out" / "a.txt")
    res = drill.asr("transcribe", "--model", drill.model, audio, "-o", folder / "out", "--format", "txt",
                    "--overwrite")
    ledger = {r["id"]: r["status"] for r in _jsonl(folder / "out" / "ledger.jsonl")}
    problem = None if ledger == {"a": "failed", "b": "done"} else f"ledger {ledger}"
    return guarded(accepted(res, lambda: problem, rc=1), guard)


@case("keep/prepare-folder", "a failed `asr prepare folder` leaves the earlier manifest")
def _keep_prepare(drill: Drill) -> Outcome:
    folder = drill.folder("keep-prepare")
    audio = folder / "audio"
    audio.mkdir()
    shutil.copy(drill.rows[0]["audio_filepath"], audio / "a.wav")
    (audio / "a.txt").write_text("the cat sat on the mat\n")
    first = drill.asr("prepare", "folder", audio, "--out", folder / "out")
    if first.rc != 0:
        return accepted(first)
    (audio / "a.wav").write_bytes(_NOISE)
    guard = Guard(folder / "out")
    res = drill.asr("prepare", "folder", audio, "--out", folder / "out")
    named = any("a.wav: cannot read audio" in ln for ln in res.err.splitlines() if ln.startswith("WARNING"))
    return guarded(refused(res, str(audio)) if named else crashed("a.wav is not named"), guard)


# --- training faults (scripts/training_faults.py) --------------------------------------------

def _training_case(run: Callable[[Path], tuple[str, str]], drill: Drill) -> Outcome:
    return Outcome(*run(drill.folder("training-faults")))


sys.path.insert(0, str(Path(__file__).resolve().parent))
import training_faults  # noqa: E402

for _name, _expected, _run in training_faults.CASES:
    CASES.append(Case(_name, _expected, partial(_training_case, _run)))


# --- running the drill ----------------------------------------------------------------------

def run_case(drill: Drill, item: Case) -> Outcome:
    """The case's outcome; an exception in the drill itself counts as a crash of the case."""
    try:
        return item.run(drill)
    except SystemExit:
        raise
    except Exception as err:  # noqa: BLE001 (reported in the table)
        return crashed(f"drill error: {type(err).__name__}: {err}"[:200])


def print_table(rows: list[tuple[Case, Outcome, float]]) -> None:
    width = max(len(c.name) for c, _, _ in rows)
    print(f"{'case':<{width}}  {'outcome':<9}  {'s':>5}  expected / detail")
    for item, outcome, seconds in rows:
        print(f"{item.name:<{width}}  {outcome.status:<9}  {seconds:5.1f}  {item.expected}")
        if outcome.detail:
            print(f"{'':<{width}}  {'':<9}  {'':>5}    -> {outcome.detail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", metavar="PATTERN", help="run the cases whose name matches this glob "
                        "(or contains it), e.g. 'audio/*' or lm/")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (the model and long "
                        "recordings made there are reused by the next run)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds per command")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args(argv)
    chosen = [c for c in CASES if not args.only or fnmatch.fnmatch(c.name, args.only) or args.only in c.name]
    if args.list:
        print("\n".join(f"{c.name}: {c.expected}" for c in chosen))
        return 0
    root = Path(args.keep or tempfile.mkdtemp(prefix="asr-fault-drill-")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    drill, rows = Drill(root, args.timeout), []
    try:
        for item in chosen:
            start = time.monotonic()
            outcome = run_case(drill, item)
            rows.append((item, outcome, time.monotonic() - start))
            print(f"[{len(rows)}/{len(chosen)}] {item.name}: {outcome.status}", file=sys.stderr, flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print_table(rows)
    counts = {s: sum(o.status == s for _, o, _ in rows) for s in ("handled", "crashed", "hung", "data_lost")}
    print(json.dumps({"tried": len(rows), **counts}))
    return 0 if counts["handled"] == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
