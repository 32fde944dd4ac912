"""recipes/lib.sh: a stage's marker records the options it ran with; a changed option redoes
that stage and the stages after it, and nothing else."""

import shutil
import subprocess
from pathlib import Path

RECIPE = """#!/usr/bin/env bash
set -euo pipefail
cd "$(dirname "$0")"
stage=0
stop_stage=9
device=cpu
hours=4
epochs=6
beam=10
. ../lib.sh

prepare() { echo "prepare $hours" >> ran.txt; }
train() { echo "train $epochs on $device" >> ran.txt; }
decode_all() { decode_one dev; }
decode_one() { echo "decode $1 beam $beam" >> ran.txt; }

run_stage 0 .prepare.done prepare
run_stage 1 .train.done train
run_stage 2 .decode.done decode_all
"""


def _recipe(tmp_path: Path) -> Path:
    (tmp_path / "recipes" / "demo").mkdir(parents=True)
    shutil.copy(Path(__file__).parents[1] / "recipes" / "lib.sh", tmp_path / "recipes" / "lib.sh")
    run = tmp_path / "recipes" / "demo" / "run.sh"
    run.write_text(RECIPE)
    return run


def _run(run: Path, *options: str) -> list[str]:
    ran = run.parent / "ran.txt"
    ran.unlink(missing_ok=True)
    proc = subprocess.run(["bash", str(run), *options], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return ran.read_text().splitlines() if ran.exists() else []


def test_changed_options_redo_their_stage_and_the_later_ones(tmp_path):
    run = _recipe(tmp_path)
    assert _run(run) == ["prepare 4", "train 6 on cpu", "decode dev beam 10"]
    assert _run(run) == []  # all done with these options
    assert (run.parent / ".train.done").read_text().splitlines()[0] == "epochs=6"
    assert _run(run, "--device", "cuda") == []  # how a stage runs is not what it makes
    assert _run(run, "--beam", "20") == ["decode dev beam 20"]  # read by a function decode calls
    assert _run(run, "--beam", "20", "--epochs", "8") == ["train 8 on cpu", "decode dev beam 20"]
    assert _run(run, "--beam", "20", "--epochs", "8", "--stage", "2") == []  # done with these
    assert _run(run, "--hours", "5", "--beam", "20", "--epochs", "8", "--stop-stage", "0") == ["prepare 5"]


def test_an_old_empty_marker_counts_as_done_and_then_records_the_options(tmp_path):
    run = _recipe(tmp_path)
    for marker in (".prepare.done", ".train.done", ".decode.done"):
        (run.parent / marker).touch()
    assert _run(run) == []
    assert (run.parent / ".decode.done").read_text().startswith("beam=10\n")
    assert _run(run, "--beam", "4") == ["decode dev beam 4"]
