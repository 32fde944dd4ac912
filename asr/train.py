"""The training loop: CTC loss, AdamW with warm-up and cosine decay, AMP on GPU,
data parallelism under `torchrun`, dev-WER model selection with early stopping, and
checkpoints that resume exactly, mid-epoch too.

Under `exp_dir` it writes `log/train.log`, `tensorboard/`, `epoch-N.pt` (full training
state after epoch N), `step-K.pt` (the same after global step K, every `save_every_steps`),
the last `keep_checkpoints` of each, and `best.pt` (the model with the best dev WER).
`--resume` continues from the newest of them that is intact (each carries a checksum): a
damaged one is reported and passed over. A step whose loss or gradient is not finite is
skipped and counted; `max_skipped_steps` of them in a row stop training with advice.

On GPU a step makes no host-device sync of its own: lengths stay on the CPU, where packing
reads them (batches come longest first, so nothing is reordered on the device); the loss
stays on the device until a log interval; fused AdamW takes the grad scaler's inf check on
the device. PyTorch's CUDA CTC loss still copies its small length tables to the device.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from asr.atomic import remove_leftovers
from asr.augment import AugmentConfig, Augmenter
from asr.checkpoint import (
    CheckpointWriteError,
    load_checkpoint,
    model_state,
    rng_state,
    save_atomic,
    set_rng_state,
)
from asr.config import TrainConfig
from asr.data import (
    AugmentedDataset,
    BucketBatchSampler,
    SpeechDataset,
    collate,
    read_manifest,
    report_failures,
)
from asr.decode import build_decoder
from asr.distributed import Distributed, init_distributed
from asr.inference import decode_dataset
from asr.model import CTCModel, ModelConfig
from asr.preflight import fitting_budget, worst_case_batch
from asr.score import score
from asr.text import normalize
from asr.tokenizers import tokenizer_from_dict, train_tokenizer

log = logging.getLogger("asr.train")


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
        feats, frames = model.fbank(wave, torch.tensor([wave.shape[1]]))  # (1, T, n_mels)
        feats = model.cmvn.centre(feats, frames)[0].double()
        total += feats.sum(0)
        total_sq += (feats**2).sum(0)
        count += feats.shape[0]
    model.cmvn.set_stats(total, total_sq, count)


def init_state(cfg: TrainConfig) -> dict | None:
    """The --init-from checkpoint, whose tokenizer the run keeps."""
    return load_checkpoint(cfg.init_from) if cfg.init_from else None


def make_tokenizer(cfg: TrainConfig, state: dict | None, dist: Distributed):
    """The tokenizer of a resumed or initialising checkpoint, else one learnt from the training
    transcripts (`cfg.tokenizer`: chars, or sentencepiece pieces; rank 0 learns, all use it)."""
    if state is not None:
        return tokenizer_from_dict(state["tokenizer"])
    tokenizer = None
    if dist.is_main:
        texts = [normalize(e["text"]) for e in read_manifest(cfg.train_manifest)]
        tokenizer = train_tokenizer(cfg.tokenizer, texts, cfg.vocab_size, cfg.piece_type).to_dict()
    tokenizer = tokenizer_from_dict(dist.broadcast(tokenizer))
    log.info("tokenizer: %s, %d tokens", cfg.tokenizer, len(tokenizer))
    return tokenizer


def init_weights(model: CTCModel, checkpoint: str) -> None:
    """Load a trained model's weights and CMVN into `model` (same size and tokens)."""
    state = load_checkpoint(checkpoint)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError:
        raise ValueError(f"{checkpoint}: its model ({ModelConfig.from_dict(state['config'])}) does "
                         "not fit the one asked for; use the same --size, layers and tokens") from None
    cmvn = ModelConfig.from_dict(state["config"]).cmvn
    if cmvn != model.config.cmvn:
        raise ValueError(f"{checkpoint}: its CMVN statistics are for --cmvn {cmvn}, not "
                         f"{model.config.cmvn}; pass --cmvn {cmvn}")
    log.info("initialised from %s", checkpoint)


