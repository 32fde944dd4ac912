"""The training loop: CTC loss, AdamW with warm-up and cosine decay, AMP on GPU,
dev-WER model selection with early stopping, and resumable checkpoints.

Under `exp_dir` it writes `log/train.log`, `tensorboard/`, `epoch-N.pt` (full training
state after epoch N, the last `keep_epochs` of them; `--resume` continues from the newest)
and `best.pt` (the model with the best dev WER).
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from asr.checkpoint import load_checkpoint, model_state, rng_state, save_atomic, set_rng_state
from asr.data import (
    BucketBatchSampler,
    SpeechDataset,
    collate,
    read_manifest,
    report_failures,
)
from asr.decode import get_decoder
from asr.inference import decode_dataset, pick_device
from asr.model import CTCModel, ModelConfig
from asr.score import score
from asr.text import CharTokenizer, normalize

log = logging.getLogger("asr.train")


@dataclass
class TrainConfig:
    train_manifest: str
    dev_manifest: str
    exp_dir: str
    size: str = "small"
    model_overrides: dict = field(default_factory=dict)  # ModelConfig fields, e.g. {"dropout": 0.2}
    epochs: int = 30
    max_batch_seconds: float = 300.0
    lr: float = 2e-3
    warmup_steps: int = 300
    weight_decay: float = 1e-2
    clip_norm: float = 5.0
    patience: int = 5  # epochs without dev WER improvement before stopping
    seed: int = 0
    device: str = "auto"
    num_workers: int = 2
    cmvn_utterances: int = 500
    resume: bool = False
    keep_epochs: int = 3  # epoch-N.pt checkpoints kept
    log_interval: int = 50  # steps between loss reports (TensorBoard, progress bar, log)


def warmup_cosine(warmup: int, total: int):
    """LR multiplier: linear warm-up to 1, then cosine decay to 0.05 at `total` steps."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))
    return factor


@torch.no_grad()
def estimate_cmvn(model: CTCModel, dataset: SpeechDataset, max_utterances: int, seed: int) -> None:
    """Set the model's global CMVN from up to `max_utterances` random training utterances."""
    indices = random.Random(seed).sample(range(len(dataset)), min(max_utterances, len(dataset)))
    total = torch.zeros(model.config.n_mels, dtype=torch.float64)
    total_sq = torch.zeros_like(total)
    count = 0
    for i in tqdm(indices, desc="cmvn", leave=False, disable=None):
        wave = dataset[i][1]
        if wave is None:  # unreadable: reported when training reaches it
            continue
        wave = wave.unsqueeze(0)  # (1, S)
        feats, _ = model.fbank(wave, torch.tensor([wave.shape[1]]))  # (1, T, n_mels)
        feats = feats[0].double()
        total += feats.sum(0)
        total_sq += (feats**2).sum(0)
        count += feats.shape[0]
    model.cmvn.set_stats(total, total_sq, count)


def _epoch_number(path: Path) -> int:
    return int(path.stem.split("-")[1])


def latest_epoch_checkpoint(exp_dir: Path) -> Path | None:
    return max(exp_dir.glob("epoch-*.pt"), key=_epoch_number, default=None)


