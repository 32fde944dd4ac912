import shutil

import pytest
import torch

from asr.checkpoint import load_checkpoint, load_model
from asr.data import SpeechDataset, read_manifest
from asr.decode import build_decoder
from asr.inference import decode_dataset
from asr.train import TrainConfig, flushed_denormals, train, warmup_cosine


def _config(train_manifest, dev_manifest, exp_dir, epochs):
    return TrainConfig(
        train_manifest=str(train_manifest), dev_manifest=str(dev_manifest), exp_dir=str(exp_dir),
        size="tiny", model_overrides={"hidden_size": 32}, epochs=epochs, max_batch_seconds=4.0,
        warmup_steps=5, num_workers=0, cmvn_utterances=20, patience=100, log_interval=2)


def test_resumed_run_matches_uninterrupted_run(noise_corpus, tmp_path):
    train_m, dev_m = noise_corpus("train", 16), noise_corpus("dev", 2, seed=1)
    full = train(_config(train_m, dev_m, tmp_path / "full", epochs=2))

    # a run that stopped after epoch 1: only its epoch-1 checkpoint exists
    (tmp_path / "split").mkdir()
    shutil.copy(tmp_path / "full" / "epoch-1.pt", tmp_path / "split" / "epoch-1.pt")
    first_epoch_steps = load_checkpoint(tmp_path / "split" / "epoch-1.pt")["step"]
    resumed_cfg = _config(train_m, dev_m, tmp_path / "split", epochs=2)
    resumed_cfg.resume = True
    resumed = train(resumed_cfg)

    assert len(resumed["losses"]) == len(full["losses"]) - first_epoch_steps > 0
    assert torch.allclose(torch.tensor(resumed["losses"]),
                          torch.tensor(full["losses"][first_epoch_steps:]), rtol=1e-5)
    assert resumed["epochs"] == full["epochs"] == 2


def test_run_stopped_mid_epoch_resumes_exactly(noise_corpus, tmp_path):
    """Sampler position, RNG (SpecAugment, dropout), optimizer and scheduler all restored."""
    train_m, dev_m = noise_corpus("train", 16), noise_corpus("dev", 2, seed=1)
    full = train(_config(train_m, dev_m, tmp_path / "full", epochs=2))

    stopped_cfg = _config(train_m, dev_m, tmp_path / "split", epochs=2)
    stopped_cfg.max_steps = 2
    stopped = train(stopped_cfg)
    assert stopped["steps"] == 2 and stopped["epochs"] == 0
    assert sorted(p.name for p in (tmp_path / "split").glob("*.pt")) == ["step-2.pt"]
    state = load_checkpoint(tmp_path / "split" / "step-2.pt")
    assert state["epoch"] == 0 and state["batch"] == 2 < len(full["losses"]) // 2

    resumed_cfg = _config(train_m, dev_m, tmp_path / "split", epochs=2)
    resumed_cfg.resume = True
    resumed = train(resumed_cfg)
    assert resumed["steps"] == full["steps"]
    # the resumed run reports the rest of epoch 1, then epoch 2
    assert torch.allclose(torch.tensor(resumed["losses"]), torch.tensor(full["losses"][2:]),
                          rtol=1e-5)
    final_full = load_checkpoint(tmp_path / "full" / "epoch-2.pt")["model"]
    final_resumed = load_checkpoint(tmp_path / "split" / "epoch-2.pt")["model"]
    for name, weight in final_full.items():
        assert torch.allclose(weight, final_resumed[name], atol=1e-6), name
    assert not list((tmp_path / "split").glob("step-*.pt"))  # superseded by epoch-N.pt


def test_augmented_run_resumes_exactly_with_a_loader_worker(noise_corpus, tmp_path):
    """Augmentation is drawn from (seed, epoch, utterance): the same in a worker process
    and after a resume, and it really changes what the model hears."""
    train_m, dev_m = noise_corpus("train", 16), noise_corpus("dev", 2, seed=1)

    def config(exp: str, augment: str = "speed=0.5,noise=0.5,reverb=0.5,telephone=0.5,gain=0.5"):
        cfg = _config(train_m, dev_m, tmp_path / exp, epochs=2)
        cfg.augment, cfg.num_workers = augment, 1
        return cfg

    full = train(config("full"))
    plain = train(config("plain", augment=""))
    # without speed perturbation the batches are the same: only the audio can differ
    heard = train(config("heard", augment="noise=0.5,reverb=0.5,telephone=0.5,gain=0.5"))
    assert not torch.allclose(torch.tensor(heard["losses"]), torch.tensor(plain["losses"]))
    stopped = config("split")
    stopped.max_steps = 3
    train(stopped)
    resumed = config("split")
    resumed.resume = True
    assert torch.allclose(torch.tensor(train(resumed)["losses"]),
                          torch.tensor(full["losses"][3:]), rtol=1e-5)


