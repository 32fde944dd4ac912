"""Training throughput of `asr train` against the common way of training the same model.

    python scripts/bench_train.py                           # on a GPU: the headline numbers
    python scripts/bench_train.py --device cpu --steps 2    # smoke test, runs anywhere

The model is the `large` size (5 bidirectional LSTM layers, 1024 units per direction,
80-mel input) in two configurations: x4 subsampling with a 500-unit vocabulary, and x2
with characters. Each is trained two ways on the same pool of synthetic utterances:

- ours: exactly the step `asr train` runs (asr.train.forward_backward, optimizer_step and
  its LR schedule): duration-bucketed batches (asr.data.BucketBatchSampler) in pinned memory,
  fp16 autocast with a grad scaler, one packed cuDNN call for all layers, lengths kept on the
  host, fused AdamW, and the loss left on the device;
- reference: the same model trained the common way, as deepspeech.pytorch does: fp32, packed
  sequences, random unsorted batches of a fixed number of utterances, lengths moved to the
  device with the batch, the default AdamW, and `loss.item()` every step.

After `--warmup` untimed steps, `--steps` steps are timed. For each configuration and way it
reports audio hours per GPU hour (real audio, not padding, per wall-clock second), utterances/s,
model TFLOP/s (see train_flops_per_frame), MFU (against the device's dense fp16 peak, PEAK_TFLOPS
or --peak-tflops) and peak GPU memory. A table comes first; the last line of stdout is one JSON
object: {"device", "ours": {"audio_h_per_gpu_h", "mfu", "tflops"}, "reference": {...}, "speedup",
...}, where ours, reference and speedup are the x4 configuration's. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from asr.data import BucketBatchSampler
from asr.model import SIZES, CTCModel, ModelConfig
from asr.text import CharTokenizer
from asr.train import forward_backward, make_optimizer, optimizer_step, warmup_cosine

log = logging.getLogger("bench_train")

# Dense (no sparsity) fp16 tensor-core peak, TFLOP/s, by a substring of the device name; the
# first match wins, so longer names come before their prefixes ("A100" before "A10").
PEAK_TFLOPS = [
    ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("H200", 989.0),
    ("B200", 2250.0), ("A100", 312.0), ("A10", 125.0), ("L40S", 362.0), ("L40", 181.0),
    ("L4", 121.0), ("V100", 125.0), ("T4", 65.0),
]
# The two configurations: (label, subsampling factor, vocabulary size, target tokens per second)
CHARS = len(CharTokenizer())
CONFIGS = [
    ("x4 bpe500", 4, 500, 3.5),  # about 3-4 word pieces per second of speech
    ("x2 chars", 2, CHARS, 15.0),  # about 15 characters per second
]
LR, WEIGHT_DECAY, CLIP_NORM = 2e-3, 1e-2, 5.0  # asr train's defaults
LR_WARMUP, LR_TOTAL = 300, 100_000  # schedule of a long run: the step cost does not depend on it
FRAMES_PER_SECOND = 100  # log-mel frames per second of audio (10 ms hop), before subsampling


def train_flops_per_frame(config: ModelConfig) -> int:
    """Training FLOPs (forward + backward) per subsampled output frame, matrix products only.

    A multiply-accumulate (MAC) costs 2 FLOPs forward and 4 backward (input and weight
    gradients): 6 FLOPs per MAC in training.
    - each LSTM layer and direction: 4 gates x H units x (I + H) inputs = 4·H·(I+H) MACs, so
      24·H·(I+H) FLOPs, with I the layer's input size (2H for every layer: the subsampling
      projects to 2H); a GRU has 3 gates (18·H·(I+H));
    - each Linear in -> out: 6·in·out FLOPs; the stacking projection (k·80 -> 2H) and the
      output layer (2H -> V).
    Left out, all small: biases, gate nonlinearities, log-mel, SpecAugment, dropout,
    log-softmax, the CTC loss and the optimizer.
    """
    if config.subsampling != "stack":
        raise ValueError("the FLOP formula covers frame-stacking subsampling only")
    gates = {"lstm": 4, "gru": 3}[config.rnn_type]
    directions = 2 if config.bidirectional else 1
    h = config.hidden_size
    width = h * directions  # the RNN's input and output size
    rnn = 6 * gates * h * (width + h) * directions * config.num_layers
    linear = 6 * config.n_mels * config.subsampling_factor * width + 6 * width * config.vocab_size
    return rnn + linear


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    """The device's dense fp16 peak, TFLOP/s; None when unknown (CPU or a device not listed)."""
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_TFLOPS if key in name), None)


