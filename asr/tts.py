"""Offline English text-to-speech: espeak-ng in-process through ctypes.

The shared library and its voice data come from the PyPI wheel `espeakng-loader`,
so nothing outside pip is needed. A speaker is an (accent, variant, rate, pitch)
tuple: see `Voice` and `english_voices`.

The library keeps global state and is not thread-safe: use one synthesiser per
process (e.g. a multiprocessing `Pool` whose initializer calls `init_worker`).
The noise generator (breath, some consonants) is reseeded from the text and voice
before each utterance, but other state (pitch-flutter phase, gain control) carries
over from one utterance to the next: the same text and voice can differ in waveform
phase and by a few samples in length depending on what the process said before. It
sounds the same, and a fresh process always gives the same audio.
"""

from __future__ import annotations

import ctypes
import itertools
import random
import zlib
from dataclasses import dataclass
from pathlib import Path

import espeakng_loader
import numpy as np

TTS_SAMPLE_RATE = 22050  # espeak-ng's native rate; checked against espeak_Initialize

# The English accents of espeak-ng (en-Shaw, Shavian script, is left out).
ENGLISH_ACCENTS = (
    "en", "en-us", "en-gb-scotland", "en-gb-x-gbclan",
    "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029", "en-us-nyc",
)

# Variants in voices/!v we never use, chosen by reading their definitions and looking
# at log-mel spectrograms of one sentence spoken by every variant: these are not a
# plausible human voice, so they would teach a model sounds no user produces.
#   whisper, whisperf, caleb: unvoiced (whispered) speech, breath noise only
#   robosoft*, UniRobot, anikaRobot, RicishayMax*, Demonic: "robot" voices with a strong
#     8-40 ms echo (a comb filter), heavy roughness or a flat pitch; several smear or
#     nearly erase the formants
#   fast: a test setting of espeak's speed-up code, not a voice
#   "Mr serious": a space in its file name (and the same settings as `john`)
EXCLUDED_VARIANTS = frozenset({
    "whisper", "whisperf", "caleb", "fast", "Mr serious",
    "robosoft", "robosoft2", "robosoft3", "robosoft4", "robosoft5", "robosoft6",
    "robosoft7", "robosoft8", "UniRobot", "anikaRobot",
    "RicishayMax", "RicishayMax2", "RicishayMax3", "Demonic",
})

DEFAULT_RATES = tuple(range(130, 201, 10))  # words per minute
DEFAULT_PITCHES = tuple(range(30, 71, 5))  # espeak's 0-100 scale, 50 = the voice's own

# espeak-ng constants (speak_lib.h)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_RATE, _PITCH = 1, 3
_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


@dataclass(frozen=True)
class Voice:
    """An espeak-ng speaker: accent (language voice), variant (voices/!v), rate, pitch."""

    accent: str
    variant: str
    rate: int  # words per minute, 80-450
    pitch: int  # 0-100, 50 = the variant's own pitch

    @property
    def name(self) -> str:
        """The espeak-ng voice name, e.g. 'en-us+m3'."""
        return f"{self.accent}+{self.variant}"

    @property
    def speaker_id(self) -> str:
        """A filesystem-safe id, e.g. 'en-us+m3_r160_p50'."""
        return f"{self.name}_r{self.rate}_p{self.pitch}"


def variants_dir() -> Path:
    return Path(espeakng_loader.get_data_path()) / "voices" / "!v"


def english_variants() -> list[str]:
    """The usable voice variants of the bundled data, sorted (see EXCLUDED_VARIANTS)."""
    found = {p.name for p in variants_dir().iterdir() if p.is_file()}
    return sorted(found - EXCLUDED_VARIANTS)


def english_voices(
    seed: int,
    n: int,
    rates: tuple[int, ...] = DEFAULT_RATES,
    pitches: tuple[int, ...] = DEFAULT_PITCHES,
    variants: list[str] | None = None,
) -> list[Voice]:
    """`n` distinct voices drawn at random (deterministic for `seed`) from
    ENGLISH_ACCENTS x `variants` (default: all of `english_variants()`) x rates x pitches."""
    variants = english_variants() if variants is None else sorted(variants)
    grid = list(itertools.product(ENGLISH_ACCENTS, variants, rates, pitches))
    if n > len(grid):
        raise ValueError(f"asked for {n} distinct voices but only {len(grid)} exist; "
                         "pass more variants, rates or pitches")
    return [Voice(*grid[i]) for i in random.Random(seed).sample(range(len(grid)), n)]


class _Engine:
    """The process's espeak-ng instance: synchronous mode, samples collected by a callback."""

    def __init__(self) -> None:
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                          ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint,
                                     ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                     ctypes.c_void_p, ctypes.c_void_p]
        data = espeakng_loader.get_data_path().encode()
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, _INITIALIZE_DONT_EXIT)
        if rate != TTS_SAMPLE_RATE:
            raise RuntimeError(f"espeak-ng initialisation returned {rate}, expected "
                               f"{TTS_SAMPLE_RATE} Hz; reinstall espeakng-loader==0.2.4")
        self.lib = lib
        self.chunks: list[np.ndarray] = []
        self.callback = _SynthCallback(self._collect)  # keep a reference: C holds a pointer
        lib.espeak_SetSynthCallback(self.callback)

    def _collect(self, wav, n_samples: int, events) -> int:
        if n_samples > 0:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
        return 0  # 0 = go on

    def synthesize(self, text: str, voice: Voice) -> np.ndarray:
        if not (variants_dir() / voice.variant).is_file():
            # espeak-ng silently falls back to the plain accent for an unknown variant
            raise ValueError(f"unknown espeak-ng variant {voice.variant!r}; "
                             f"see the files in {variants_dir()}")
        if self.lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice.name!r}; "
                             f"use an accent from {ENGLISH_ACCENTS}")
        self.lib.espeak_SetParameter(_RATE, voice.rate, 0)
        self.lib.espeak_SetParameter(_PITCH, voice.pitch, 0)
        data = text.encode("utf-8")
        self.lib.espeak_ng_SetRandSeed(zlib.crc32(voice.speaker_id.encode() + b"|" + data))
        self.chunks.clear()
        status = self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0,
                                       _CHARS_UTF8, None, None)
        if status != 0:
            raise RuntimeError(f"espeak-ng failed (status {status}) on {text!r}, "
                               f"voice {voice.speaker_id}")
        if not self.chunks:
            raise RuntimeError(f"espeak-ng produced no audio for {text!r}, "
                               f"voice {voice.speaker_id}")
        return np.concatenate(self.chunks).astype(np.float32) / 32768.0


_engine: _Engine | None = None


def init_worker() -> None:
    """Start this process's synthesiser (use as a multiprocessing Pool initializer)."""
    global _engine
    if _engine is None:
        _engine = _Engine()


def synthesize(text: str, voice: Voice) -> np.ndarray:
    """Speak `text` with `voice`: float32 mono samples in [-1, 1) at TTS_SAMPLE_RATE."""
    if not text.strip():
        raise ValueError("cannot synthesise empty text")
    init_worker()
    return _engine.synthesize(text, voice)
