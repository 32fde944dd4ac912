"""Data parallelism: 2 processes under torchrun (gloo, CPU) train like 1 process on the
same global batches."""

import os
import subprocess
import sys

import torch

from asr.checkpoint import load_checkpoint
from asr.data import BucketBatchSampler, SpeechDataset, collate, read_manifest
from asr.model import CTCModel, ModelConfig
from asr.text import CharTokenizer
from asr.train import forward_backward

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

# Each rank computes the DDP gradient of its share of one global batch; rank 0 saves it.
GRADIENT_WORKER = """
import sys, torch
from torch.nn.parallel import DistributedDataParallel as DDP
from asr.distributed import init_distributed
from asr.data import BucketBatchSampler, SpeechDataset, collate, read_manifest
from asr.model import CTCModel, ModelConfig
from asr.text import CharTokenizer
from asr.train import forward_backward

manifest, out = sys.argv[1:]
dist = init_distributed("cpu")
torch.manual_seed(0)
tokenizer = CharTokenizer()
model = CTCModel(ModelConfig.from_size("tiny", len(tokenizer), dropout=0.0, n_freq_masks=0,
                                       n_time_masks=0))
dataset = SpeechDataset(read_manifest(manifest), tokenizer, 16000)
sampler = BucketBatchSampler(dataset.durations, 100.0, num_replicas=2, rank=dist.rank)
(batch,) = sampler.global_batches()
share = collate([dataset[i] for i in sampler.shard(batch)])
forward_backward(DDP(model), share, dist.device, torch.amp.GradScaler("cpu", enabled=False),
                 batch_size=len(batch), world_size=2)
if dist.is_main:
    torch.save({n: p.grad for n, p in model.named_parameters()}, out)
dist.close()
"""


def test_ddp_gradient_equals_one_process_gradient_on_the_global_batch(noise_corpus, tmp_path):
    manifest = noise_corpus("train", 6)
    script = tmp_path / "worker.py"
    script.write_text(GRADIENT_WORKER)
    done = subprocess.run([*TORCHRUN, str(script), str(manifest), str(tmp_path / "grads.pt")],
                          capture_output=True, text=True, timeout=300, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    ddp_grads = torch.load(tmp_path / "grads.pt", weights_only=True)

    torch.manual_seed(0)
    tokenizer = CharTokenizer()
    model = CTCModel(ModelConfig.from_size("tiny", len(tokenizer), dropout=0.0, n_freq_masks=0,
                                           n_time_masks=0))
    dataset = SpeechDataset(read_manifest(manifest), tokenizer, 16000)
    (batch,) = BucketBatchSampler(dataset.durations, 200.0).global_batches()
    forward_backward(model, collate([dataset[i] for i in batch]), torch.device("cpu"),
                     torch.amp.GradScaler("cpu", enabled=False), batch_size=len(batch))
    for name, param in model.named_parameters():
        assert torch.allclose(param.grad, ddp_grads[name], rtol=1e-4, atol=1e-5), name


def _train(launcher: list[str], exp_dir, budget: float, train_m, dev_m) -> str:
    command = [
        *launcher, "-m", "asr.cli", "train", "--train", str(train_m), "--dev", str(dev_m),
        "--exp-dir", str(exp_dir), "--device", "cpu", "--size", "tiny", "--hidden-size", "32",
        "--epochs", "2", "--max-batch-seconds", str(budget), "--warmup-steps", "3",
        "--num-workers", "0", "--save-every-steps", "100",
        # no randomness that differs between one process and two: no dropout, no SpecAugment
        "--dropout", "0", "--n-freq-masks", "0", "--n-time-masks", "0",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    return (exp_dir / "log" / "train.log").read_text()


def _train_losses(log_text: str) -> list[str]:
    return [line.split("train loss ")[1].split(",")[0] for line in log_text.splitlines()
            if "train loss" in line]


def test_two_processes_match_one_on_the_same_global_batches(noise_corpus, tmp_path):
    train_m, dev_m = noise_corpus("train", 24), noise_corpus("dev", 2, seed=1)
    one_log = _train([sys.executable], tmp_path / "one", 8.0, train_m, dev_m)
    two_log = _train(TORCHRUN, tmp_path / "two", 4.0, train_m, dev_m)  # 4 s each: 8 s in all

    assert "1 process(es)" in one_log and "2 process(es)" in two_log
    assert two_log.count("train loss") == 2  # rank 0 alone logs and evaluates
    assert _train_losses(one_log) == _train_losses(two_log) and len(_train_losses(one_log)) == 2
    one, two = (load_checkpoint(tmp_path / run / "epoch-2.pt") for run in ("one", "two"))
    assert one["step"] == two["step"] > 4
    for name, weight in one["model"].items():  # Adam magnifies float noise in tiny gradients
        assert torch.allclose(weight, two["model"][name], atol=1e-3), name
    assert len(two["rng"]) == 2  # each rank's random state, for an exact resume
