"""Drill cases: bad audio for every command, files that vanish while a job runs, a 3-hour
recording."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import soundfile
import soxr

from drill.core import (
    CASES,
    LONG_TIMEOUT,
    MAX_CER,
    NOISE,
    RATE,
    Case,
    Drill,
    Outcome,
    Result,
    accepted,
    broke,
    case,
    cer,
    read_jsonl,
    refused,
)

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


AUDIO_KINDS = [
    AudioKind("zero-length.wav", "refused", _bytes(b""), header_bad=True),
    AudioKind("no-samples.wav", "refused", _samples(0), header_bad=True),
    AudioKind("header-cut.wav", "refused", _cut(20), header_bad=True),
    AudioKind("data-cut.wav", "either", _cut(0.5)),
    AudioKind("random-wav.wav", "refused", _bytes(NOISE), header_bad=True),
    AudioKind("random-flac.flac", "refused", _bytes(NOISE), header_bad=True),
    AudioKind("random-mp3.mp3", "refused", _bytes(NOISE), header_bad=True),
    AudioKind("random-ogg.ogg", "refused", _bytes(NOISE), header_bad=True),
    AudioKind("random-m4a.m4a", "refused", _bytes(NOISE), header_bad=True),
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
    ledger = {row["id"]: row for row in read_jsonl(out / "ledger.jsonl")}
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
    hyps = {r["id"]: r["text"] for r in read_jsonl(folder / "hyps.jsonl")}
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
    rows = {r["id"]: r for r in read_jsonl(folder / "out" / "all.jsonl")}
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
    ledger = {r["id"]: r for r in read_jsonl(out / "ledger.jsonl")}
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
        hyps = {r["id"] for r in read_jsonl(folder / "hyps.jsonl")}
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


