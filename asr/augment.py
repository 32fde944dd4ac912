"""Robustness augmentation on the fly (training only): speed, reverb, noise, telephone, gain.

`Augmenter(config, rate)(wave, rng)` is a pure function of the waveform and a numpy
Generator: the caller seeds the generator from (seed, epoch, utterance index), so training
is reproducible whatever the number of loader workers. The room impulse responses are
simulated once per process from `seed`; babble comes from other training utterances.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, fields
from functools import lru_cache

import numpy as np
import scipy.fft
import scipy.signal
import torch
import torchaudio.functional as AF
import torchaudio.transforms as AT

from asr.audio import AudioError, load_audio

log = logging.getLogger(__name__)

# `--augment` names -> AugmentConfig fields; presets are whole specs
NAMES = {"speed": "speed_prob", "noise": "noise_prob", "reverb": "reverb_prob",
         "telephone": "telephone_prob", "gain": "gain_prob", "babble": "babble_share"}
PRESETS = {"off": "", "robust": "speed=0.5,noise=0.4,reverb=0.3,telephone=0.15,gain=0.5"}
TELEPHONE_RATE = 8000
BABBLE_SECONDS = 8.0  # a babble talker is cached as at most this much audio


@dataclass
class AugmentConfig:
    """How often each augmentation applies (all 0: off) and the ranges it draws from."""

    speed_prob: float = 0.0
    speed_range: tuple[float, float] = (0.9, 1.1)  # factor s: tempo and pitch x s, length / s
    noise_prob: float = 0.0
    snr_range: tuple[float, float] = (5.0, 30.0)  # dB: active speech power over noise power
    babble_share: float = 0.5  # of noise events, babble of 3-6 utterances; else coloured noise
    reverb_prob: float = 0.0
    telephone_prob: float = 0.0
    gain_prob: float = 0.0
    gain_db_range: tuple[float, float] = (-12.0, 6.0)

    def __post_init__(self):
        for name, attr in NAMES.items():
            value = getattr(self, attr)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"augment: {name}={value} is not a probability in [0, 1]")
        for f in fields(self):
            if f.name.endswith("_range"):
                lo, hi = (float(v) for v in getattr(self, f.name))
                if lo > hi:
                    raise ValueError(f"augment: {f.name} ({lo}, {hi}) must be (low, high)")
                setattr(self, f.name, (lo, hi))
        if self.speed_range[0] <= 0:
            raise ValueError(f"augment: speed_range {self.speed_range} must be positive factors")

    @property
    def enabled(self) -> bool:
        return any(getattr(self, attr) > 0 for name, attr in NAMES.items() if name != "babble")

    @classmethod
    def parse(cls, spec: str) -> AugmentConfig:
        """Read `speed=0.5,noise=0.4,...` (name=probability) or a preset name (`robust`, `off`)."""
        spec = PRESETS.get(spec.strip(), spec)
        values = {}
        for item in filter(None, (part.strip() for part in spec.split(","))):
            name, sep, value = (s.strip() for s in item.partition("="))
            if name not in NAMES or not sep:
                raise ValueError(f"augment: unknown item {item!r}; write name=probability with names "
                                 f"{', '.join(NAMES)}, or a preset: {', '.join(PRESETS)}")
            try:
                values[NAMES[name]] = float(value)
            except ValueError:
                raise ValueError(f"augment: {item!r}: {value!r} is not a number") from None
        return cls(**values)


# ---- the signal operations; every one takes and returns (S,) float32 -------------------------

@lru_cache(maxsize=64)
def _resampler(orig: int, new: int, sharp: bool = False) -> AT.Resample:
    """A resampler that keeps its kernel; `sharp`: a steep low-pass at 0.9 x Nyquist."""
    if sharp:
        return AT.Resample(orig, new, lowpass_filter_width=12, rolloff=0.9,
                           resampling_method="sinc_interp_kaiser", dtype=torch.float32)
    return AT.Resample(orig, new, dtype=torch.float32)


def speed_perturb(wave: torch.Tensor, factor: float, sample_rate: int) -> torch.Tensor:
    """Play `factor` times faster, tempo and pitch together (Kaldi's speed perturbation):
    the result is 1/factor as long. The factor is rounded to 0.01, so the resampling ratio
    reduces to (100 x factor):100 or less (a small kernel)."""
    orig = round(sample_rate * round(factor * 100) / 100)
    return wave if orig == sample_rate else _resampler(orig, sample_rate)(wave)


def active_power(wave: torch.Tensor, sample_rate: int, floor_db: float = -40.0) -> float:
    """Mean power of the 25 ms frames within `floor_db` of the loudest: speech, not pauses."""
    frame = max(1, sample_rate // 40)
    n = wave.numel() // frame
    if n == 0:
        return float(wave.pow(2).mean()) if wave.numel() else 0.0
    power = wave[: n * frame].reshape(n, frame).pow(2).mean(dim=1)  # (n,)
    return float(power[power >= power.max() * 10 ** (floor_db / 10)].mean())


def add_noise(wave: torch.Tensor, noise: torch.Tensor, snr_db: float, sample_rate: int) -> torch.Tensor:
    """wave + noise scaled so that active_power(wave) / mean power of noise is `snr_db`."""
    noise_power, speech_power = float(noise.pow(2).mean()), active_power(wave, sample_rate)
    if noise_power == 0.0 or speech_power == 0.0:
        return wave
    return wave + noise * (speech_power / (noise_power * 10 ** (snr_db / 10))) ** 0.5


def coloured_noise(length: int, beta: float, rng: np.random.Generator) -> torch.Tensor:
    """Gaussian noise with a 1/f^beta power spectrum (0 white, 1 pink, 2 brown), no DC."""
    n = scipy.fft.next_fast_len(length, real=True)  # made a little longer, then cut: fast FFTs
    spectrum = scipy.fft.rfft(rng.standard_normal(n, dtype=np.float32))  # (n // 2 + 1,)
    freqs = scipy.fft.rfftfreq(n).astype(np.float32)
    scale = np.zeros_like(freqs)
    scale[1:] = freqs[1:] ** (-beta / 2)
    return torch.from_numpy(scipy.fft.irfft(spectrum * scale, n=n)[:length].astype(np.float32))


def simulate_rirs(count: int, sample_rate: int, seed: int) -> list[torch.Tensor]:
    """Room impulse responses of shoebox rooms (3-12 m by 3-12 m by 2.4-4 m, RT60 0.2-0.9 s,
    talker 0.5-4 m from the microphone), each cut to start at its direct path and scaled
    to unit energy. Image sources to order 3 plus ray tracing for the tail (about 0.1 s a
    room); deterministic for `seed`."""
    import pyroomacoustics as pra  # slow to import: only when reverb is on

    rng = np.random.default_rng([seed, 0x5253])
    rirs = []
    for i in range(count):
        pra.random.seed(numpy=[seed, i], libroom=seed * 1000 + i)  # its ray tracing draws
        dims = rng.uniform((3.0, 3.0, 2.4), (12.0, 12.0, 4.0))  # metres
        absorption, _ = pra.inverse_sabine(rng.uniform(0.2, 0.9), dims)
        mic = rng.uniform(0.5, dims - 0.5)
        while True:  # a talker inside the room, 0.5-4 m away
            source = rng.uniform(0.5, dims - 0.5)
            if 0.5 <= np.linalg.norm(source - mic) <= 4.0:
                break
        room = pra.ShoeBox(dims, fs=sample_rate, materials=pra.Material(absorption), max_order=3,
                           ray_tracing=True, air_absorption=True)
        room.set_ray_tracing(receiver_radius=0.5, n_rays=300, energy_thres=1e-5)
        room.add_source(source)
        room.add_microphone(mic)
        room.compute_rir()
        # the direct path arrives after the distance's delay plus pra's fractional-delay filter
        direct = round(np.linalg.norm(source - mic) / pra.constants.get("c") * sample_rate
                       + pra.constants.get("frac_delay_length") // 2)
        rir = np.asarray(room.rir[0][0], dtype=np.float64)[direct:]
        rirs.append(torch.from_numpy((rir / np.linalg.norm(rir)).astype(np.float32)))
    return rirs


def reverberate(wave: torch.Tensor, rir: torch.Tensor) -> torch.Tensor:
    """Convolve with `rir` (starting at its direct path): same length, same alignment."""
    n = wave.numel() + rir.numel() - 1
    pad = scipy.fft.next_fast_len(n, real=True) - n  # an FFT size with small factors
    return AF.fftconvolve(torch.nn.functional.pad(wave, (0, pad)), rir)[: wave.numel()]


@lru_cache(maxsize=4)
def _band_pass(rate: int) -> np.ndarray:
    return scipy.signal.butter(4, (300.0, 3400.0), btype="bandpass", fs=rate, output="sos")


def telephone(wave: torch.Tensor, sample_rate: int, band_pass: bool) -> torch.Tensor:
    """A narrowband call: down to 8 kHz, optionally band-pass 300-3400 Hz, 8-bit mu-law
    encode and decode, back to `sample_rate`; the resamplers cut everything above 3.6 kHz."""
    narrow = _resampler(sample_rate, TELEPHONE_RATE, True)(wave) if sample_rate > TELEPHONE_RATE else wave
    if band_pass:
        sos = _band_pass(min(sample_rate, TELEPHONE_RATE))
        narrow = torch.from_numpy(scipy.signal.sosfilt(sos, narrow.numpy()).astype(np.float32))
    narrow = AF.mu_law_decoding(AF.mu_law_encoding(limit_peak(narrow), 256), 256)
    if sample_rate <= TELEPHONE_RATE:
        return narrow
    wide = _resampler(TELEPHONE_RATE, sample_rate, True)(narrow)
    return torch.nn.functional.pad(wide, (0, max(0, wave.numel() - wide.numel())))[: wave.numel()]


def limit_peak(wave: torch.Tensor) -> torch.Tensor:
    """Scale down (never clip) so that no sample exceeds 1 in magnitude."""
    peak = float(wave.abs().max()) if wave.numel() else 0.0
    return wave / peak if peak > 1.0 else wave


# ---- the augmenter --------------------------------------------------------------------------

_rir_banks: dict[tuple[int, int, int], list[torch.Tensor]] = {}  # one per process and setting


class Augmenter:
    """Apply, each with its probability: speed -> reverb -> noise -> telephone -> gain,
    then limit the peak. Babble talkers are up to `babble_pool` of `babble_paths` (chosen
    with `seed`), each read once and cached (at most 8 s of it); unreadable ones are skipped.
    The RIR bank is simulated on first use, once per process: touch `.rirs` before loader
    workers fork, or keep them persistent, so that it is not rebuilt every epoch."""

    def __init__(self, config: AugmentConfig, sample_rate: int, babble_paths=(), seed: int = 0,
                 rir_count: int = 24, babble_pool: int = 48):
        if config.telephone_prob > 0 and sample_rate < TELEPHONE_RATE:
            raise ValueError(f"telephone augmentation needs audio of 8 kHz or more, not {sample_rate} Hz")
        self.config, self.sample_rate, self.seed, self.rir_count = config, sample_rate, seed, rir_count
        paths = list(babble_paths)
        if len(paths) > babble_pool:
            keep = np.random.default_rng([seed, 0x4241]).choice(len(paths), babble_pool, replace=False)
            paths = [paths[i] for i in sorted(keep)]
        self.babble_paths = paths
        self._talkers: dict[str, torch.Tensor | None] = {}

    @property
    def rirs(self) -> list[torch.Tensor]:
        key = (self.rir_count, self.sample_rate, self.seed)
        if key not in _rir_banks:
            start = time.perf_counter()
            _rir_banks[key] = simulate_rirs(*key)
            log.info("simulated %d room impulse responses in %.1f s", key[0], time.perf_counter() - start)
        return _rir_banks[key]

    def __call__(self, wave: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """(S,) float32 -> (S',) float32; S' = S unless speed perturbation applied."""
        c, rate = self.config, self.sample_rate
        wave = wave.to(torch.float32).reshape(-1)
        if not c.enabled or wave.numel() < 2:
            return wave
        if rng.random() < c.speed_prob:
            wave = speed_perturb(wave, rng.uniform(*c.speed_range), rate)
        if rng.random() < c.reverb_prob:
            wave = reverberate(wave, self.rirs[rng.integers(self.rir_count)])
        if rng.random() < c.noise_prob:
            wave = add_noise(wave, self.noise(wave.numel(), rng), rng.uniform(*c.snr_range), rate)
        if rng.random() < c.telephone_prob:
            wave = telephone(wave, rate, band_pass=rng.random() < 0.5)
        if rng.random() < c.gain_prob:
            wave = wave * 10 ** (rng.uniform(*c.gain_db_range) / 20)
        return limit_peak(wave)

    def noise(self, length: int, rng: np.random.Generator) -> torch.Tensor:
        """Babble (with probability babble_share, when there are talkers) or coloured noise."""
        if self.babble_paths and rng.random() < self.config.babble_share:
            babble = self.babble(length, rng)
            if babble is not None:
                return babble
        return coloured_noise(length, rng.uniform(0.0, 2.0), rng)

    def babble(self, length: int, rng: np.random.Generator) -> torch.Tensor | None:
        """3-6 talkers at equal power, each looped from a random offset to `length` samples."""
        picks = rng.choice(len(self.babble_paths), min(int(rng.integers(3, 7)), len(self.babble_paths)),
                           replace=False)
        total = torch.zeros(length)
        for i in picks:
            talker = self._talker(self.babble_paths[i])
            if talker is None:
                continue
            start = int(rng.integers(talker.numel()))
            looped = talker.repeat(-(-(start + length) // talker.numel()))[start:start + length]
            total += looped / looped.pow(2).mean().sqrt().clamp_min(1e-8)
        return total if bool(total.any()) else None

    def _talker(self, path: str) -> torch.Tensor | None:
        if path not in self._talkers:
            try:
                wave = load_audio(path, self.sample_rate)
                self._talkers[path] = wave[: int(BABBLE_SECONDS * self.sample_rate)]
            except AudioError as err:
                log.warning("babble: skipping %s", err)
                self._talkers[path] = None
        return self._talkers[path]
