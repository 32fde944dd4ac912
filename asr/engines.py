"""A model loaded for inference with an engine: torch fp32, torch dynamic int8, or onnxruntime.

Each returned model is called like CTCModel: waves (B, S) float32 and lengths (B,) int64 on
the CPU -> log-probs (B, T, V) float32, frames (B,); each has `.config` and `.output_lengths`.
On the CPU the torch engines run the recurrent layers in one call (RecurrentStack's fused
path: exact for every length) with denormal floats flushed to zero during each call: fp32
LSTM states reach denormals, which the CPU computes several times slower (on the synth
recipe's model 2x RTFx together). int8 quantizes the weights of the recurrent and linear
layers (activations stay float, quantized on the fly): on that model ~1.6x faster again,
with the same WER.
"""

from __future__ import annotations

import copy
import logging
import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from asr.checkpoint import ONNX, load_checkpoint, model_from_state
from asr.model import CTCModel

log = logging.getLogger(__name__)
ENGINES = ("torch", "onnx")
QUANTIZE = (None, "int8")


def default_threads() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def quantize_int8(model: CTCModel) -> CTCModel:
    """A copy of `model` (CPU, eval) with dynamic int8 LSTM/GRU and Linear layers, run through
    RecurrentStack's fused path (the split path reads float weight attributes)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "torch.ao.quantization is deprecated", DeprecationWarning)
        quantized = torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(model).cpu().eval(), {nn.LSTM, nn.GRU, nn.Linear}, dtype=torch.qint8,
            inplace=True)
    quantized.rnn.fused = True
    return quantized


def _onnx_model(model: CTCModel, path: Path, threads: int):
    """An OnnxModel of the folder's model.onnx, or of `model` exported now (in memory)."""
    from asr.onnx_model import OnnxModel, export_onnx

    if path.is_dir() and (path / ONNX).is_file():
        return OnnxModel(path / ONNX, model.config, threads)
    log.info("%s has no %s: exporting the model to ONNX now (`asr export --onnx` saves it)", path, ONNX)
    with tempfile.TemporaryDirectory() as tmp:
        onnx = export_onnx(model, Path(tmp) / ONNX).read_bytes()
    return OnnxModel(onnx, model.config, threads)


def flush_denormals_in_forward(model: nn.Module) -> nn.Module:
    """Denormal floats count as zero while `model` runs; the caller's setting is restored after."""

    def before(module, args):
        module.was_flushing = float(torch.tensor(1e-39) * 1.0) == 0.0
        torch.set_flush_denormal(True)

    def after(module, args, output):
        torch.set_flush_denormal(module.was_flushing)

    model.register_forward_pre_hook(before)
    model.register_forward_hook(after, always_call=True)
    return model


def load_for_inference(path: str | Path, engine: str = "torch", quantize: str | None = None,
                       device: str | torch.device = "cpu", threads: int | None = None):
    """(model, tokenizer, state) for a checkpoint or an exported folder at `path`; `state` is
    load_checkpoint's dict (its "decoding" holds the tuned LM settings). int8 and onnx run
    on the CPU; `threads` (default: the CPUs this process may use) sets torch's intra-op
    threads and onnxruntime's."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose {' or '.join(ENGINES)}")
    if quantize not in QUANTIZE:
        raise ValueError(f"unknown quantization {quantize!r}; use int8 or none")
    if engine == "onnx" and quantize:
        raise ValueError("int8 is for the torch engine; use --engine torch with int8, or onnx in fp32")
    device = torch.device(device)
    if device.type != "cpu" and (engine == "onnx" or quantize):
        raise ValueError(f"--device {device}: the {quantize or engine} engine runs on the CPU; "
                         "use --device cpu")
    threads = threads or default_threads()
    if device.type == "cpu":
        torch.set_num_threads(threads)
    state = load_checkpoint(path)
    model, tokenizer = model_from_state(state, device)
    if engine == "onnx":
        return _onnx_model(model, Path(path), threads), tokenizer, state
    if quantize == "int8":
        model = quantize_int8(model)
    if device.type == "cpu":
        model.rnn.fused = True
        flush_denormals_in_forward(model)
    return model, tokenizer, state
