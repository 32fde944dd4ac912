"""Reading audio: the only module that touches audio files.

Files are read with soundfile (wav, flac, ogg, mp3 where libsndfile supports it),
downmixed to mono and resampled with torchaudio to the model's rate.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio.functional as AF

log = logging.getLogger(__name__)
_logged_rates: set[tuple[int, int]] = set()


class AudioError(ValueError):
    """A file that cannot be used as speech input; the message names the file and the fix."""


def load_audio(path: str | Path, sample_rate: int) -> torch.Tensor:
    """Read `path` as mono float32 at `sample_rate`. Returns (samples,)."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file; check the path (manifests store audio_filepath)")
    try:
        data, file_rate = soundfile.read(str(path), dtype="float32", always_2d=True)  # (S, C)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(
            f"{path}: cannot read audio ({err}); convert it to WAV or FLAC, "
            f"e.g. `ffmpeg -i {path.name} -ar {sample_rate} -ac 1 out.wav`"
        ) from None
    if data.size == 0:
        raise AudioError(f"{path}: the file holds no samples; remove it from the input")
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: samples contain NaN or inf; re-export the audio")
    wave = torch.from_numpy(data.mean(axis=1))  # (S,) downmix
    if file_rate != sample_rate:
        if (file_rate, sample_rate) not in _logged_rates:
            _logged_rates.add((file_rate, sample_rate))
            log.info("resampling %s from %d Hz to %d Hz (and any other %d Hz input)",
                     path, file_rate, sample_rate, file_rate)
        wave = AF.resample(wave, file_rate, sample_rate)
    return wave.contiguous()


def to_pcm16(wave) -> np.ndarray:
    """Float samples in [-1, 1) (an array or 1-D tensor) as 16-bit integers, clipped."""
    return np.clip(np.round(np.asarray(wave, dtype=np.float32) * 32768.0), -32768, 32767).astype(np.int16)


def save_audio(path: str | Path, wave: np.ndarray, sample_rate: int) -> int:
    """Write float samples in [-1, 1) as 16-bit PCM (clipped); returns the sample count."""
    pcm = to_pcm16(wave)
    soundfile.write(str(path), pcm, sample_rate, subtype="PCM_16")
    return len(pcm)
