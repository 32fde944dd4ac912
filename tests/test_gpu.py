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


def test_beam_search_on_gpu_equals_the_compiled_cpu_engine(tmp_path):
    """The tensor engine on CUDA gives the n-best lists the compiled engine gives on CPU."""
    from asr.decode import BeamSearchDecoder
    from asr.lm import NgramLM, build_arpa
    from asr.text import CharTokenizer

    text = ["the red cat sat", "a red hat", "the red dog ran", "my red car", "the cat ran"] * 4
    build_arpa(text, 2, tmp_path / "lm.arpa")
    lm, tok = NgramLM.from_arpa(tmp_path / "lm.arpa"), CharTokenizer()
    g = torch.Generator().manual_seed(0)
    log_probs = (torch.randn(6, 80, len(tok), generator=g) * 3).log_softmax(-1)  # (B, T, V)
    lengths = torch.tensor([80, 75, 60, 41, 20, 1])
    opts = dict(beam_size=8, lm=lm, tokenizer=tok, alpha=0.8, beta=0.5, preselect=None)
    cpu = BeamSearchDecoder(engine="native", **opts).nbest(log_probs, lengths)
    gpu = BeamSearchDecoder(engine="torch", **opts).nbest(log_probs.cuda(), lengths)
    for a, b in zip(cpu, gpu, strict=True):
        assert [t for t, _ in a] == [t for t, _ in b]
        assert [s for _, s in a] == pytest.approx([s for _, s in b], abs=1e-3)