def _checkpoint_number(path: Path) -> int:
    return int(path.stem.split("-")[1])


def checkpoint_files(exp_dir: Path, kind: str) -> list[Path]:
    """exp_dir's `kind`-N.pt files ("epoch" or "step"), oldest first."""
    return sorted(exp_dir.glob(f"{kind}-*.pt"), key=_checkpoint_number)


def newest_intact_checkpoint(exp_dir: Path) -> tuple[Path, dict] | None:
    """The training state with the highest step among exp_dir's step-K.pt and epoch-N.pt files
    that load and match their checksum; damaged ones are reported and passed over."""
    newest = None
    for kind in ("step", "epoch"):
        for path in reversed(checkpoint_files(exp_dir, kind)):
            try:
                state = load_checkpoint(path)
            except ValueError as err:
                log.warning("%s; resuming from an older checkpoint", err)
                continue
            if newest is None or state["step"] > newest[1]["step"]:
                newest = (path, state)
            break
    return newest


class TrainingStopped(ValueError):
    """Training cannot go on; the message says why, what is kept and what to do."""


def kept(exp_dir: Path) -> str:
    """Where a stopped run can go on from."""
    found = checkpoint_files(exp_dir, "step") + checkpoint_files(exp_dir, "epoch")
    if not found:
        return "no checkpoint was written yet"
    newest = max(found, key=lambda path: path.stat().st_mtime)
    return f"{newest} is kept and --resume goes on from there"


class SkippedSteps:
    """Steps skipped for a non-finite loss or gradient: counted on the device without a host
    sync, checked on the host by `check` (each step on CPU, each log interval on GPU)."""

    def __init__(self, limit: int, device: torch.device, total: int = 0):
        self.limit = limit
        self.total = torch.tensor(total, device=device)
        self.in_a_row = torch.tensor(0, device=device)
        self.reported = total

    def add(self, taken: torch.Tensor) -> None:
        self.total += ~taken
        self.in_a_row = (self.in_a_row + 1) * ~taken

    def check(self, step: int, advice: str) -> None:
        total, in_a_row = int(self.total), int(self.in_a_row)
        if total > self.reported:
            log.warning("step %d: %d step(s) skipped for a non-finite loss or gradient, %d in all",
                        step, total - self.reported, total)
            self.reported = total
        if in_a_row >= self.limit:
            raise TrainingStopped(f"training stopped at step {step}: the last {in_a_row} steps had "
                                  f"a non-finite loss or gradient (the model diverged); {advice}")


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


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float,
                   device: torch.device) -> torch.optim.AdamW:
    """AdamW; fused on GPU, where it also takes the grad scaler's inf check without a sync."""
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay,
                             fused=device.type == "cuda")


def forward_backward(model: torch.nn.Module, batch: dict, device: torch.device,
                     scaler: torch.amp.GradScaler, batch_size: int, world_size: int = 1,
                     weight: float = 1.0, blank: int = 0) -> torch.Tensor:
    """CTC loss of one batch (this rank's share of a global batch) and its backward pass.

    The loss is summed over utterances and divided by the global `batch_size`; DDP averages
    gradients over ranks, so the backward pass scales by `world_size` to give exactly the
    gradient of one process on the whole batch. Returns this share's loss (device scalar).
    """
    waves = batch["waves"].to(device, non_blocking=True)  # (B, S)
    tokens = batch["tokens"].to(device, non_blocking=True)  # (B, L)
    with torch.autocast(device.type, dtype=torch.float16, enabled=scaler.is_enabled()):
        log_probs, frames = model(waves, batch["wave_lens"])  # (B, T, V); frames on the CPU
    loss = F.ctc_loss(log_probs.transpose(0, 1), tokens, frames, batch["token_lens"],
                      blank=blank, reduction="sum", zero_infinity=True) * (weight / batch_size)
    scaler.scale(loss * world_size).backward()
    return loss.detach()


