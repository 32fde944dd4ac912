"""Training under faults: damaged checkpoints, failed writes, diverging steps, a dying
data-loader worker, SIGKILL loops (12 kills in scripts/fault_drill.py, 4 here), a killed DDP rank."""

import hashlib
import os
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from asr.checkpoint import load_checkpoint, save_atomic
from asr.model import CTCModel, ModelConfig
from asr.train import TrainConfig, TrainingStopped, optimizer_step, train

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _config(train_manifest, dev_manifest, exp_dir, epochs, **changes):
    options = dict(size="tiny", model_overrides={"hidden_size": 32}, epochs=epochs,
                   max_batch_seconds=4.0, warmup_steps=5, num_workers=0, cmvn_utterances=20,
                   patience=100, log_interval=2)
    return TrainConfig(train_manifest=str(train_manifest), dev_manifest=str(dev_manifest),
                       exp_dir=str(exp_dir), **{**options, **changes})


def _train_command(train_manifest, dev_manifest, exp_dir, epochs, *extra):
    return [sys.executable, "-m", "asr.cli", "train", "--train", str(train_manifest), "--dev",
            str(dev_manifest), "--exp-dir", str(exp_dir), "--size", "tiny", "--hidden-size", "32",
            "--epochs", str(epochs), "--max-batch-seconds", "4", "--warmup-steps", "5",
            "--device", "cpu", *extra]


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_checkpoints_carry_a_checksum_that_catches_a_flipped_byte(tmp_path):
    weights = torch.arange(4096, dtype=torch.float32)
    save_atomic({"config": {}, "tokenizer": {}, "model": {"w": weights}}, tmp_path / "a.pt")
    assert torch.equal(load_checkpoint(tmp_path / "a.pt")["model"]["w"], weights)
    data = bytearray((tmp_path / "a.pt").read_bytes())
    at = data.find(weights[1000:1004].numpy().tobytes())  # inside the stored tensor
    data[at] ^= 0x01
    (tmp_path / "a.pt").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"a\.pt: damaged \(its contents no longer match"):
        load_checkpoint(tmp_path / "a.pt")


