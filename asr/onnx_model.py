"""The whole model as ONNX (waveform in, log-probs out) and an onnxruntime engine for it.

`export_onnx` exports log-mel (STFT included), CMVN, subsampling, the recurrent layers and
the output layer, with dynamic batch and time axes and the lengths as an input. Each
recurrent layer becomes one ONNX LSTM/GRU node given `sequence_lens`, so the backward
direction starts at each utterance's own last frame: outputs do not depend on batch
padding. On valid frames ORT's log-probs match torch's within max |diff| <= 1e-3 (tested
in tests/test_export.py; typically ~1e-5) and greedy transcripts are the same.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from asr.atomic import atomic_path
from asr.engines import default_threads
from asr.features import LogMelFbank
from asr.model import ConvSubsampling, CTCModel, ModelConfig, StackSubsampling, reverse_padded

INPUTS, OUTPUTS = ["waves", "lengths"], ["log_probs", "frames"]
OPSET = 18
# torch and ONNX gate orders: LSTM (i, f, g, o) -> (i, o, f, c); GRU (r, z, n) -> (z, r, h)
GATES = {True: [0, 3, 1, 2], False: [1, 0, 2]}


@torch.library.custom_op("asr::rnn_layer", mutates_args=())
def rnn_layer(x: Tensor, lengths: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor,
              lstm: bool) -> Tensor:
    """One (bi)directional LSTM/GRU layer over a padded batch, as RecurrentStack's split path:
    x (B, T, D), lengths (B,), weights stacked over directions: w_ih (dirs, G*H, D),
    w_hh (dirs, G*H, H), b_* (dirs, G*H) -> (B, T, dirs*H). One node in ONNX."""
    from torch import _VF

    run = _VF.lstm if lstm else _VF.gru
    h0 = x.new_zeros(1, x.shape[0], w_hh.shape[-1])  # (1, B, H)
    state = (h0, h0) if lstm else h0
    outputs = []
    for d in range(w_ih.shape[0]):
        inputs = reverse_padded(x, lengths) if d else x
        weights = [w_ih[d], w_hh[d], b_ih[d], b_hh[d]]
        out = run(inputs, state, weights, True, 1, 0.0, False, False, True)[0]  # (B, T, H)
        outputs.append(reverse_padded(out, lengths) if d else out)
    return torch.cat(outputs, dim=-1)


@rnn_layer.register_fake
def _(x, lengths, w_ih, w_hh, b_ih, b_hh, lstm):
    return x.new_empty(x.shape[0], x.shape[1], w_ih.shape[0] * w_hh.shape[-1])


def _rnn_layer_onnx(x, lengths, w_ih, w_hh, b_ih, b_hh, lstm: bool):
    """rnn_layer as one ONNX LSTM/GRU node with sequence_lens (onnxscript, traced)."""
    from onnxscript import ir
    from onnxscript import opset18 as op

    dirs, hidden = w_ih.shape[0], w_hh.shape[-1]

    def reorder(w):  # (dirs, G*H, ...) in torch's gate order -> ONNX's (folded into constants)
        return op.Concat(*[op.Slice(w, [i * hidden], [(i + 1) * hidden], [1]) for i in GATES[lstm]],
                         axis=1)

    bias = op.Concat(reorder(b_ih), reorder(b_hh), axis=1)  # (dirs, 2*G*H)
    seq = op.Cast(op.Max(lengths, op.Constant(value=ir.tensor(np.array(1, np.int64)))),
                  to=ir.DataType.INT32)  # (B,); ORT refuses empty sequences
    xt = op.Transpose(x, perm=[1, 0, 2])  # (T, B, D)
    direction = "bidirectional" if dirs == 2 else "forward"
    rnn, extra = (op.LSTM, {}) if lstm else (op.GRU, {"linear_before_reset": 1})
    y = rnn(xt, reorder(w_ih), reorder(w_hh), bias, seq, direction=direction, hidden_size=hidden,
            **extra)[0]  # (T, dirs, B, H), zeros past each length
    y = op.Transpose(y, perm=[2, 0, 1, 3])  # (B, T, dirs, H)
    return op.Reshape(y, op.Constant(value=ir.tensor(np.array([0, 0, -1], np.int64))))


class _ExportRecurrent(nn.Module):
    """A RecurrentStack (eval) run layer by layer through rnn_layer."""

    def __init__(self, stack: nn.Module):
        super().__init__()
        rnn = stack.rnn
        self.lstm = isinstance(rnn, nn.LSTM)
        suffixes = ["", "_reverse"] if rnn.bidirectional else [""]
        self.layers = []
        for layer in range(rnn.num_layers):
            names = []
            for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                tensor = torch.stack([getattr(rnn, f"{kind}_l{layer}{s}").detach() for s in suffixes])
                self.register_buffer(f"{kind}_l{layer}", tensor)  # (dirs, G*H, ...)
                names.append(f"{kind}_l{layer}")
            self.layers.append(names)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        for names in self.layers:
            x = torch.ops.asr.rnn_layer(x, lengths, *[getattr(self, n) for n in names], self.lstm)
        return x


def exportable(model: CTCModel) -> CTCModel:
    """An eval-mode fp32 CPU copy of `model` whose recurrent layers export as ONNX LSTM/GRU nodes."""
    copy = CTCModel(model.config)
    copy.load_state_dict(model.state_dict())
    copy.rnn = _ExportRecurrent(copy.rnn)
    return copy.eval()


def export_onnx(model: CTCModel, path: str | Path) -> Path:
    """Write `model` (fp32, on the CPU) as ONNX to `path`, atomically: inputs waves (B, S)
    float32 and lengths (B,) int64, outputs log_probs (B, T, V) and frames (B,)."""
    model = exportable(model)
    waves = torch.randn(2, 16000)  # (B, S): example inputs; both axes stay dynamic
    lengths = torch.tensor([16000, 11000])
    batch, samples = torch.export.Dim("batch", min=1), torch.export.Dim("samples", min=2)
    with warnings.catch_warnings(), _quiet("torch.onnx"):
        warnings.simplefilter("ignore")  # the exporter's deprecation and naming chatter
        program = torch.onnx.export(
            model, (waves, lengths), dynamo=True, verbose=False, opset_version=OPSET,
            input_names=INPUTS, output_names=OUTPUTS,
            dynamic_shapes={"waves": {0: batch, 1: samples}, "lengths": {0: batch}},
            custom_translation_table={torch.ops.asr.rnn_layer.default: _rnn_layer_onnx})
    with atomic_path(path) as tmp:
        program.save(tmp, external_data=False)
    return Path(path)


@contextlib.contextmanager
def _quiet(name: str):
    """Logger `name` reports errors only within the block."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


