"""Acoustic front-end: log-mel filterbank, global CMVN and SpecAugment.

All three are `nn.Module`s that live inside the model, so features are computed
on the model's device and the normalisation statistics travel with the checkpoint.
"""

from __future__ import annotations

import torch
import torchaudio
from torch import nn


class LogMelFbank(nn.Module):
    """Waveform (B, S) -> log-mel features (B, T, n_mels) with 25 ms windows and a 10 ms hop."""

    def __init__(self, sample_rate: int = 16000, n_mels: int = 80):
        super().__init__()
        self.win_length = sample_rate * 25 // 1000
        self.hop_length = sample_rate * 10 // 1000
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=1 << (self.win_length - 1).bit_length(),  # next power of two
            win_length=self.win_length,
            hop_length=self.hop_length,
            n_mels=n_mels,
            power=2.0,
            pad_mode="constant",  # zeros past the ends: features do not depend on batch padding
        )

    def num_frames(self, num_samples: torch.Tensor) -> torch.Tensor:
        return num_samples // self.hop_length + 1  # centred frames

    def forward(self, waves: torch.Tensor, lengths: torch.Tensor):
        with torch.autocast(waves.device.type, enabled=False):
            mel = self.mel(waves.float())  # (B, n_mels, T)
        feats = torch.log(mel + 1e-6).transpose(1, 2)  # (B, T, n_mels)
        return feats, self.num_frames(lengths)


class GlobalCMVN(nn.Module):
    """Subtract the training-set mean and divide by its standard deviation, per feature bin.

    With `per_utterance`, each utterance's own mean over its frames is removed first (the
    statistics are then those of such centred features): a fixed channel or gain, a
    constant offset of the log-mel features, no longer reaches the model.
    """

    def __init__(self, n_mels: int = 80, per_utterance: bool = False):
        super().__init__()
        self.per_utterance = per_utterance
        self.register_buffer("mean", torch.zeros(n_mels))
        self.register_buffer("inv_std", torch.ones(n_mels))

    @torch.no_grad()
    def set_stats(self, total: torch.Tensor, total_sq: torch.Tensor, count: int) -> None:
        """Set the statistics from float64 sums of features and squared features over `count` frames."""
        mean = total / count
        var = (total_sq / count - mean**2).clamp_min(1e-8)
        self.mean.copy_(mean.float())
        self.inv_std.copy_(var.rsqrt().float())

    def centre(self, feats: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """feats (B, T, n_mels), frames (B,) -> feats less each utterance's mean when per_utterance."""
        if not self.per_utterance:
            return feats
        frames = frames.to(feats.device)
        valid = torch.arange(feats.shape[1], device=feats.device) < frames[:, None]  # (B, T)
        valid = valid.unsqueeze(-1).to(feats.dtype)  # (B, T, 1)
        mean = (feats * valid).sum(1, keepdim=True) / frames.clamp_min(1)[:, None, None]  # (B, 1, n_mels)
        return feats - mean

    def forward(self, feats: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        return (self.centre(feats, frames) - self.mean) * self.inv_std  # (B, T, n_mels)


class SpecAugment(nn.Module):
    """Frequency and time masks, drawn independently per utterance; identity in eval mode."""

    def __init__(self, freq_mask: int = 27, n_freq_masks: int = 2,
                 time_mask: int = 40, n_time_masks: int = 2, max_time_ratio: float = 0.2):
        super().__init__()
        self.freq = nn.ModuleList(
            torchaudio.transforms.FrequencyMasking(freq_mask, iid_masks=True)
            for _ in range(n_freq_masks)
        )
        self.time = nn.ModuleList(
            torchaudio.transforms.TimeMasking(time_mask, iid_masks=True, p=max_time_ratio)
            for _ in range(n_time_masks)
        )

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return feats
        x = feats.transpose(1, 2).unsqueeze(1)  # (B, 1, n_mels, T); masks fill 0 = the CMVN mean
        for mask in [*self.freq, *self.time]:
            x = mask(x)
        return x.squeeze(1).transpose(1, 2)  # (B, T, n_mels)