def test_resume_passes_over_a_damaged_newest_checkpoint(noise_corpus, tmp_path, caplog):
    train_m, dev_m = noise_corpus("train", 12), noise_corpus("dev", 2, seed=1)
    train(_config(train_m, dev_m, tmp_path / "full", epochs=2))
    exp = tmp_path / "exp"
    exp.mkdir()
    for name in ("epoch-1.pt", "epoch-2.pt"):
        (exp / name).write_bytes((tmp_path / "full" / name).read_bytes())
    damaged = bytearray((exp / "epoch-2.pt").read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    (exp / "epoch-2.pt").write_bytes(bytes(damaged))
    (exp / ".epoch-3.pt.k2x9a1b0").write_bytes(b"half a checkpoint")  # a killed writer's temporary

    train(_config(train_m, dev_m, exp, epochs=2, resume=True))
    assert "epoch-2.pt: " in caplog.text and "resuming from an older checkpoint" in caplog.text
    assert "resumed from " + str(exp / "epoch-1.pt") in caplog.text
    assert not (exp / ".epoch-3.pt.k2x9a1b0").exists()
    full, redone = (load_checkpoint(p / "epoch-2.pt")["model"] for p in (tmp_path / "full", exp))
    assert all(torch.equal(full[k], redone[k]) for k in full)


def _limit_file_size(limit: int):
    def apply() -> None:  # in the child: writes past `limit` bytes fail like a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_failed_checkpoint_write_keeps_the_previous_one(noise_corpus, tmp_path):
    train_m, dev_m = noise_corpus("train", 8), noise_corpus("dev", 2, seed=1)
    exp = tmp_path / "exp"
    done = subprocess.run(_train_command(train_m, dev_m, exp, 1), env=ENV, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    before = _sha(exp / "epoch-1.pt")

    # epoch-2.pt is as large as epoch-1.pt, so it cannot be written under this limit
    limit = (exp / "epoch-1.pt").stat().st_size - 1
    failed = subprocess.run(_train_command(train_m, dev_m, exp, 2, "--resume"), env=ENV,
                            capture_output=True, text=True, timeout=300,
                            preexec_fn=_limit_file_size(limit))
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    message = failed.stderr.strip().splitlines()[-1]
    assert "epoch-2.pt: could not be written (File too large)" in message
    assert f"{exp / 'epoch-1.pt'} is kept and --resume goes on from there" in message
    assert _sha(exp / "epoch-1.pt") == before
    assert sorted(p.name for p in exp.glob("*.pt*")) == ["best.pt", "epoch-1.pt"]  # no partial file

    done = subprocess.run(_train_command(train_m, dev_m, exp, 2, "--resume"), env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and load_checkpoint(exp / "epoch-2.pt")["epoch"] == 2


def test_a_step_with_a_non_finite_gradient_is_skipped():
    model = CTCModel(ModelConfig.from_size("tiny", 5))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    next(model.parameters()).grad[0] = float("nan")
    assert not optimizer_step(model, optimizer, scaler, clip_norm=5.0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not optimizer.state and all(p.grad is None for p in model.parameters())

    for p in model.parameters():
        p.grad = torch.ones_like(p)
    assert optimizer_step(model, optimizer, scaler, clip_norm=5.0)
    assert not all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_diverging_run_skips_counts_and_then_stops_with_advice(noise_corpus, tmp_path):
    """A learning rate of 1e4 takes the weights to inf within a few steps."""
    train_m, dev_m = noise_corpus("train", 12), noise_corpus("dev", 2, seed=1)
    counted = train(_config(train_m, dev_m, tmp_path / "counted", 1, lr=1e4,
                            max_skipped_steps=1000, warmup_steps=1))
    state = load_checkpoint(tmp_path / "counted" / "epoch-1.pt")
    assert 0 < state["skipped_steps"] < counted["steps"]  # the first steps were still finite
    assert torch.isfinite(torch.cat([w.flatten() for w in state["model"].values()
                                     if w.is_floating_point()])).all()  # no NaN ever applied

    with pytest.raises(TrainingStopped, match=r"the last 3 steps had a non-finite loss or "
                                              r"gradient .* lower --lr \(now 10000\)"):
        train(_config(train_m, dev_m, tmp_path / "stopped", 3, lr=1e4, max_skipped_steps=3,
                      warmup_steps=1))


def _loader_workers(pid: int) -> list[int]:
    """The child processes of `pid`, but multiprocessing's resource tracker."""
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        children = [int(child) for child in f.read().split()]
    return [c for c in children if b"resource_tracker" not in open(f"/proc/{c}/cmdline", "rb").read()]


def test_a_dead_loader_worker_stops_training_with_a_message(noise_corpus, tmp_path):
    train_m, dev_m = noise_corpus("train", 40), noise_corpus("dev", 2, seed=1)
    command = _train_command(train_m, dev_m, tmp_path / "exp", 200, "--num-workers", "1")
    job = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    deadline = time.time() + 120
    while not (tmp_path / "exp" / "epoch-1.pt").exists():  # the worker is running by now
        assert job.poll() is None and time.time() < deadline, job.stderr.read()
        time.sleep(0.2)
    workers = _loader_workers(job.pid)
    assert workers
    killed_at = time.time()
    for worker in workers:
        os.kill(worker, signal.SIGKILL)
    _, stderr = job.communicate(timeout=60)
    assert time.time() - killed_at < 30
    assert job.returncode == 2 and "Traceback" not in stderr, stderr
    message = stderr.strip().splitlines()[-1]
    assert re.search(r"a data-loader worker \(pid \d+\) died \(\w+\); training stopped", message)
    assert re.search(r"epoch-\d+\.pt is kept and --resume goes on from there", message)


@pytest.fixture(scope="module")
def training_faults():
    sys.path.insert(0, str(Path(__file__).parents[1] / "scripts"))
    import training_faults

    return training_faults


def test_killed_again_and_again_training_ends_at_the_uninterrupted_model(training_faults, tmp_path):
    """Four SIGKILLs, two of them while a checkpoint is being written (the drill does 12)."""
    outcome, detail = training_faults.sigkill_loop(tmp_path, kills=4)
    assert outcome == "handled", detail
    assert re.match(r"4 kills \([1-4] while a checkpoint was being written\)", detail)


def test_a_killed_ddp_rank_ends_the_job_promptly(training_faults, tmp_path):
    outcome, detail = training_faults.ddp_rank_killed(tmp_path)
    assert outcome == "handled", detail
