"""The BiLSTM-CTC acoustic model.

waveform -> log-mel -> CMVN -> SpecAugment (training) -> subsampling -> (Bi)LSTM/GRU
-> linear -> log-softmax over tokens (blank = 0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import _VF, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from asr.config import SIZES, ModelConfig  # noqa: F401 (SIZES: re-exported)
from asr.features import GlobalCMVN, LogMelFbank, SpecAugment


class ConvSubsampling(nn.Module):
    """Two 3x3 Conv2d layers; time stride `factor` in total, frequency stride 4."""

    def __init__(self, n_mels: int, channels: int, out_dim: int, factor: int):
        super().__init__()
        if factor not in (1, 2, 4):
            raise ValueError(f"conv subsampling supports factors 1, 2, 4, got {factor}")
        self.time_strides = {1: (1, 1), 2: (2, 1), 4: (2, 2)}[factor]
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, 3, stride=(self.time_strides[0], 2), padding=1), nn.GELU(),
            nn.Conv2d(channels, channels, 3, stride=(self.time_strides[1], 2), padding=1), nn.GELU(),
        )
        freq = (n_mels - 1) // 2 + 1
        freq = (freq - 1) // 2 + 1
        self.proj = nn.Linear(channels * freq, out_dim)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        for stride in self.time_strides:
            lengths = (lengths - 1) // stride + 1
        return lengths

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):
        x = self.conv(x.unsqueeze(1))  # (B, C, T', F')
        b, c, t, f = x.shape
        x = x.permute(0, 2, 1, 3).reshape(b, t, c * f)  # (B, T', C*F')
        return self.proj(x), self.output_lengths(lengths)


class StackSubsampling(nn.Module):
    """Concatenate `factor` consecutive frames, then project: (B, T, F) -> (B, T//factor, D)."""

    def __init__(self, n_mels: int, out_dim: int, factor: int):
        super().__init__()
        self.factor = factor
        self.proj = nn.Linear(n_mels * factor, out_dim)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return lengths // self.factor

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):
        b, t, f = x.shape
        t = t // self.factor
        x = x[:, : t * self.factor].reshape(b, t, f * self.factor)  # (B, T//k, k*F)
        return self.proj(x), self.output_lengths(lengths)


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of x (B, T, D) within its length; padding stays in place."""
    t = torch.arange(x.shape[1], device=x.device)  # (T,)
    lengths = lengths.to(x.device, non_blocking=True)[:, None]  # (B, 1)
    index = torch.where(t < lengths, lengths - 1 - t, t)  # (B, T)
    return x.gather(1, index.unsqueeze(-1).expand_as(x))


class RecurrentStack(nn.Module):
    """Stacked (bi)directional LSTM/GRU layers over padded batches, exact for every length.

    The weights are one standard multi-layer `nn.LSTM`/`nn.GRU`. Two ways to run it give
    the same result:
    - fused (default on GPU): packed sequences through one cuDNN call for all layers and
      both directions;
    - split (default on CPU): each layer and direction as its own single-layer call on the
      padded batch, the backward one reading each sequence reversed within its length.
      Packed sequences are avoided on CPU, where their backward pass is quadratic in length.
    """

    def __init__(self, rnn_type: str, input_size: int, hidden_size: int, num_layers: int,
                 bidirectional: bool, dropout: float):
        super().__init__()
        rnn_cls = {"lstm": nn.LSTM, "gru": nn.GRU}.get(rnn_type)
        if rnn_cls is None:
            raise ValueError(f"unknown rnn_type {rnn_type!r}; use 'lstm' or 'gru'")
        self.rnn = rnn_cls(input_size, hidden_size, num_layers, batch_first=True,
                           bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0)
        self.fused: bool | None = None  # None: fused on GPU, split on CPU

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x (B, T, D), lengths (B,) -> (B, T, H * directions); padded frames are garbage.

        Pass `lengths` on the CPU: packing reads them there, so no device sync is needed.
        """
        fused = x.is_cuda if self.fused is None else self.fused
        return self._fused(x, lengths) if fused else self._split(x, lengths)

    def _fused(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        lengths = lengths.cpu()
        # batches from the bucketed sampler come longest first: no reordering on the device
        longest_first = bool((lengths[:-1] >= lengths[1:]).all())
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=longest_first)
        out, _ = self.rnn(packed)
        return pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]

    def _split(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        rnn = self.rnn
        run = _VF.lstm if isinstance(rnn, nn.LSTM) else _VF.gru
        h0 = x.new_zeros(1, x.shape[0], rnn.hidden_size)  # (1, B, H)
        state = (h0, h0) if isinstance(rnn, nn.LSTM) else h0
        for layer in range(rnn.num_layers):
            if layer > 0:
                x = F.dropout(x, rnn.dropout, self.training)
            outputs = []
            for suffix in ["", "_reverse"] if rnn.bidirectional else [""]:
                weights = [getattr(rnn, f"{name}_l{layer}{suffix}")
                           for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                inputs = reverse_padded(x, lengths) if suffix else x
                # single layer, one direction: (input, hx, weights, has_biases, num_layers,
                # dropout, train, bidirectional, batch_first)
                out = run(inputs, state, weights, True, 1, 0.0, self.training, False, True)[0]
                outputs.append(reverse_padded(out, lengths) if suffix else out)  # (B, T, H)
            x = torch.cat(outputs, dim=-1)
        return x


class CTCModel(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c = config
        self.fbank = LogMelFbank(c.sample_rate, c.n_mels)
        if c.cmvn not in ("global", "utterance"):
            raise ValueError(f"unknown cmvn {c.cmvn!r}; use 'global' or 'utterance'")
        self.cmvn = GlobalCMVN(c.n_mels, per_utterance=c.cmvn == "utterance")
        self.specaug = SpecAugment(c.freq_mask, c.n_freq_masks, c.time_mask, c.n_time_masks)
        rnn_input = c.hidden_size * (2 if c.bidirectional else 1)
        if c.subsampling == "conv":
            self.subsample = ConvSubsampling(c.n_mels, c.conv_channels, rnn_input,
                                             c.subsampling_factor)
        elif c.subsampling == "stack":
            self.subsample = StackSubsampling(c.n_mels, rnn_input, c.subsampling_factor)
        else:
            raise ValueError(f"unknown subsampling {c.subsampling!r}; use 'conv' or 'stack'")
        self.rnn = RecurrentStack(c.rnn_type, rnn_input, c.hidden_size, c.num_layers,
                                  c.bidirectional, c.dropout)
        self.dropout = nn.Dropout(c.dropout)
        self.output = nn.Linear(rnn_input, c.vocab_size)

    def output_lengths(self, num_samples: torch.Tensor) -> torch.Tensor:
        """Number of output frames for inputs of `num_samples` samples."""
        return self.subsample.output_lengths(self.fbank.num_frames(num_samples))

    def forward(self, waves: torch.Tensor, lengths: torch.Tensor):
        """waves (B, S) float, lengths (B,) samples -> log-probs (B, T, V), frames (B,)."""
        feats, frames = self.fbank(waves, lengths)  # (B, T, n_mels)
        feats = self.specaug(self.cmvn(feats, frames))
        x, frames = self.subsample(feats, frames)  # (B, T', D)
        x = self.rnn(self.dropout(x), frames)  # (B, T', 2H)
        x = self.output(self.dropout(x))  # (B, T', V)
        return F.log_softmax(x.float(), dim=-1), frames