def test_checkpoints_logs_and_unreadable_files(noise_corpus, tmp_path, caplog):
    train_m, dev_m = noise_corpus("train", 8), noise_corpus("dev", 3, seed=1)
    (tmp_path / "train" / "train-3.wav").write_bytes(b"broken")
    (tmp_path / "dev" / "dev-1.wav").write_bytes(b"broken")
    exp = tmp_path / "exp"
    torch.set_flush_denormal(False)
    train(_config(train_m, dev_m, exp, epochs=1))
    assert float(torch.tensor(1e-39) * 1.0) != 0.0  # training's denormal flush was undone
    last = torch.load(exp / "epoch-1.pt", weights_only=True)  # no pickled classes
    assert {"config", "tokenizer", "model", "optimizer", "scheduler", "step", "rng"} <= set(last)
    assert (exp / "best.pt").is_file()
    log_text = (exp / "log" / "train.log").read_text()
    assert "dev WER" in log_text
    assert "skipping train-3:" in log_text and "train-3.wav: cannot read audio" in log_text
    assert any((exp / "tensorboard").iterdir())

    model, tokenizer = load_model(exp / "best.pt")
    dev = SpeechDataset(read_manifest(dev_m), tokenizer, 16000)
    hyps = decode_dataset(model, tokenizer, dev, build_decoder("greedy"))
    assert sorted(hyps) == ["dev-0", "dev-2"]  # the broken one is left out, the rest decoded
    assert "skipping dev-1:" in caplog.text


def test_resume_with_another_model_config_is_refused(noise_corpus, tmp_path):
    train_m, dev_m = noise_corpus("train", 4), noise_corpus("dev", 1, seed=1)
    train(_config(train_m, dev_m, tmp_path / "exp", epochs=1))
    cfg = _config(train_m, dev_m, tmp_path / "exp", epochs=2)
    cfg.resume, cfg.size = True, "small"
    with pytest.raises(ValueError, match="epoch-1.pt: was trained with another model config"):
        train(cfg)


def test_init_from_starts_at_another_models_weights_and_cmvn(noise_corpus, tmp_path):
    train_m, dev_m = noise_corpus("train", 6), noise_corpus("dev", 1, seed=1)
    other_m = noise_corpus("other", 6, seed=2)
    train(_config(train_m, dev_m, tmp_path / "first", epochs=1))
    cfg = _config(other_m, dev_m, tmp_path / "second", epochs=1)
    cfg.init_from, cfg.lr, cfg.max_steps = str(tmp_path / "first" / "best.pt"), 0.0, 1
    train(cfg)  # with a learning rate of 0, one step leaves the weights where they started
    start, second = (load_checkpoint(p)["model"] for p in
                     (tmp_path / "first" / "best.pt", tmp_path / "second" / "step-1.pt"))
    assert start.keys() == second.keys()
    assert all(torch.equal(start[k], second[k]) for k in start)  # CMVN buffers included

    cfg = _config(other_m, dev_m, tmp_path / "third", epochs=1)
    cfg.init_from, cfg.size = str(tmp_path / "first" / "best.pt"), "small"
    with pytest.raises(ValueError, match="best.pt: its model .* does not fit the one asked for"):
        train(cfg)

    cfg = _config(other_m, dev_m, tmp_path / "fourth", epochs=1)
    cfg.init_from = str(tmp_path / "first" / "best.pt")
    cfg.model_overrides = {**cfg.model_overrides, "cmvn": "utterance"}
    with pytest.raises(ValueError, match="best.pt: its CMVN statistics are for --cmvn global"):
        train(cfg)


def test_warmup_then_decay():
    f = warmup_cosine(10, 110)
    assert f(0) == 0.1 and f(9) == 1.0
    assert f(60) < 1.0 and abs(f(110) - 0.05) < 1e-9 and f(500) == f(110)


def test_denormals_are_flushed_inside_the_block_only():
    def flushed() -> bool:
        return float(torch.tensor(1e-39) * 1.0) == 0.0

    supported = torch.set_flush_denormal(False)  # False where the CPU cannot (not x86)
    with flushed_denormals():
        assert flushed() == supported
    assert not flushed()
    torch.set_flush_denormal(supported)
    with flushed_denormals():
        pass
    assert flushed() == supported  # a caller's own setting is kept
    torch.set_flush_denormal(False)
