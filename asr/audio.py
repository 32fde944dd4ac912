"""Reading audio: the only module that touches audio files.

Files are read with soundfile (wav, flac, ogg, mp3 where libsndfile supports it),
downmixed to mono and resampled to the model's rate. Other containers (mp4, m4a, webm ...)
are decoded by ffmpeg when it is installed. `stream_audio` reads a file of any length in
blocks, so memory does not grow with the file.
"""

from __future__ import annotations

import json
import logging
import os
import re
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
MIN_SAMPLE_RATE = 8000  # telephone speech; lower rates keep too little of a voice to recognise


class AudioError(ValueError):
    """A file that cannot be used as speech input; the message names the file and the fix."""


def _check_file(path: Path) -> None:
    """Raise AudioError unless `path` is a readable file."""
    if path.is_dir():
        raise AudioError(f"{path}: a folder, not an audio file; pass the audio files in it")
    if not path.is_file():
        raise AudioError(f"{path}: no such file; check the path (manifests store audio_filepath)")
    if not os.access(path, os.R_OK):
        raise AudioError(f"{path}: not readable (permission denied); check its owner and mode")


def _check_rate(path: Path, rate: float) -> None:
    if rate < MIN_SAMPLE_RATE:
        raise AudioError(f"{path}: sampled at {rate:g} Hz, too low for speech recognition (at least "
                         f"{MIN_SAMPLE_RATE} Hz, telephone quality); use a recording made at a higher rate")


def _unreadable(path: Path, err: Exception, sample_rate: int) -> AudioError:
    """libsndfile's complaint about `path`, in one line without the path repeated."""
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    reason = re.sub(r"^Error opening .*?: ", "", reason)
    return AudioError(f"{path}: cannot read audio ({reason}); convert it to WAV or FLAC, "
                      f"e.g. `ffmpeg -i {path.name} -ar {sample_rate} -ac 1 out.wav`")


def load_audio(path: str | Path, sample_rate: int, max_seconds: float | None = None) -> torch.Tensor:
    """Read `path` as mono float32 at `sample_rate`. Returns (samples,). A file longer than
    `max_seconds` is refused before it is read (AudioError)."""
    path = Path(path)
    _check_file(path)
    if max_seconds is not None and (seconds := audio_duration(path)) > max_seconds:
        raise AudioError(f"{path}: lasts {seconds:.0f} s, longer than the {max_seconds:g} s an utterance may "
                         "last here; transcribe long recordings with `asr transcribe` (it cuts them at "
                         "pauses), or cut the file")
    if _needs_ffmpeg(path):
        return torch.from_numpy(np.concatenate(list(stream_audio(path, sample_rate))))
    try:
        data, file_rate = soundfile.read(str(path), dtype="float32", always_2d=True)  # (S, C)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as err:
        raise _unreadable(path, err, sample_rate) from None
    _check_rate(path, file_rate)
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
    _check_file(path)
    if _needs_ffmpeg(path):
        seconds = _ffprobe(path)[0]
        if seconds is None:
            raise AudioError(f"{path}: ffprobe finds no duration in it; check that the file is complete, "
                             f"or convert it: `ffmpeg -i {path.name} -ar 16000 -ac 1 out.wav`")
        return seconds
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as err:
        raise _unreadable(path, err, 16000) from None
    _check_rate(path, info.samplerate)
    return info.frames / info.samplerate


def _ffprobe(path: Path) -> tuple[float | None, float]:
    """(seconds, None where the container does not say, and the sample rate) of the first audio
    stream of an ffmpeg container."""
    _ffmpeg(path)
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        raise AudioError(f"{path}: ffprobe, which comes with ffmpeg, is not installed; reinstall ffmpeg "
                         "or convert the file to WAV/FLAC")
    out = subprocess.run([ffprobe, "-v", "error", "-select_streams", "a:0", "-show_entries",
                          "format=duration:stream=sample_rate", "-of", "json", str(path)],
                         capture_output=True, text=True)
    try:
        probe = json.loads(out.stdout)
        rate = float(probe["streams"][0]["sample_rate"])
        seconds = float(probe["format"]["duration"]) if "duration" in probe["format"] else None
    except (ValueError, KeyError, IndexError, TypeError):
        error = (out.stderr.strip().splitlines() or ["no audio stream"])[-1][-200:]
        raise AudioError(f"{path}: ffprobe cannot read it ({error}); check that the file is a "
                         "complete audio or video file with sound") from None
    _check_rate(path, rate)
    return seconds, rate


def stream_audio(path: str | Path, sample_rate: int, block_seconds: float = 30.0) -> Iterator[np.ndarray]:
    """Mono float32 blocks of `path` at `sample_rate`, about `block_seconds` each, in order.

    Memory stays at a few blocks whatever the file's length; resampling runs across block
    edges (soxr's stream resampler), so the blocks join into the same signal as one read.
    """
    path = Path(path)
    _check_file(path)
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
        raise _unreadable(path, err, sample_rate) from None
    with sound:
        _check_rate(path, sound.samplerate)
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
    if shutil.which("ffprobe"):
        _ffprobe(path)  # a readable audio stream at a usable rate
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
