"""Checks that need a CUDA device; skipped elsewhere (CI has none). Run on a GPU machine
with `pytest -m gpu`."""

import pytest
import torch

from asr.model import RecurrentStack
from asr.train import TrainConfig, train

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_cudnn_fused_path_matches_cpu_split_path():
    torch.manual_seed(0)
    stack = RecurrentStack("lstm", 16, 32, num_layers=3, bidirectional=True, dropout=0.0)
    x = torch.randn(4, 30, 16)
    lengths = torch.tensor([30, 22, 9, 4])  # longest first, as the bucketed sampler gives
    valid = (torch.arange(30) < lengths[:, None]).unsqueeze(-1)  # (B, T, 1)
    cpu_out = stack(x, lengths) * valid  # split path
    gpu_out = stack.cuda()(x.cuda(), lengths).cpu() * valid  # cuDNN, packed
    assert torch.allclose(cpu_out, gpu_out, atol=1e-4)


def _config(train_m, dev_m, exp_dir, **options):
    return TrainConfig(train_manifest=str(train_m), dev_manifest=str(dev_m), exp_dir=str(exp_dir),
                       size="tiny", epochs=2, max_batch_seconds=4.0, warmup_steps=2,
                       num_workers=0, cmvn_utterances=20, device="cuda", **options)


def test_amp_training_on_gpu_writes_finite_losses_and_checkpoints(noise_corpus, tmp_path):
    train_m, dev_m = noise_corpus("train", 16), noise_corpus("dev", 2, seed=1)
    result = train(_config(train_m, dev_m, tmp_path / "exp"))
    assert result["steps"] > 4 and all(torch.isfinite(torch.tensor(result["losses"])))
    state = torch.load(tmp_path / "exp" / "epoch-2.pt", weights_only=True)
    assert state["scaler"]["scale"] > 0  # fp16 AMP was on
    assert (tmp_path / "exp" / "best.pt").is_file()


def test_preflight_names_a_budget_that_fits(noise_corpus, tmp_path):
    train_m, dev_m = noise_corpus("train", 8), noise_corpus("dev", 1, seed=1)
    cfg = _config(train_m, dev_m, tmp_path / "exp", max_batch_seconds=3000.0)
    cfg.size = "large"
    torch.cuda.set_per_process_memory_fraction(0.03)  # a small GPU, for a real out-of-memory
    try:
        with pytest.raises(ValueError, match=r"--max-batch-seconds 3000 runs out of GPU memory.*"
                                             r"--max-batch-seconds \d+ fits") as err:
            train(cfg)
        fits = int(str(err.value).rsplit("--max-batch-seconds ", 1)[1].split()[0])
        assert 1 <= fits < 3000
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