def sample_durations(n: int, lo: float, hi: float, seed: int) -> list[float]:
    """n utterance durations (s): a log-normal truncated to [lo, hi] (draws outside are redrawn).

    Before truncation, in log space, the median sits at 80% of the range and sigma is 17.5% of
    it: median lo·(hi/lo)^0.8, sigma 0.175·ln(hi/lo). For 2-20 s (median 12.6 s, sigma 0.40)
    the truncated mix has a mean of 12.1 s, a median of 11.8 s and 80% of utterances between
    7.3 and 17.4 s: close to LibriSpeech's training segments (mean about 12.3 s).
    """
    rng = random.Random(seed)
    durations = []
    while len(durations) < n:
        u = rng.gauss(0.8, 0.175)
        if 0.0 <= u <= 1.0:
            durations.append(lo * (hi / lo) ** u)
    return durations


def make_batch(ids: list[int], durations: list[float], sample_rate: int, vocab_size: int,
               tokens_per_second: float, seed: int) -> dict:
    """A collated batch (the format asr.data.collate gives) of noise with random targets."""
    g = torch.Generator().manual_seed(seed)
    wave_lens = torch.tensor([round(durations[i] * sample_rate) for i in ids])  # (B,)
    token_lens = (wave_lens * (tokens_per_second / sample_rate)).round().long().clamp_min(1)  # (B,)
    samples, labels = int(wave_lens.max()), int(token_lens.max())
    waves = 0.1 * torch.randn(len(ids), samples, generator=g)  # (B, S)
    waves.masked_fill_(torch.arange(samples) >= wave_lens[:, None], 0.0)  # zero padding
    tokens = torch.randint(1, vocab_size, (len(ids), labels), generator=g)  # (B, L), 0 = blank
    tokens.masked_fill_(torch.arange(labels) >= token_lens[:, None], 0)
    return {"failed": [], "ids": [f"utt-{i}" for i in ids], "waves": waves, "wave_lens": wave_lens,
            "tokens": tokens, "token_lens": token_lens}


