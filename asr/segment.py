"""Splitting audio of any length at pauses into segments of at most `max_seconds`.

Two passes over the file, each reading it in blocks (`asr.audio.stream_audio`), so memory
holds a block plus two numbers per 10 ms frame (500 bytes per second of audio), never the
whole file:
1. a voice activity detector marks each 10 ms frame as speech or not: `EnergyVAD` (frame
   energy against the file's noise floor, the default) or `SileroVAD` (the `silero-vad`
   package's model, which ships in its wheel);
2. `plan_segments` turns the marks into segments: speech runs, padded, with short gaps
   bridged, and a run longer than `max_seconds` cut at its quietest moments; `read_segments`
   then cuts those segments out of a second read.
Only stretches the detector calls non-speech for `min_pause` seconds or more fall between
segments; everything else is decoded.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr.audio import AudioError, stream_audio

FRAME_SECONDS = 0.01  # VAD frames
BLOCK_SECONDS = 30.0  # audio read at a time


@dataclass(frozen=True)
class SegmentOptions:
    max_seconds: float = 30.0  # longest segment decoded at once
    min_pause: float = 0.3  # non-speech shorter than this is bridged
    pad: float = 0.2  # audio kept on each side of speech


class Framer:
    """Cut a stream of blocks into frames of `size` samples; `flush` pads the last one with zeros."""

    def __init__(self, size: int):
        self.size, self.rest = size, np.zeros(0, np.float32)

    def frames(self, block: np.ndarray) -> np.ndarray:
        samples = np.concatenate([self.rest, block])
        n = len(samples) // self.size
        self.rest = samples[n * self.size:]
        return samples[:n * self.size].reshape(n, self.size)  # (n, size)

    def flush(self) -> np.ndarray:
        if not len(self.rest):
            return np.zeros((0, self.size), np.float32)
        return self.frames(np.zeros(self.size - len(self.rest), np.float32))


def frame_levels(frames: np.ndarray) -> np.ndarray:
    """(n, size) samples -> (n,) levels in dB of the mean square."""
    power = np.square(frames, dtype=np.float64).mean(axis=1)
    return (10 * np.log10(power + 1e-12)).astype(np.float32)


class EnergyVAD:
    """Speech frames by energy: a 10 ms frame is speech when its level (dB of the mean square,
    0 dB = full scale) is `margin_db` above the file's noise floor (the 10th percentile of its
    audible frames), where that threshold is kept between `silence_db` (quieter is never speech)
    and `sound_db` (louder is always decoded: a loud file with no pauses is cut, not dropped)."""

    name = "energy"

    def __init__(self, margin_db: float = 12.0, silence_db: float = -60.0, sound_db: float = -45.0):
        self.margin_db, self.silence_db, self.sound_db = margin_db, silence_db, sound_db

    def speech_frames(self, levels: np.ndarray, probabilities=None) -> np.ndarray:
        """(F,) bool from (F,) dB levels."""
        audible = levels[levels > self.silence_db]
        floor = np.percentile(audible, 10) if len(audible) else self.silence_db
        return levels > min(max(floor + self.margin_db, self.silence_db), self.sound_db)


class SileroVAD:
    """Speech frames from Silero VAD (PyPI `silero-vad`, its model in the wheel): the speech
    probability of each 32 ms chunk of 16 kHz audio above `threshold`, spread over its frames."""

    name = "silero"
    sample_rate = 16000
    chunk = 512

    def __init__(self, threshold: float = 0.5):
        try:
            from silero_vad import load_silero_vad
        except ImportError:
            raise ValueError("--vad silero needs the silero-vad package: pip install 'asr[vad]' "
                             "(or use --vad energy)") from None
        self.model, self.threshold = load_silero_vad(), threshold

    def chunk_probabilities(self, chunks: np.ndarray) -> np.ndarray:
        """(n, 512) samples -> (n,) speech probabilities; the model's state runs on across calls."""
        import torch

        with torch.inference_mode():
            return np.asarray([float(self.model(torch.from_numpy(c.copy()), self.sample_rate))
                               for c in chunks], np.float32)

    def speech_frames(self, levels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
        frame = int(FRAME_SECONDS * self.sample_rate)
        chunk_of_frame = np.arange(len(levels)) * frame // self.chunk  # (F,)
        return probabilities[np.minimum(chunk_of_frame, len(probabilities) - 1)] > self.threshold


def get_vad(name: str):
    """"energy", "silero", or "auto": Silero VAD when the package is installed, else energy."""
    if name == "auto":
        try:
            return SileroVAD()
        except ValueError:
            return EnergyVAD()
    if name not in ("energy", "silero"):
        raise ValueError(f"unknown --vad {name!r}; choose auto, energy or silero")
    return SileroVAD() if name == "silero" else EnergyVAD()


def speech_frames(audio, vad, sample_rate: int) -> tuple[np.ndarray, np.ndarray, float]:
    """First pass over `audio` (a path or samples): speech (F,) bool and levels (F,) dB per
    10 ms frame, and the seconds of audio."""
    silero = isinstance(vad, SileroVAD)
    if silero and sample_rate != vad.sample_rate:
        raise ValueError(f"--vad silero runs at {vad.sample_rate} Hz, the model at {sample_rate} Hz; "
                         "use --vad energy")
    if silero:
        vad.model.reset_states()
    level_framer = Framer(int(FRAME_SECONDS * sample_rate))
    chunk_framer = Framer(SileroVAD.chunk)
    levels, probabilities, samples = [], [], 0
    for block in itertools.chain(_blocks_of(audio, sample_rate), [None]):  # None: the end
        last = block is None
        samples += 0 if last else len(block)
        levels.append(frame_levels(level_framer.flush() if last else level_framer.frames(block)))
        if silero:
            chunks = chunk_framer.flush() if last else chunk_framer.frames(block)
            probabilities.append(vad.chunk_probabilities(chunks))
    levels = np.concatenate(levels)
    speech = vad.speech_frames(levels, np.concatenate(probabilities) if silero else None)
    return speech, levels, samples / sample_rate


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def plan_segments(speech: np.ndarray, levels: np.ndarray, options: SegmentOptions,
                  stride: int = 1) -> list[tuple[int, int]]:
    """[start, end) frame ranges to decode, in order, none longer than options.max_seconds.
    Starts fall on multiples of `stride` frames (the model's subsampling): a segment's model
    frames are then those the whole recording would have."""
    to_frames = lambda seconds: int(round(seconds / FRAME_SECONDS))  # noqa: E731
    n, pad, longest = len(speech), to_frames(options.pad), max(1, to_frames(options.max_seconds))
    if n <= longest:  # short audio is decoded whole, as the model heard its training utterances
        return [(0, n)] if speech.any() else []
    regions = []  # padded speech runs, short gaps bridged
    for start, end in _runs(speech):
        start, end = max(0, start - pad), min(n, end + pad)
        if regions and start - regions[-1][1] < to_frames(options.min_pause):
            regions[-1] = (regions[-1][0], end)
        else:
            regions.append((start, end))
    pieces = [piece for start, end in regions for piece in _cut(start, end, levels, longest - stride)]
    return [(start - start % stride, end) for start, end in pieces]


def _cut(start: int, end: int, levels: np.ndarray, longest: int) -> Iterator[tuple[int, int]]:
    """Split [start, end) into pieces of at most `longest` frames at the quietest 100 ms
    (level averaged over 10 frames) in the second half of each piece."""
    smooth = np.convolve(levels, np.ones(10) / 10, mode="same") if end - start > longest else levels
    while end - start > longest:
        lo, hi = start + longest // 2, start + longest
        cut = lo + int(np.argmin(smooth[lo:hi]))
        yield start, cut
        start = cut
    yield start, end


def read_segments(audio, segments: list[tuple[int, int]], sample_rate: int) -> Iterator[np.ndarray]:
    """Second pass: the samples of each frame range of `segments` (in order), read in blocks."""
    frame = int(FRAME_SECONDS * sample_rate)
    bounds = [(start * frame, end * frame) for start, end in segments]
    buffer, offset, index = np.zeros(0, np.float32), 0, 0  # buffer starts at sample `offset`
    for block in itertools.chain(_blocks_of(audio, sample_rate), [None]):  # None: the end
        if block is not None:
            buffer = np.concatenate([buffer, block])
        while index < len(bounds) and (block is None or bounds[index][1] <= offset + len(buffer)):
            start, end = bounds[index]
            yield buffer[max(0, start - offset):end - offset].copy()
            index += 1
        keep_from = min(bounds[index][0] - offset, len(buffer)) if index < len(bounds) else len(buffer)
        if keep_from > 0:
            buffer, offset = buffer[keep_from:], offset + keep_from
        if index == len(bounds):
            return


def _blocks_of(audio, sample_rate: int) -> Iterator[np.ndarray]:
    """Blocks of a file (a path) or of a mono waveform already at `sample_rate` (an array)."""
    if isinstance(audio, (str, Path)):
        yield from stream_audio(audio, sample_rate, BLOCK_SECONDS)
        return
    wave = np.asarray(audio, dtype=np.float32)
    if wave.ndim != 1 or not len(wave):
        raise AudioError(f"audio array of shape {wave.shape}: pass mono samples (S,) at {sample_rate} Hz")
    step = int(BLOCK_SECONDS * sample_rate)
    for start in range(0, len(wave), step):
        yield wave[start:start + step]
