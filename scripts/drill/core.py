"""The drill's machinery: running a command, judging its outcome, the case registry and the
work folder with its tiny model (see scripts/fault_drill.py)."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import soundfile

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
NOISE = np.random.default_rng(7).bytes(48000)  # random bytes, the same every run
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
            text.parent.mkdir(parents=True, exist_ok=True)  # `--only keep/lm-build` runs before the model
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


def read_jsonl(path: Path) -> list[dict]:
    """The rows of a JSONL file; none when it is missing."""
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