def optimizer_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                   scaler: torch.amp.GradScaler, clip_norm: float) -> torch.Tensor:
    """Unscale, clip, step and clear the gradients; returns whether the step was taken (a bool
    on the device): not when the gradient is not finite, as after a NaN or inf loss. No host
    sync on GPU, where the scaler skips such steps inside fused AdamW."""
    scaler.unscale_(optimizer)
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)  # equal on every rank
    finite = torch.isfinite(norm)
    if scaler.is_enabled():
        scaler.step(optimizer)
        scaler.update()
    elif finite:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return finite


def run_preflight(model: torch.nn.Module, train_set: SpeechDataset, cfg: TrainConfig,
                  device: torch.device, scaler: torch.amp.GradScaler, dist: Distributed,
                  stretch: float = 1.0) -> None:
    """Run the worst batch `cfg.max_batch_seconds` allows (utterances up to `stretch` times
    longer after augmentation); stop with a budget that fits if it runs out of memory.
    Optimizer state (2 copies of the weights) comes on top."""
    config = model.module.config if isinstance(model, DDP) else model.config
    longest = max(train_set.durations) * stretch
    max_tokens = max(len(t) for t in train_set.tokens)

    def run_batch(seconds: float) -> None:
        batch = worst_case_batch(seconds, longest, max_tokens, config.sample_rate,
                                 config.vocab_size)
        try:
            with model.no_sync() if isinstance(model, DDP) else contextlib.nullcontext():
                forward_backward(model, batch, device, scaler, len(batch["ids"]))
        finally:
            model.zero_grad(set_to_none=True)
            del batch
            torch.cuda.empty_cache()

    torch.cuda.reset_peak_memory_stats(device)
    random_state = rng_state()  # the pre-flight must not change what training draws
    fit = fitting_budget(run_batch, cfg.max_batch_seconds, longest)
    set_rng_state(random_state)
    fits = [f for f in dist.gather(fit) if f is not None]
    if fits:
        raise ValueError(f"--max-batch-seconds {cfg.max_batch_seconds:g} runs out of GPU memory "
                         f"on the largest batch it allows ({longest:.1f} s utterances); "
                         f"--max-batch-seconds {int(min(fits))} fits")
    total = torch.cuda.get_device_properties(device).total_memory
    log.info("pre-flight: the largest batch (%.0f s padded) peaks at %.1f of %.1f GiB",
             cfg.max_batch_seconds, torch.cuda.max_memory_allocated(device) / 2**30, total / 2**30)


class WorkerWatch:
    """Which data-loader workers died. PyTorch reports a dead worker from a signal handler,
    wherever training happens to be and as one of several errors; this names the cause."""

    loader: DataLoader | None = None

    def dead_workers(self) -> list[int]:
        """After an error: the workers that died (waiting up to a second for each to end, as the
        broken connection may be noticed first)."""
        workers = getattr(getattr(self.loader, "_iterator", None), "_workers", [])
        if not workers or threading.current_thread() is not threading.main_thread():
            return []
        handler = signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # PyTorch's would raise in join
        dead = []
        for worker in workers:
            worker.join(timeout=1.0)
            if worker.exitcode not in (None, 0):
                dead.append(worker.pid)
        if not dead:
            signal.signal(signal.SIGCHLD, handler)
        return dead


@contextlib.contextmanager
def flushed_denormals():
    """Denormal floats count as zero inside the block (where the CPU can), as before after it.

    As a model trains, gradients and Adam's moments reach denormal floats, which the CPU
    handles several times slower (2.4x per step late in a synth run, scripts/bench_denormal.py).
    """
    was_flushing = float(torch.tensor(1e-39) * 1.0) == 0.0
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(was_flushing)


