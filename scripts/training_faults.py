"""Training faults for scripts/fault_drill.py: SIGKILL at random moments (checkpoint writes
included) with --resume after each, and one DDP rank killed under torchrun.

Each case is (name, expected, run); run(workdir) returns (outcome, detail), the outcome one of
handled, crashed, hung or data_lost.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile
import torch

from asr.checkpoint import load_checkpoint

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
KILLS = int(os.environ.get("DRILL_KILLS", "12"))  # SIGKILLs in the loop (at least 10 for the drill)


def noise_manifest(folder: Path, n: int, seed: int) -> Path:
    """`n` utterances of noise with letter transcripts: enough to exercise training."""
    rng, np_rng = random.Random(seed), np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        duration = rng.uniform(0.4, 1.2)
        path = folder / f"{folder.name}-{i}.wav"
        soundfile.write(path, 0.1 * np_rng.standard_normal(int(16000 * duration)), 16000)
        text = " ".join(rng.choice(["ab", "ba", "cab"]) for _ in range(rng.randint(1, 3)))
        rows.append({"id": path.stem, "audio_filepath": str(path), "duration": duration,
                     "text": text})
    manifest = folder.with_suffix(".jsonl")
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


def train_command(workdir: Path, exp: Path, *extra: str) -> list[str]:
    return ["-m", "asr.cli", "train", "--train", str(workdir / "train.jsonl"), "--dev",
            str(workdir / "dev.jsonl"), "--exp-dir", str(exp), "--size", "tiny", "--hidden-size",
            "32", "--epochs", "4", "--max-batch-seconds", "4", "--warmup-steps", "5",
            "--num-workers", "0", "--device", "cpu", "--save-every-steps", "1", *extra]


def make_corpus(workdir: Path) -> None:
    if not (workdir / "train.jsonl").exists():
        noise_manifest(workdir / "train", 80, seed=0)
        noise_manifest(workdir / "dev", 3, seed=1)


def all_checkpoints_intact(exp: Path) -> list[str]:
    """The checkpoints in `exp` that do not load or fail their checksum."""
    broken = []
    for path in sorted(exp.glob("*.pt")):
        try:
            load_checkpoint(path)
        except (ValueError, FileNotFoundError) as err:  # FileNotFoundError: pruned meanwhile
            broken.append(f"{path.name}: {err}")
    return broken


def same_weights(a: Path, b: Path) -> bool:
    first, second = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def sigkill_loop(workdir: Path, kills: int = KILLS) -> tuple[str, str]:
    """Kill `asr train --resume` `kills` times, alternately at a random moment and while a
    checkpoint is being written, then let it finish: every checkpoint stays loadable, and the
    final model equals an uninterrupted run's bit for bit."""
    make_corpus(workdir)
    reference, exp = workdir / "uninterrupted", workdir / "killed"
    done = subprocess.run([sys.executable, *train_command(workdir, reference)], env=ENV,
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        return "crashed", done.stderr.strip().splitlines()[-1]
    rng = random.Random(0)
    mid_write = 0
    for kill in range(kills):
        job = subprocess.Popen([sys.executable, *train_command(workdir, exp, "--resume")],
                               env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started = {p: p.stat().st_mtime for p in exp.glob("*.pt")}
        deadline = time.time() + 120
        while time.time() < deadline and job.poll() is None:  # wait for progress, then a bit more
            if any(started.get(p) != p.stat().st_mtime for p in _existing(exp)):
                break
            time.sleep(0.02)
        if kill % 2:  # at a random moment
            time.sleep(rng.uniform(0.0, 0.25))
        else:  # while a checkpoint is being written: as soon as its temporary appears
            while job.poll() is None and not any(exp.glob(".*.pt.*")) and time.time() < deadline:
                time.sleep(0.001)
        if job.poll() is not None:
            return "crashed", f"kill {kill + 1}: training ended before it was killed (exit {job.returncode})"
        job.send_signal(signal.SIGKILL)
        job.wait()
        mid_write += any(exp.glob(".*.pt.*"))  # a temporary left: killed while writing
        if broken := all_checkpoints_intact(exp):
            return "data_lost", f"after kill {kill + 1}: {broken[0]}"
    done = subprocess.run([sys.executable, *train_command(workdir, exp, "--resume")], env=ENV,
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        return "crashed", done.stderr.strip().splitlines()[-1]
    if any(exp.glob(".*.pt.*")):
        return "data_lost", "a partial checkpoint was left behind after the run finished"
    if not (same_weights(reference / "epoch-4.pt", exp / "epoch-4.pt")
            and same_weights(reference / "best.pt", exp / "best.pt")):
        return "data_lost", "the final model differs from the uninterrupted run's"
    return "handled", (f"{kills} kills ({mid_write} while a checkpoint was being written), "
                       "final model equal bit for bit")


def _existing(exp: Path) -> list[Path]:
    paths = []
    for path in exp.glob("*.pt"):
        try:
            path.stat()
            paths.append(path)
        except FileNotFoundError:  # pruned between glob and stat
            pass
    return paths


def ddp_rank_killed(workdir: Path) -> tuple[str, str]:
    """Kill rank 1 of a 2-process torchrun job: the job must end, with a message naming the
    rank, within 60 s, and the checkpoints it wrote must still load and resume."""
    make_corpus(workdir)
    exp = workdir / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
               "2", *train_command(workdir, exp)]
    command[command.index("--epochs") + 1] = "200"
    job = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, start_new_session=True)
    deadline = time.time() + 180
    while not (exp / "epoch-1.pt").exists():
        if job.poll() is not None or time.time() > deadline:
            job.kill()
            return "crashed", "the 2-process run did not reach its first epoch"
        time.sleep(0.1)
    rank1 = _process_with_env(job.pid, "RANK", "1")
    os.kill(rank1, signal.SIGKILL)
    killed = time.time()
    try:
        output, _ = job.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        return "hung", "still running 60 s after rank 1 was killed"
    seconds = time.time() - killed
    if job.returncode == 0 or "rank: 1" not in output:
        return "crashed", f"exit {job.returncode} without naming rank 1"
    if broken := all_checkpoints_intact(exp):
        return "data_lost", broken[0]
    return "handled", f"torchrun stopped {seconds:.1f} s after the kill, naming rank 1; checkpoints intact"


def _process_with_env(root: int, name: str, value: str) -> int:
    """The descendant of `root` whose environment has name=value."""
    todo = [root]
    while todo:
        pid = todo.pop()
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            if f"{name}={value}".encode() in environ and pid != root:
                return pid
            todo += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except FileNotFoundError:
            continue
    raise RuntimeError(f"no process with {name}={value} under {root}")


CASES = [
    ("train/sigkill-resume", f"killed {KILLS} times at random moments and mid-write, --resume "
     "after each: no corrupt checkpoint, final model equal to an uninterrupted run's", sigkill_loop),
    ("train/ddp-rank-killed", "rank 1 of 2 killed under torchrun: stops within 60 s naming the rank",
     ddp_rank_killed),
]