def setup_logging(exp_dir: Path) -> None:
    """Send the package's log to `exp_dir/log/train.log` (replacing an earlier run's file handler)."""
    (exp_dir / "log").mkdir(parents=True, exist_ok=True)
    package_log = logging.getLogger("asr")
    for old in [h for h in package_log.handlers if isinstance(h, logging.FileHandler)]:
        package_log.removeHandler(old)
        old.close()
    handler = logging.FileHandler(exp_dir / "log" / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    package_log.addHandler(handler)
    package_log.setLevel(logging.INFO)


def train(cfg: TrainConfig) -> dict:
    """Train a model; returns {"best_wer", "epochs", "losses"} (per-step training losses)."""
    exp_dir = Path(cfg.exp_dir)
    setup_logging(exp_dir)
    device = pick_device(cfg.device)
    use_amp = device.type == "cuda"
    best_path = exp_dir / "best.pt"
    last_path = latest_epoch_checkpoint(exp_dir) if cfg.resume else None
    resume_state = load_checkpoint(last_path) if last_path else None
    if cfg.resume and resume_state is None:
        log.info("--resume: no epoch-N.pt in %s yet, starting from scratch", exp_dir)

    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    tokenizer = CharTokenizer()
    model_config = ModelConfig.from_size(cfg.size, len(tokenizer), **cfg.model_overrides)
    if resume_state and ModelConfig.from_dict(resume_state["config"]) != model_config:
        raise ValueError(f"{last_path}: was trained with another model config than this command "
                         "asks for; use the same --size and model options, or a new --exp-dir")
    model = CTCModel(model_config)

    train_set = SpeechDataset(read_manifest(cfg.train_manifest), tokenizer,
                              model_config.sample_rate, cfg.train_manifest)
    train_set.filter_infeasible(lambda n: int(model.output_lengths(torch.tensor(n))),
                                cfg.train_manifest)
    dev_set = SpeechDataset(read_manifest(cfg.dev_manifest), tokenizer,
                            model_config.sample_rate, cfg.dev_manifest)
    if len(train_set) == 0:
        raise ValueError(f"{cfg.train_manifest}: no usable training utterances")
    log.info("train: %d utterances, %.2f h; dev: %d utterances", len(train_set),
             sum(train_set.durations) / 3600, len(dev_set))

    sampler = BucketBatchSampler(train_set.durations, cfg.max_batch_seconds, seed=cfg.seed)
    loader = DataLoader(train_set, batch_sampler=sampler, collate_fn=collate,
                        num_workers=cfg.num_workers, pin_memory=use_amp,
                        persistent_workers=cfg.num_workers > 0,
                        generator=torch.Generator().manual_seed(cfg.seed))  # not the global RNG
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                  fused=device.type == "cuda")
    total_steps = cfg.epochs * len(sampler)
    warmup = min(cfg.warmup_steps, total_steps // 5)  # short runs still reach the peak LR
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warmup, total_steps))
    log.info("%d steps per epoch, %d in all, %d of warm-up", len(sampler), total_steps, warmup)
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp)
    decoder = get_decoder("greedy")

    start_epoch, step, best_wer, bad_epochs = 0, 0, float("inf"), 0
    if resume_state:
        model.load_state_dict(resume_state["model"])
        model.to(device)
        optimizer.load_state_dict(resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
        if resume_state["scaler"]:  # empty when the run so far had no AMP (CPU)
            scaler.load_state_dict(resume_state["scaler"])
        start_epoch, step = resume_state["epoch"] + 1, resume_state["step"]
        best_wer, bad_epochs = resume_state["best_wer"], resume_state["bad_epochs"]
        set_rng_state(resume_state["rng"])
        log.info("resumed from %s at epoch %d, step %d", last_path, start_epoch, step)
    else:
        estimate_cmvn(model, train_set, cfg.cmvn_utterances, cfg.seed)
        model.to(device)
    log.info("model: %s, %.1fM parameters", model_config,
             sum(p.numel() for p in model.parameters()) / 1e6)

    writer = SummaryWriter(exp_dir / "tensorboard")
    losses: list[float] = []
    epochs_done = start_epoch
    for epoch in range(start_epoch, cfg.epochs):
        if bad_epochs >= cfg.patience:
            break
        model.train()
        sampler.set_epoch(epoch)
        epoch_losses = []  # device scalars; synced once per log interval, not per step
        started = time.time()
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, disable=None)
        for batch in bar:
            if not report_failures(batch):
                continue
            waves = batch["waves"].to(device, non_blocking=True)
            tokens = batch["tokens"].to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                log_probs, frames = model(waves, batch["wave_lens"].to(device))  # (B, T, V)
            loss = F.ctc_loss(log_probs.transpose(0, 1), tokens, frames,
                              batch["token_lens"].to(device),
                              blank=tokenizer.blank_id, reduction="sum",
                              zero_infinity=True) / len(waves)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step += 1
            epoch_losses.append(loss.detach())
            if step % cfg.log_interval == 0:
                recent = torch.stack(epoch_losses[-cfg.log_interval:]).mean().item()
                bar.set_postfix(loss=f"{recent:.3f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
                writer.add_scalar("train/loss", recent, step)
                writer.add_scalar("train/lr", scheduler.get_last_lr()[0], step)
                if bar.disable:  # no progress bar on screen: report in the log instead
                    log.info("epoch %d step %d: loss %.3f", epoch + 1, step, recent)
        if not epoch_losses:
            raise ValueError(f"{cfg.train_manifest}: no training file could be read (see the "
                             "warnings); fix the audio paths")
        losses += torch.stack(epoch_losses).tolist()
        train_loss = sum(losses[-len(epoch_losses):]) / len(epoch_losses)

        hyps = decode_dataset(model, tokenizer, dev_set, decoder, cfg.max_batch_seconds)
        refs = {e["id"]: e["text"] for e in dev_set.entries}
        dev = score(refs, hyps, normalize)
        writer.add_scalar("dev/wer", dev.wer, step)
        writer.add_scalar("dev/cer", dev.cer, step)
        improved = dev.wer < best_wer
        best_wer, bad_epochs = (dev.wer, 0) if improved else (best_wer, bad_epochs + 1)
        log.info("epoch %d: train loss %.3f, dev WER %.2f%% CER %.2f%%%s (%.0f s)", epoch + 1,
                 train_loss, 100 * dev.wer, 100 * dev.cer, " (best)" if improved else "",
                 time.time() - started)
        if improved:
            save_atomic({**model_state(model, tokenizer), "dev_wer": dev.wer,
                         "epoch": epoch}, best_path)
        save_atomic({
            **model_state(model, tokenizer),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(), "epoch": epoch, "step": step,
            "best_wer": best_wer, "bad_epochs": bad_epochs, "rng": rng_state(),
            "train_config": asdict(cfg),
        }, exp_dir / f"epoch-{epoch + 1}.pt")
        for old in sorted(exp_dir.glob("epoch-*.pt"), key=_epoch_number)[:-cfg.keep_epochs]:
            old.unlink()
        epochs_done = epoch + 1
    if bad_epochs >= cfg.patience:
        log.info("early stop: dev WER has not improved for %d epochs", cfg.patience)
    writer.close()
    log.info("best dev WER %.2f%%; model at %s", 100 * best_wer, best_path)
    return {"best_wer": best_wer, "epochs": epochs_done, "losses": losses}