def new_model(config: ModelConfig, device: torch.device) -> CTCModel:
    """The model with the same initial weights every time, CMVN set from a noise utterance."""
    torch.manual_seed(0)
    model = CTCModel(config)
    with torch.no_grad():
        wave = 0.1 * torch.randn(1, 10 * config.sample_rate)  # (1, S)
        feats = model.fbank(wave, torch.tensor([wave.shape[1]]))[0][0].double()  # (T, n_mels)
        model.cmvn.set_stats(feats.sum(0), (feats**2).sum(0), feats.shape[0])
    return model.to(device).train()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step: Callable[[dict], object], batches: list[dict], warmup: int,
          device: torch.device) -> tuple[float, float | None, float]:
    """Run `step` on every batch; returns the wall seconds of the batches after the first
    `warmup`, the peak GPU memory (GiB; None on CPU) and the mean timed loss."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for batch in batches[:warmup]:
        step(batch)
    synchronize(device)
    start = time.perf_counter()
    losses = [step(batch) for batch in batches[warmup:]]  # device scalars or floats
    synchronize(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return seconds, peak, sum(float(loss) for loss in losses) / len(losses)


def run_ours(model: CTCModel, batches: list[dict], warmup: int, device: torch.device):
    """The step of `asr train` (asr/train.py), with the same functions."""
    optimizer = make_optimizer(model, LR, WEIGHT_DECAY, device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(LR_WARMUP, LR_TOTAL))
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")

    def step(batch: dict) -> torch.Tensor:
        loss = forward_backward(model, batch, device, scaler, len(batch["ids"]))
        optimizer_step(model, optimizer, scaler, CLIP_NORM)
        scheduler.step()
        return loss  # stays on the device: no host sync

    return timed(step, batches, warmup, device)


def run_reference(model: CTCModel, batches: list[dict], warmup: int, device: torch.device):
    """The same model trained the common way (as deepspeech.pytorch does).

    - fp32: no autocast, no grad scaler;
    - packed sequences (`pack_padded_sequence` around one nn.LSTM call) on every device;
    - lengths moved to the device with the batch, so packing reads them back (a sync);
    - the default AdamW (foreach on GPU, not fused);
    - `loss.item()` every step, to log it or check it is finite (another sync).
    Its batches are random and unsorted, a fixed number of utterances (see main). cuDNN settings
    are PyTorch's defaults, as for ours: they let cuDNN run the fp32 LSTM in TF32 on GPUs that have it.
    """
    model.rnn.fused = True  # packed sequences, also on CPU
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(LR_WARMUP, LR_TOTAL))

    def step(batch: dict) -> float:
        waves = batch["waves"].to(device)  # (B, S)
        wave_lens = batch["wave_lens"].to(device)  # (B,)
        tokens = batch["tokens"].to(device)  # (B, L)
        token_lens = batch["token_lens"].to(device)  # (B,)
        log_probs, frames = model(waves, wave_lens)  # (B, T, V), (B,)
        loss = F.ctc_loss(log_probs.transpose(0, 1), tokens, frames, token_lens,
                          reduction="sum", zero_infinity=True) / waves.shape[0]
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
        optimizer.step()
        scheduler.step()
        return loss.item()

    return timed(step, batches, warmup, device)


@dataclass
class Result:
    config: str
    impl: str
    utterances: int  # in the timed batches
    batches: int
    audio_s: float  # real audio in the timed batches
    padded_s: float  # padded audio (batch size x longest), the same batches
    flops: float  # useful training FLOPs of the timed batches
    seconds: float  # wall time of the timed batches
    peak_gib: float | None
    loss: float

    def metrics(self, peak: float | None) -> dict:
        tflops = self.flops / self.seconds / 1e12
        return {"audio_h_per_gpu_h": self.audio_s / self.seconds, "mfu": tflops / peak if peak else None,
                "tflops": tflops, "utt_per_s": self.utterances / self.seconds,
                "peak_mem_gib": self.peak_gib}


def bench(label: str, impl: str, run, config: ModelConfig, batches: list[dict], warmup: int,
          device: torch.device) -> Result:
    timed_batches = batches[warmup:]
    wave_lens = torch.cat([b["wave_lens"] for b in timed_batches])  # (N,) samples
    model = new_model(config, device)
    frames = int(model.output_lengths(wave_lens).sum())  # useful (unpadded) output frames
    log.info("%s, %s: %d + %d batches of %.0f utterances on average", label, impl, warmup,
             len(timed_batches), len(wave_lens) / len(timed_batches))
    seconds, peak_gib, loss = run(model, batches, warmup, device)
    del model
    log.info("%s, %s: %.2f s timed, loss %.1f", label, impl, seconds, loss)
    sr = config.sample_rate
    result = Result(
        config=label, impl=impl, utterances=len(wave_lens), batches=len(timed_batches),
        audio_s=int(wave_lens.sum()) / sr,
        padded_s=sum(b["waves"].numel() for b in timed_batches) / sr,
        flops=frames * train_flops_per_frame(config), seconds=seconds, peak_gib=peak_gib, loss=loss)
    gc.collect()  # free the model and optimizer before the next run
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def make_batches(ids: list[list[int]], durations: list[float], config: ModelConfig,
                 tokens_per_second: float, seed: int, pinned: bool) -> list[dict]:
    """make_batch for each list of utterance ids; `pinned`: tensors in pinned memory, as a
    DataLoader with pin_memory=True gives them."""
    batches = [make_batch(b, durations, config.sample_rate, config.vocab_size, tokens_per_second,
                          seed * 1_000_003 + i) for i, b in enumerate(ids)]
    if pinned:
        batches = [{k: v.pin_memory() if isinstance(v, torch.Tensor) else v for k, v in b.items()}
                   for b in batches]
    return batches


def fmt(value: float | None) -> str:
    """Three significant digits, or whole numbers from 100 on; "-" for None."""
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def rounded(metrics: dict) -> dict:
    """Four significant digits: enough for a benchmark, short in the JSON."""
    return {k: None if v is None else float(f"{v:.4g}") for k, v in metrics.items()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Defaults differ on CPU, where the large model trains at a few audio seconds per "
               "second, to keep a smoke test near a minute (2 idle cores): utterances of 0.5-2 s "
               "instead of 2-20 s, 8 s of padded audio per batch instead of 1200 s, 1 warm-up step "
               "instead of 5, 2 timed steps instead of 30.")
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda, cuda:N")
    p.add_argument("--size", default="large", choices=list(SIZES), help="model size (default large)")
    p.add_argument("--steps", type=int, help="timed steps per run (default 30; CPU 2)")
    p.add_argument("--warmup", type=int, help="untimed steps before them (default 5; CPU 1)")
    p.add_argument("--max-batch-seconds", type=float,
                   help="ours: padded audio per batch, as `asr train --max-batch-seconds` "
                        "(default 1200: about 95 utterances of 12.6 s; CPU 8)")
    p.add_argument("--durations", type=float, nargs=2, metavar=("MIN", "MAX"),
                   help="utterance length range, s (default 2 20; CPU 0.5 2); see sample_durations")
    p.add_argument("--pool", type=int, default=20_000,
                   help="synthetic utterances to draw batches from (default 20000)")
    p.add_argument("--peak-tflops", type=float,
                   help="the device's dense fp16 peak for MFU (default: by device name; none on CPU)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    cuda = torch.cuda.is_available() if args.device == "auto" else args.device.startswith("cuda")
    args.device = torch.device("cuda" if args.device == "auto" and cuda else
                               "cpu" if args.device == "auto" else args.device)
    for name, gpu, cpu in [("steps", 30, 2), ("warmup", 5, 1), ("max_batch_seconds", 1200.0, 8.0),
                           ("durations", [2.0, 20.0], [0.5, 2.0])]:
        if getattr(args, name) is None:
            setattr(args, name, gpu if cuda else cpu)
    if args.steps < 1 or args.warmup < 0:
        p.error("--steps must be at least 1 and --warmup at least 0")
    if not 0 < args.durations[0] < args.durations[1] <= args.max_batch_seconds:
        p.error("--durations MIN MAX needs 0 < MIN < MAX <= --max-batch-seconds")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="bench: %(message)s")
    device = args.device
    if device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device() if device.index is None
                              else device.index)
        device_name = torch.cuda.get_device_name(device)
    else:
        device_name = f"cpu ({torch.get_num_threads()} threads)"
    peak = peak_tflops(device, args.peak_tflops)
    log.info("%s; %s model; dense fp16 peak %s TFLOP/s", device_name, args.size, fmt(peak))

    # one pool of utterances for both ways; waves are made per batch, only for the batches run
    lo, hi = args.durations
    durations = sample_durations(args.pool, lo, hi, args.seed)  # seconds
    n = args.warmup + args.steps
    # the sampler's batches come longest first, as in training: packing needs no device sort
    ours_ids = list(BucketBatchSampler(durations, args.max_batch_seconds, seed=args.seed))[:n]
    if len(ours_ids) < n:
        raise SystemExit(f"--pool {args.pool} gives only {len(ours_ids)} batches; raise it")
    # reference: random unsorted batches of a fixed size, the same mean real audio per batch
    audio_per_batch = sum(durations[i] for b in ours_ids[args.warmup:] for i in b) / args.steps
    ref_size = max(1, round(audio_per_batch / (sum(durations) / len(durations))))
    rng = random.Random(args.seed)
    ref_ids = [rng.sample(range(len(durations)), ref_size) for _ in range(n)]

    results, notes = [], []
    for label, factor, vocab, tokens_per_second in CONFIGS:
        config = ModelConfig.from_size(args.size, vocab, subsampling_factor=factor)
        per_frame = train_flops_per_frame(config)
        per_audio_hour = per_frame * FRAMES_PER_SECOND / factor * 3600
        at_peak = f"{peak * 1e12 * 3600 / per_audio_hour:,.0f}" if peak else "-"
        notes.append(f"{label}: {per_frame / 1e6:,.1f} MFLOP per output frame ({FRAMES_PER_SECOND // factor}"
                     f" frames/s), {per_audio_hour:.3g} FLOP per audio hour; 100% of peak would be "
                     f"{at_peak} audio h/GPU h")

        # a run's batches are all made before it starts (as loader workers would, ahead of the GPU)
        results.append(bench(label, "ours", run_ours, config, make_batches(
            ours_ids, durations, config, tokens_per_second, args.seed, pinned=device.type == "cuda"),
            args.warmup, device))
        results.append(bench(label, "reference", run_reference, config, make_batches(
            ref_ids, durations, config, tokens_per_second, args.seed, pinned=False),
            args.warmup, device))

    print(f"Training throughput, {device_name}, {args.size} model ({args.steps} timed steps after "
          f"{args.warmup} warm-up; utterances {lo:g}-{hi:g} s)\n")
    print("| config    | impl      | utts/batch | padding | audio h/GPU h |   utt/s | TFLOP/s |   MFU "
          "| peak GiB |")
    print("|-----------|-----------|-----------:|--------:|--------------:|--------:|--------:|------:"
          "|---------:|")
    for r in results:
        m = r.metrics(peak)
        mfu = "-" if m["mfu"] is None else f"{100 * m['mfu']:.1f}%"
        print(f"| {r.config:<9} | {r.impl:<9} | {r.utterances / r.batches:10.1f} "
              f"| {100 * (1 - r.audio_s / r.padded_s):6.1f}% | {fmt(m['audio_h_per_gpu_h']):>13} "
              f"| {fmt(m['utt_per_s']):>7} | {fmt(m['tflops']):>7} | {mfu:>5} "
              f"| {fmt(m['peak_mem_gib']):>8} |")
    print()
    print("FLOP formula (train_flops_per_frame): per output frame, 24·H·(I+H) per LSTM layer and "
          "direction (I = 2H) + 6·in·out per Linear;\nuseful (unpadded) frames only; MFU against the "
          "dense fp16 peak for both ways (the reference runs fp32)")
    for note in notes:
        print(note)

    configs = {}
    for label, *_ in CONFIGS:
        ours, ref = (r.metrics(peak) for r in results if r.config == label)
        configs[label] = {"ours": rounded(ours), "reference": rounded(ref),
                          "speedup": round(ours["audio_h_per_gpu_h"] / ref["audio_h_per_gpu_h"], 3)}
    headline = configs[CONFIGS[0][0]]
    keys = ("audio_h_per_gpu_h", "mfu", "tflops")
    summary = {"device": device_name,
               "ours": {k: headline["ours"][k] for k in keys},
               "reference": {k: headline["reference"][k] for k in keys},
               "speedup": headline["speedup"], "size": args.size, "configs": configs}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