def train(cfg: TrainConfig, on_epoch_end: Callable[[int, float], None] | None = None) -> dict:
    """Train a model; returns {"best_wer", "epochs", "steps", "losses"} (per-step losses).
    `on_epoch_end(epoch, dev_wer)` is called on rank 0 after each epoch's dev decoding (a
    sweep's pruner raises there to stop a trial).

    Under torchrun each process takes its share of every global batch; the result equals
    one process with `max_batch_seconds` times the number of processes, up to float error.
    """
    dist = init_distributed(cfg.device)
    watch = WorkerWatch()
    try:
        with flushed_denormals():
            result = _train(cfg, dist, watch, on_epoch_end)
        dist.barrier()  # ranks leave together, once rank 0 has written the last files
        return result
    except Exception as err:
        if not (dead := watch.dead_workers()):
            raise
        raise TrainingStopped(f"a data-loader worker (pid {', '.join(map(str, dead))}) died "
                              f"({type(err).__name__}); training stopped, {kept(Path(cfg.exp_dir))}."
                              " A worker killed for memory (see `dmesg`) needs a lower "
                              "--num-workers or --max-batch-seconds") from None
    finally:
        dist.close()


def _train(cfg: TrainConfig, dist: Distributed, watch: WorkerWatch,
           on_epoch_end: Callable[[int, float], None] | None) -> dict:
    exp_dir = Path(cfg.exp_dir)
    if dist.is_main:
        setup_logging(exp_dir)
    else:  # one voice: rank 0 logs, writes checkpoints and TensorBoard
        logging.getLogger("asr").setLevel(logging.WARNING)
    device = dist.device
    use_amp = device.type == "cuda"
    best_path = exp_dir / "best.pt"
    if dist.is_main and (leftovers := remove_leftovers(exp_dir, "*.pt")):
        log.info("removed %d partial checkpoint(s) of an interrupted run", len(leftovers))
    last_path, resume_state = (newest_intact_checkpoint(exp_dir) if cfg.resume else None) \
        or (None, None)
    if cfg.resume and resume_state is None:
        log.info("--resume: no intact checkpoint in %s yet, starting from scratch", exp_dir)

    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    tokenizer = make_tokenizer(cfg, resume_state or init_state(cfg), dist)
    model_config = ModelConfig.from_size(cfg.size, len(tokenizer), **cfg.model_overrides)
    if resume_state and ModelConfig.from_dict(resume_state["config"]) != model_config:
        raise ValueError(f"{last_path}: was trained with another model config than this command "
                         "asks for; use the same --size and model options, or a new --exp-dir")
    model = CTCModel(model_config)

    train_set = SpeechDataset(read_manifest(cfg.train_manifest), tokenizer,
                              model_config.sample_rate, cfg.train_manifest)
    augment = AugmentConfig.parse(cfg.augment)
    # speed perturbation stretches audio by up to `longest` and shrinks it by up to `shortest`
    longest, shortest = (1 / augment.speed_range[0], 1 / augment.speed_range[1]) \
        if augment.speed_prob > 0 else (1.0, 1.0)
    train_set.filter_infeasible(
        lambda n: int(model.output_lengths(torch.tensor(int(n * shortest)))), cfg.train_manifest,
        batch_seconds=cfg.max_batch_seconds / longest)
    dev_set = SpeechDataset(read_manifest(cfg.dev_manifest), tokenizer,
                            model_config.sample_rate, cfg.dev_manifest)
    if len(train_set) == 0:
        raise ValueError(f"{cfg.train_manifest}: no usable training utterances")
    log.info("train: %d utterances, %.2f h; dev: %d utterances; %d process(es)", len(train_set),
             sum(train_set.durations) / 3600, len(dev_set), dist.world_size)

    sampler = BucketBatchSampler([d * longest for d in train_set.durations],
                                 cfg.max_batch_seconds, seed=cfg.seed,
                                 num_replicas=dist.world_size, rank=dist.rank,
                                 tag_epoch=augment.enabled)
    if augment.enabled:
        babble = [e["audio_filepath"] for e in train_set.entries]
        augmenter = Augmenter(augment, model_config.sample_rate, babble, seed=cfg.seed)
        log.info("augmentation: %s", augment)
    loader = DataLoader(AugmentedDataset(train_set, augmenter, cfg.seed) if augment.enabled
                        else train_set, batch_sampler=sampler, collate_fn=collate,
                        num_workers=cfg.num_workers, pin_memory=use_amp,
                        persistent_workers=cfg.num_workers > 0,
                        generator=torch.Generator().manual_seed(cfg.seed))  # not the global RNG
    watch.loader = loader
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay, device)
    total_steps = cfg.epochs * len(sampler)
    warmup = min(cfg.warmup_steps, total_steps // 5)  # short runs still reach the peak LR
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warmup, total_steps))
    log.info("%d steps per epoch, %d in all, %d of warm-up", len(sampler), total_steps, warmup)
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp)

    start_epoch, start_batch, step, best_wer, bad_epochs = 0, 0, 0, float("inf"), 0
    skipped = SkippedSteps(cfg.max_skipped_steps, device)
    if resume_state:
        model.load_state_dict(resume_state["model"])
        model.to(device)
        optimizer.load_state_dict(resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
        if resume_state["scaler"]:  # empty when the run so far had no AMP (CPU)
            scaler.load_state_dict(resume_state["scaler"])
        start_epoch, start_batch = resume_state["epoch"], resume_state["batch"]
        step = resume_state["step"]
        best_wer, bad_epochs = resume_state["best_wer"], resume_state["bad_epochs"]
        skipped = SkippedSteps(cfg.max_skipped_steps, device, resume_state.get("skipped_steps", 0))
        rng = resume_state["rng"]
        if len(rng) == dist.world_size:
            set_rng_state(rng[dist.rank])
        else:
            log.warning("%s was written by %d process(es), this run has %d: random state "
                        "(SpecAugment, dropout) is not restored exactly", last_path, len(rng),
                        dist.world_size)
        log.info("resumed from %s at epoch %d, batch %d, step %d", last_path, start_epoch + 1,
                 start_batch, step)
    elif cfg.init_from:
        init_weights(model, cfg.init_from)
        model.to(device)
    else:
        if dist.is_main:  # DDP copies rank 0's CMVN statistics to the other ranks
            estimate_cmvn(model, train_set, cfg.cmvn_utterances, cfg.seed)
        model.to(device)
    log.info("model: %s, %.1fM parameters", model_config,
             sum(p.numel() for p in model.parameters()) / 1e6)
    trained = DDP(model, device_ids=[device] if device.type == "cuda" else None) \
        if dist.enabled else model
    if cfg.preflight and device.type == "cuda":
        run_preflight(trained, train_set, cfg, device, scaler, dist, longest)

    def save(state: dict, path: Path) -> None:
        try:
            save_atomic(state, path)
        except CheckpointWriteError as err:
            raise TrainingStopped(f"{err}; training stopped, {kept(exp_dir)}. Free disk space or fix "
                                  "the folder's permissions first") from None

    def save_state(path: Path, epoch: int, batch: int, kind: str) -> None:
        """Full training state, written by rank 0; every rank's RNG state goes in."""
        rng = dist.gather(rng_state())
        if dist.is_main:
            save({
                **model_state(model, tokenizer),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(), "epoch": epoch, "batch": batch, "step": step,
                "best_wer": best_wer, "bad_epochs": bad_epochs, "rng": rng,
                "skipped_steps": int(skipped.total), "train_config": asdict(cfg),
            }, path)
            for old in checkpoint_files(exp_dir, kind)[:-cfg.keep_checkpoints]:
                old.unlink()

    diverged = (f"lower --lr (now {cfg.lr:g}) or --clip-norm, or raise --warmup-steps, and train "
                "again in a new --exp-dir; if only a few batches are bad, check the data with "
                "`asr prepare --report`")

    writer = SummaryWriter(exp_dir / "tensorboard") if dist.is_main else None
    decoder = build_decoder("greedy")
    losses: list[float] = []
    epochs_done = start_epoch
    for epoch in range(start_epoch, cfg.epochs):
        if bad_epochs >= cfg.patience:
            break
        trained.train()
        sampler.set_epoch(epoch, start_batch)
        global_sizes = [len(b) for b in sampler.global_batches()]
        epoch_losses = []  # device scalars; summed over ranks once per log interval
        started = time.time()
        stopped_mid_epoch = False
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                   disable=None if dist.is_main else True)
        for i, batch in enumerate(bar):
            weight = 1.0
            if not report_failures(batch):
                if not dist.enabled:
                    continue
                # the other ranks wait for this one's gradients: take part with zero weight
                batch, weight = worst_case_batch(1.0, 1.0, 1, model_config.sample_rate, 2), 0.0
            epoch_losses.append(forward_backward(
                trained, batch, device, scaler, global_sizes[i], dist.world_size, weight,
                tokenizer.blank_id))
            skipped.add(optimizer_step(trained, optimizer, scaler, cfg.clip_norm))
            scheduler.step()
            step += 1
            if device.type == "cpu" or step % cfg.log_interval == 0:
                skipped.check(step, diverged)
            if step % cfg.log_interval == 0:
                recent = dist.sum(torch.stack(epoch_losses[-cfg.log_interval:])).mean().item()
                lr = scheduler.get_last_lr()[0]
                if writer:
                    bar.set_postfix(loss=f"{recent:.3f}", lr=f"{lr:.2e}")
                    writer.add_scalar("train/loss", recent, step)
                    writer.add_scalar("train/lr", lr, step)
                    writer.add_scalar("train/skipped_steps", int(skipped.total), step)
                    if bar.disable:  # no progress bar on screen: report in the log instead
                        log.info("epoch %d step %d: loss %.3f", epoch + 1, step, recent)
            if i + 1 == len(global_sizes):
                continue  # the epoch's end writes epoch-N.pt
            if step == cfg.max_steps:
                save_state(exp_dir / f"step-{step}.pt", epoch, start_batch + i + 1, "step")
                log.info("stopped after step %d (--max-steps); --resume carries on", step)
                stopped_mid_epoch = True
                break
            if cfg.save_every_steps and step % cfg.save_every_steps == 0:
                save_state(exp_dir / f"step-{step}.pt", epoch, start_batch + i + 1, "step")
        if stopped_mid_epoch:
            break
        start_batch = 0
        if not epoch_losses:
            raise ValueError(f"{cfg.train_manifest}: no training file could be read (see the "
                             "warnings); fix the audio paths")
        epoch_losses = dist.sum(torch.stack(epoch_losses)).tolist()
        losses += epoch_losses
        train_loss = sum(epoch_losses) / len(epoch_losses)

        if dist.is_main:
            hyps = decode_dataset(model, tokenizer, dev_set, decoder, cfg.max_batch_seconds)
            dev = score({e["id"]: e["text"] for e in dev_set.entries}, hyps, normalize)
            writer.add_scalar("dev/wer", dev.wer, step)
            writer.add_scalar("dev/cer", dev.cer, step)
            improved = dev.wer < best_wer
            best_wer, bad_epochs = (dev.wer, 0) if improved else (best_wer, bad_epochs + 1)
            log.info("epoch %d: train loss %.3f, dev WER %.2f%% CER %.2f%%%s (%.0f s)",
                     epoch + 1, train_loss, 100 * dev.wer, 100 * dev.cer,
                     " (best)" if improved else "", time.time() - started)
            if improved:
                save({**model_state(model, tokenizer), "dev_wer": dev.wer, "epoch": epoch},
                     best_path)
            if on_epoch_end:
                on_epoch_end(epoch + 1, dev.wer)
        best_wer, bad_epochs = dist.broadcast((best_wer, bad_epochs))
        save_state(exp_dir / f"epoch-{epoch + 1}.pt", epoch + 1, 0, "epoch")
        if dist.is_main:
            for old in checkpoint_files(exp_dir, "step"):  # superseded by epoch-N.pt
                old.unlink()
        epochs_done = epoch + 1
        if step == cfg.max_steps:
            break
    if bad_epochs >= cfg.patience:
        log.info("early stop: dev WER has not improved for %d epochs", cfg.patience)
    if writer:
        writer.close()
    log.info("best dev WER %.2f%%; model at %s", 100 * best_wer, best_path)
    return {"best_wer": best_wer, "epochs": epochs_done, "steps": step, "losses": losses}
