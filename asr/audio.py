"""Reading audio: the only module that touches audio files.

Files are read with soundfile (wav, flac, ogg, mp3 where libsndfile supports it),
downmixed to mono and resampled to the model's rate. Other containers (mp4, m4a, webm ...)
are decoded by ffmpeg when it is installed. `stream_audio` reads a file of any length in
blocks, so memory does not grow with the file.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile
import soxr
import torch
import torchaudio.functional as AF

log = logging.getLogger(__name__)
_logged_rates: set[tuple[int, int]] = set()

SOUNDFILE_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au",
                        ".caf", ".w64", ".rf64", ".sph", ".nist"}
FFMPEG_EXTENSIONS = {".mp4", ".m4a", ".aac", ".webm", ".mkv", ".mov", ".wma", ".amr", ".3gp", ".avi"}
AUDIO_EXTENSIONS = SOUNDFILE_EXTENSIONS | FFMPEG_EXTENSIONS


class AudioError(ValueError):
    """A file that cannot be used as speech input; the message names the file and the fix."""


def load_audio(path: str | Path, sample_rate: int) -> torch.Tensor:
    """Read `path` as mono float32 at `sample_rate`. Returns (samples,)."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file; check the path (manifests store audio_filepath)")
    if _needs_ffmpeg(path):
        return torch.from_numpy(np.concatenate(list(stream_audio(path, sample_rate))))
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


def _needs_ffmpeg(path: Path) -> bool:
    return path.suffix.lower() in FFMPEG_EXTENSIONS


def _ffmpeg(path: Path) -> str:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise AudioError(f"{path}: {path.suffix} files are decoded by ffmpeg, which is not installed; "
                         "install it (apt-get install ffmpeg, brew install ffmpeg) or convert the file "
                         "to WAV/FLAC")
    return ffmpeg


def audio_duration(path: str | Path) -> float:
    """Seconds of audio in `path`, read from its header (ffprobe for ffmpeg's containers)."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file; check the path")
    if _needs_ffmpeg(path):
        _ffmpeg(path)
        ffprobe = shutil.which("ffprobe") or "ffprobe"
        out = subprocess.run([ffprobe, "-v", "error", "-show_entries", "format=duration", "-of",
                              "default=nw=1:nk=1", str(path)], capture_output=True, text=True)
        try:
            return float(out.stdout.strip())
        except ValueError:
            raise AudioError(f"{path}: ffprobe cannot read it ({out.stderr.strip()[-200:]}); "
                             "check that the file is a complete audio or video file") from None
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(f"{path}: cannot read audio ({err}); convert it to WAV or FLAC, e.g. "
                         f"`ffmpeg -i {path.name} -ar 16000 -ac 1 out.wav`") from None
    return info.frames / info.samplerate


def stream_audio(path: str | Path, sample_rate: int, block_seconds: float = 30.0) -> Iterator[np.ndarray]:
    """Mono float32 blocks of `path` at `sample_rate`, about `block_seconds` each, in order.

    Memory stays at a few blocks whatever the file's length; resampling runs across block
    edges (soxr's stream resampler), so the blocks join into the same signal as one read.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file; check the path")
    blocks = _ffmpeg_blocks(path, sample_rate, block_seconds) if _needs_ffmpeg(path) else \
        _soundfile_blocks(path, sample_rate, block_seconds)
    empty = True
    for block in blocks:
        if not np.isfinite(block).all():
            raise AudioError(f"{path}: samples contain NaN or inf; re-export the audio")
        empty = empty and not len(block)
        if len(block):
            yield block
    if empty:
        raise AudioError(f"{path}: the file holds no samples; remove it from the input")


def _soundfile_blocks(path: Path, sample_rate: int, block_seconds: float) -> Iterator[np.ndarray]:
    try:
        sound = soundfile.SoundFile(str(path))
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(f"{path}: cannot read audio ({err}); convert it to WAV or FLAC, e.g. "
                         f"`ffmpeg -i {path.name} -ar {sample_rate} -ac 1 out.wav`") from None
    with sound:
        resampler = None if sound.samplerate == sample_rate else \
            soxr.ResampleStream(sound.samplerate, sample_rate, 1, dtype="float32")
        block = max(1, int(block_seconds * sound.samplerate))
        while True:
            try:
                data = sound.read(block, dtype="float32", always_2d=True)  # (S, C)
            except (soundfile.LibsndfileError, RuntimeError) as err:
                raise AudioError(f"{path}: the audio is damaged after {sound.tell()} samples ({err}); "
                                 "re-export or repair the file") from None
            last = len(data) < block
            mono = data.mean(axis=1)  # (S,)
            yield resampler.resample_chunk(mono, last=last) if resampler else mono
            if last:
                return


def _ffmpeg_blocks(path: Path, sample_rate: int, block_seconds: float) -> Iterator[np.ndarray]:
    command = [_ffmpeg(path), "-nostdin", "-v", "error", "-i", str(path), "-vn", "-ac", "1",
               "-ar", str(sample_rate), "-f", "f32le", "-"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        block_bytes = 4 * max(1, int(block_seconds * sample_rate))
        try:
            while data := proc.stdout.read(block_bytes):
                yield np.frombuffer(data[:len(data) // 4 * 4], dtype=np.float32)
        finally:
            proc.stdout.close()
            if proc.poll() is None:  # stopped early
                proc.kill()
        error = proc.stderr.read().decode(errors="replace").strip()
        if proc.wait() != 0 and error:
            raise AudioError(f"{path}: ffmpeg cannot decode it ({error.splitlines()[-1]}); "
                             "check that the file is a complete audio or video file")