class OnnxModel(nn.Module):
    """Runs a model.onnx with onnxruntime on the CPU; called like CTCModel:
    waves (B, S) float32, lengths (B,) int64 -> log-probs (B, T, V) float32, frames (B,)."""

    def __init__(self, onnx: str | Path | bytes, config: ModelConfig, threads: int | None = None):
        super().__init__()
        import onnxruntime as ort

        self.config = config
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        source = onnx if isinstance(onnx, bytes) else str(onnx)
        self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        # for output_lengths only (their buffers also tell callers the device: the CPU)
        self.fbank = LogMelFbank(config.sample_rate, config.n_mels)
        factor = config.subsampling_factor
        self.subsample = (ConvSubsampling(config.n_mels, 1, 1, factor) if config.subsampling == "conv"
                          else StackSubsampling(1, 1, factor))
        # shorter inputs get zero-padded: ORT refuses empty sequences; outputs ignore padding
        self.min_samples = self.fbank.hop_length * (factor + 1)
        self.eval()  # as loaded torch models are; train() changes nothing

    def output_lengths(self, num_samples: Tensor) -> Tensor:
        return self.subsample.output_lengths(self.fbank.num_frames(num_samples))

    def forward(self, waves: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        total = int(self.output_lengths(torch.tensor(waves.shape[1])))
        waves = waves.detach().float().cpu()
        if waves.shape[1] < self.min_samples:
            waves = nn.functional.pad(waves, (0, self.min_samples - waves.shape[1]))
        log_probs, frames = self.session.run(OUTPUTS, {"waves": waves.numpy(),
                                                       "lengths": lengths.cpu().long().numpy()})
        return torch.from_numpy(log_probs[:, :total]), torch.from_numpy(frames)  # (B, T, V), (B,)
