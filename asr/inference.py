"""Running a trained model over many utterances: batched forward passes plus a decoder."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from asr.data import BucketBatchSampler, SpeechDataset, collate, report_failures
from asr.decode import Decoder
from asr.model import CTCModel
from asr.text import CharTokenizer


def pick_device(name: str) -> torch.device:
    """"auto" is the GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: no CUDA device is visible; use --device cpu or auto")
    return device


def model_device(model) -> torch.device:
    """Where `model` runs: its parameters' or buffers' device (a dynamically quantized model
    has no parameters); the CPU for other engines (ONNX Runtime)."""
    if isinstance(model, torch.nn.Module):
        return next(iter([*model.parameters(), *model.buffers()])).device
    return torch.device("cpu")


def run_model(model, batches: Iterable[dict]) -> Iterator[tuple[list, torch.Tensor, torch.Tensor]]:
    """The one forward loop: for each batch {"ids", "waves" (B, S), "wave_lens" (B,)} yield
    (ids, log-probs (B, T, V) float32 on the model's device, frames (B,)), in eval mode.
    `model` is a CTCModel (fp32 or quantized) or any callable with its forward's signature."""
    device = model_device(model)
    module = isinstance(model, torch.nn.Module)
    was_training = module and model.training
    if module:
        model.eval()
    try:
        for batch in batches:
            with torch.inference_mode(), \
                    torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
                # lengths stay on the CPU: the fused RNN reads them there without a device sync
                log_probs, frames = model(batch["waves"].to(device), batch["wave_lens"])
            yield batch["ids"], log_probs.float(), frames
    finally:
        if module:
            model.train(was_training)


def _model_outputs(model: CTCModel, dataset: SpeechDataset, max_batch_seconds: float,
                   num_workers: int = 0, desc: str = "decode"):
    """run_model over `dataset` in length-bucketed batches. Unreadable files are logged and
    left out."""
    device = model_device(model)
    longest = dataset.max_seconds or math.inf  # longer ones fail to load: batched as if short
    durations = [d if d <= longest else 0.0 for d in dataset.durations]
    budget = max(max_batch_seconds, max(durations, default=0))
    sampler = BucketBatchSampler(durations, budget, shuffle=False)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate,
                        num_workers=num_workers, pin_memory=device.type == "cuda")
    readable = (batch for batch in tqdm(loader, desc=desc, leave=False, disable=None)
                if report_failures(batch))
    yield from run_model(model, readable)


@torch.inference_mode()
def decode_dataset(model: CTCModel, tokenizer: CharTokenizer, dataset: SpeechDataset,
                   decoder: Decoder, max_batch_seconds: float = 300.0,
                   num_workers: int = 0) -> dict[str, str]:
    """Decode every utterance of `dataset`; returns {id: text} in the dataset's order.

    Unreadable files are logged and left out: scoring counts them as deletions.
    """
    texts = {}
    for ids, log_probs, frames in _model_outputs(model, dataset, max_batch_seconds, num_workers):
        for utt_id, tokens in zip(ids, decoder(log_probs, frames)):
            texts[utt_id] = tokenizer.decode(tokens)
    return {e["id"]: texts[e["id"]] for e in dataset.entries if e["id"] in texts}


@torch.inference_mode()
def compute_log_probs(model: CTCModel, dataset: SpeechDataset,
                      max_batch_seconds: float = 300.0) -> dict[str, torch.Tensor]:
    """{id: log-probs (T, V) float32 on the CPU} for every readable utterance: run the
    acoustic model once, then decode as often as needed (LM tuning, benchmarks)."""
    out = {}
    for ids, log_probs, frames in _model_outputs(model, dataset, max_batch_seconds,
                                                 desc="log-probs"):
        for utt_id, lp, n in zip(ids, log_probs.cpu(), frames.tolist()):
            out[utt_id] = lp[:n].clone()
    return out


def decode_log_probs(log_probs: dict[str, torch.Tensor], decoder: Decoder,
                     tokenizer: CharTokenizer, batch_size: int = 256,
                     device: str | torch.device = "cpu") -> dict[str, str]:
    """Decode stored log-probs in batches of similar length; returns {id: text}."""
    ids = sorted(log_probs, key=lambda i: len(log_probs[i]))
    texts = {}
    for start in range(0, len(ids), batch_size):
        chunk = ids[start:start + batch_size]
        lengths = torch.tensor([len(log_probs[i]) for i in chunk])
        batch = torch.nn.utils.rnn.pad_sequence([log_probs[i] for i in chunk], batch_first=True)
        for utt_id, tokens in zip(chunk, decoder(batch.to(device), lengths)):
            texts[utt_id] = tokenizer.decode(tokens)
    return {i: texts[i] for i in log_probs}
