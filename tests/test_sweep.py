"""`asr sweep`: trials of the real trainer in an Optuna study that several workers share."""

import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from asr.sweep import load_space

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _sweep(train_m, dev_m, exp, space, trials, *extra):
    return [sys.executable, "-m", "asr.cli", "sweep", "--train", str(train_m), "--dev", str(dev_m),
            "--exp-dir", str(exp), "--size", "tiny", "--hidden-size", "16", "--epochs", "2",
            "--device", "cpu", "--num-workers", "0", "--max-batch-seconds", "4", "--space",
            str(space), "--trials", str(trials), "--heartbeat", "1", *extra]


def _trials(exp):
    return optuna.load_study(study_name="sweep", storage=f"sqlite:///{exp / 'sweep.db'}").trials


def _times_trained(exp, number) -> int:
    log = exp / f"trial-{number}" / "log" / "train.log"
    return log.read_text().count(" asr.train: train: ") if log.exists() else 0


@pytest.fixture
def corpus(noise_corpus, tmp_path):
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"lr": {"low": 1e-3, "high": 1e-2, "log": True},
                                 "hidden_size": [8, 16]}))
    return noise_corpus("train", 10), noise_corpus("dev", 2, seed=1), space


def test_two_workers_share_one_study(corpus, tmp_path):
    train_m, dev_m, space = corpus
    exp = tmp_path / "exp"
    command = _sweep(train_m, dev_m, exp, space, 6)
    first = subprocess.Popen(command, env=ENV, stderr=subprocess.PIPE, text=True)
    while not (exp / "sweep.db").exists():  # the first makes the study, the second loads it
        time.sleep(0.1)
    second = subprocess.Popen(command, env=ENV, stderr=subprocess.PIPE, text=True)
    for worker in (first, second):
        assert worker.wait(timeout=300) == 0, worker.stderr.read()
    trials = _trials(exp)
    assert len(trials) in (6, 7)  # both may start a trial when 5 are counted
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    trained = [t for t in trials if "same as trial" not in t.user_attrs.get("note", "")]
    assert all(_times_trained(exp, t.number) == 1 for t in trained)  # none lost or run twice
    assert len({t.user_attrs["worker"] for t in trials}) == 2
    params = [tuple(sorted(t.params.items())) for t in trained]
    assert len(set(params)) == len(params)  # the workers do not propose each other's trials
    assert trials[0].params == {"lr": 2e-3, "hidden_size": 16}  # the base configuration first

    results = (exp / "results.md").read_text()
    assert all(f"\n| {t.number} | " in results for t in trials)
    assert "--exp-dir " + str(exp / "trial-") in results and "## Parameter importances" in results
    for plot in ("optimization_history", "parallel_coordinate", "slice"):
        assert (exp / f"{plot}.png").read_bytes()[:4] == b"\x89PNG"
    assert (exp / "best.pt").is_file()


def test_a_killed_sweep_resumes_and_reruns_the_killed_trial(corpus, tmp_path):
    train_m, dev_m, space = corpus
    exp = tmp_path / "exp"
    command = _sweep(train_m, dev_m, exp, space, 3, "--epochs", "40")
    worker = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (exp / "trial-0" / "epoch-1.pt").exists():  # trial 0 is training
        assert worker.poll() is None and time.time() < deadline
        time.sleep(0.1)
    worker.send_signal(signal.SIGKILL)
    worker.wait()

    command[command.index("40")] = "2"  # the resumed sweep may be quicker; the study is the same
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    trials = _trials(exp)
    states = [t.state for t in trials]
    assert states[0] == TrialState.FAIL and states.count(TrialState.FAIL) == 1
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retry) == 1 and retry[0].params == trials[0].params
    assert retry[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert len(trials) == 4  # 3 counted: the killed one was replaced by its retry


def test_failed_trials_are_recorded_with_their_reason(corpus, tmp_path):
    train_m, dev_m, _ = corpus
    space = tmp_path / "grid.json"
    space.write_text(json.dumps({"dropout": [0.1, 2.0]}))  # an LSTM refuses a dropout of 2
    exp = tmp_path / "exp"
    done = subprocess.run(_sweep(train_m, dev_m, exp, space, 5, "--sampler", "grid"), env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    trials = _trials(exp)
    assert len(trials) == 2  # the grid is exhausted before --trials
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 1 and failed[0].params == {"dropout": 2.0}
    assert failed[0].user_attrs["note"].startswith("ValueError: dropout")
    assert "Traceback" not in done.stderr
    assert "| fail |" in (exp / "results.md").read_text()


@pytest.mark.parametrize("space, message", [
    ({"learning_rate": [1e-3]}, "'learning_rate' is not an `asr train` option"),
    ({"lr": 0.001}, "'lr' needs a list of values or {low, high}"),
])
def test_a_bad_space_is_refused_naming_the_file(tmp_path, space, message):
    path = tmp_path / "space.json"
    path.write_text(json.dumps(space))
    with pytest.raises(ValueError, match=f"{path}: {message}"):
        load_space(str(path))
    path.write_text("{not json")
    with pytest.raises(ValueError, match=f"{path}: not valid json"):
        load_space(str(path))
