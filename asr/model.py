"""The BiLSTM-CTC acoustic model.

waveform -> log-mel -> CMVN -> SpecAugment (training) -> subsampling -> (Bi)LSTM/GRU
-> linear -> log-softmax over tokens (blank = 0).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from asr.features import GlobalCMVN, LogMelFbank, SpecAugment

SIZES = {  # name -> (layers, hidden units per direction)
    "tiny": (2, 160),
    "small": (3, 320),
    "medium": (4, 512),
    "large": (5, 1024),
}


@dataclass
class ModelConfig:
    vocab_size: int
    sample_rate: int = 16000
    n_mels: int = 80
    subsampling: str = "conv"  # "conv" (2-layer Conv2d) or "stack" (frame stacking)
    subsampling_factor: int = 2  # 2 for characters, 4 for subword units
    num_layers: int = 3
    hidden_size: int = 320  # per direction
    rnn_type: str = "lstm"  # "lstm" or "gru"
    bidirectional: bool = True
    dropout: float = 0.1
    conv_channels: int = 32
    freq_mask: int = 27
    n_freq_masks: int = 2
    time_mask: int = 40
    n_time_masks: int = 2

    @classmethod
    def from_size(cls, size: str, vocab_size: int, **overrides) -> ModelConfig:
        if size not in SIZES:
            raise ValueError(f"unknown model size {size!r}; choose one of {', '.join(SIZES)}")
        layers, hidden = SIZES[size]
        return cls(**{"vocab_size": vocab_size, "num_layers": layers, "hidden_size": hidden,
                      **overrides})

    @classmethod
    def from_dict(cls, state: dict) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in state.items() if k in known})

    def to_dict(self) -> dict:
        return asdict(self)


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


class CTCModel(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c = config
        self.fbank = LogMelFbank(c.sample_rate, c.n_mels)
        self.cmvn = GlobalCMVN(c.n_mels)
        self.specaug = SpecAugment(c.freq_mask, c.n_freq_masks, c.time_mask, c.n_time_masks)
        rnn_input = c.hidden_size * (2 if c.bidirectional else 1)
        if c.subsampling == "conv":
            self.subsample = ConvSubsampling(c.n_mels, c.conv_channels, rnn_input,
                                             c.subsampling_factor)
        elif c.subsampling == "stack":
            self.subsample = StackSubsampling(c.n_mels, rnn_input, c.subsampling_factor)
        else:
            raise ValueError(f"unknown subsampling {c.subsampling!r}; use 'conv' or 'stack'")
        rnn_cls = {"lstm": nn.LSTM, "gru": nn.GRU}.get(c.rnn_type)
        if rnn_cls is None:
            raise ValueError(f"unknown rnn_type {c.rnn_type!r}; use 'lstm' or 'gru'")
        self.rnn = rnn_cls(rnn_input, c.hidden_size, num_layers=c.num_layers, batch_first=True,
                           dropout=c.dropout if c.num_layers > 1 else 0.0,
                           bidirectional=c.bidirectional)
        self.dropout = nn.Dropout(c.dropout)
        self.output = nn.Linear(rnn_input, c.vocab_size)

    def output_lengths(self, num_samples: torch.Tensor) -> torch.Tensor:
        """Number of output frames for inputs of `num_samples` samples."""
        return self.subsample.output_lengths(self.fbank.num_frames(num_samples))

    def forward(self, waves: torch.Tensor, lengths: torch.Tensor):
        """waves (B, S) float, lengths (B,) samples -> log-probs (B, T, V), frames (B,)."""
        feats, frames = self.fbank(waves, lengths)  # (B, T, n_mels)
        feats = self.specaug(self.cmvn(feats))
        x, frames = self.subsample(feats, frames)  # (B, T', D)
        x = self.dropout(x)
        packed = pack_padded_sequence(x, frames.cpu(), batch_first=True, enforce_sorted=False)
        x, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True)  # (B, max frames, 2H)
        x = self.output(self.dropout(x))  # (B, T', V)
        return F.log_softmax(x.float(), dim=-1), frames
