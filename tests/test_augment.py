import numpy as np
import pytest
import soundfile
import torch

from asr import augment
from asr.augment import AugmentConfig, Augmenter

RATE = 16000
ALL_ON = AugmentConfig(speed_prob=1.0, noise_prob=1.0, reverb_prob=1.0, telephone_prob=1.0,
                       gain_prob=1.0)


def speechlike(seconds: float, seed: int = 0, silence: float = 0.0) -> torch.Tensor:
    """Voiced syllables (harmonics of a gliding f0 under a 4 Hz envelope) plus a little
    broadband noise, then `silence` seconds of zeros. Returns (S,) float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 30))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    wave = 0.1 * envelope * voiced + 0.02 * rng.standard_normal(t.size)
    wave = np.concatenate([wave, np.zeros(int(silence * RATE))])
    return torch.from_numpy(wave.astype(np.float32))


def band_share(wave: torch.Tensor, low_hz: float) -> float:
    """The share of the energy above `low_hz`."""
    power = np.abs(np.fft.rfft(wave.numpy())) ** 2
    freqs = np.fft.rfftfreq(wave.numel(), 1 / RATE)
    return float(power[freqs > low_hz].sum() / power.sum())


def db(ratio: float) -> float:
    return 10 * np.log10(ratio)


@pytest.fixture
def talkers(tmp_path):
    """Five babble talkers of 1-3 s on disk, and one file that is not audio."""
    paths = []
    for i in range(5):
        path = tmp_path / f"talker{i}.wav"
        soundfile.write(path, speechlike(1 + i / 2, seed=10 + i).numpy(), RATE)
        paths.append(str(path))
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"not a wav file")
    return paths + [str(bad)]


@pytest.fixture(scope="module")
def rich():
    """Every augmentation on, with a small RIR bank (built once for the module)."""
    return Augmenter(ALL_ON, RATE, rir_count=6, seed=3)


def test_off_by_default_returns_the_input():
    config = AugmentConfig()
    assert not config.enabled
    wave = speechlike(1.0)
    assert torch.equal(Augmenter(config, RATE)(wave, np.random.default_rng(0)), wave)


def test_same_seed_same_output_other_seed_differs(rich, talkers):
    aug = Augmenter(ALL_ON, RATE, babble_paths=talkers, rir_count=6, seed=3)
    wave = speechlike(2.0)
    first = aug(wave, np.random.default_rng([7, 1, 42]))
    again = aug(wave, np.random.default_rng([7, 1, 42]))
    other = aug(wave, np.random.default_rng([7, 2, 42]))
    assert torch.equal(first, again)
    assert first.numel() != other.numel() or not torch.allclose(first, other)
    for out in (first, other):
        assert out.dtype == torch.float32 and out.dim() == 1
        assert torch.isfinite(out).all() and out.abs().max() <= 1.0


@pytest.mark.parametrize("factor", [0.9, 1.1, 1.03])
def test_speed_changes_length_by_the_factor(factor):
    wave = speechlike(3.0)
    out = augment.speed_perturb(wave, factor, RATE)
    assert abs(out.numel() - wave.numel() / factor) <= 2
    aug = Augmenter(AugmentConfig(speed_prob=1.0, speed_range=(factor, factor)), RATE)
    assert aug(wave, np.random.default_rng(0)).numel() == out.numel()


def test_speed_changes_pitch():
    t = np.arange(RATE) / RATE
    tone = torch.from_numpy(np.sin(2 * np.pi * 1000 * t).astype(np.float32))
    out = augment.speed_perturb(tone, 1.1, RATE)
    peak_hz = np.argmax(np.abs(np.fft.rfft(out.numpy()))) * RATE / out.numel()
    assert abs(peak_hz - 1100) < 5


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 25.0])
def test_noise_is_added_at_the_snr_of_the_active_speech(snr_db, talkers):
    # half of the input is silence: the SNR must be measured against the speech part only
    wave = speechlike(2.0, silence=2.0)
    speech_power = float(wave[: 2 * RATE].pow(2).mean())
    rng = np.random.default_rng(0)
    babble = Augmenter(AugmentConfig(), RATE, babble_paths=talkers).babble(wave.numel(), rng)
    for noise in (augment.coloured_noise(wave.numel(), 1.0, rng), babble):
        out = augment.add_noise(wave, noise, snr_db, RATE)
        measured = db(speech_power / float((out - wave).pow(2).mean()))
        assert abs(measured - snr_db) < 0.5


@pytest.mark.parametrize("beta", [0.0, 1.0, 2.0])
def test_coloured_noise_has_a_one_over_f_beta_spectrum(beta):
    noise = augment.coloured_noise(2**16, beta, np.random.default_rng(0))
    power = np.abs(np.fft.rfft(noise.numpy())) ** 2
    freqs = np.fft.rfftfreq(noise.numel())
    bands = [(f, 2 * f) for f in (0.002, 0.008, 0.032, 0.128)]  # octaves
    levels = [np.log10(power[(freqs >= lo) & (freqs < hi)].mean()) for lo, hi in bands]
    slope = np.polyfit(np.log10([lo for lo, _ in bands]), levels, 1)[0]
    assert abs(slope + beta) < 0.15


def test_babble_skips_unreadable_files_and_falls_back_to_coloured_noise(talkers):
    config = AugmentConfig(noise_prob=1.0, babble_share=1.0)
    only_bad = Augmenter(config, RATE, babble_paths=talkers[-1:])
    assert only_bad.babble(RATE, np.random.default_rng(0)) is None
    assert only_bad.noise(RATE, np.random.default_rng(0)).pow(2).mean() > 0  # coloured instead
    babble = Augmenter(config, RATE, babble_paths=talkers).babble(3 * RATE, np.random.default_rng(0))
    assert babble is not None and babble.numel() == 3 * RATE
    pool = Augmenter(config, RATE, babble_paths=[f"{i}.wav" for i in range(50)], babble_pool=8)
    assert len(pool.babble_paths) == 8 and len(set(pool.babble_paths)) == 8
    assert pool.babble_paths != [f"{i}.wav" for i in range(8)]  # drawn, not the first ones


@pytest.mark.parametrize("band_pass", [False, True])
def test_telephone_removes_the_band_above_4khz(band_pass):
    wave = speechlike(2.0) + 0.05 * torch.randn(2 * RATE, generator=torch.Generator().manual_seed(0))
    assert band_share(wave, 4000) > 0.1
    out = augment.telephone(wave, RATE, band_pass=band_pass)
    assert out.numel() == wave.numel()
    assert band_share(out, 4000) < 1e-3
    assert 0.1 < float(out.pow(2).mean() / wave.pow(2).mean()) < 2.0  # the speech band remains
    if band_pass:
        assert 1 - band_share(out, 200) < 0.01 * (1 - band_share(wave, 200))  # 300-3400 Hz


def test_rir_bank_is_deterministic_for_the_seed():
    first, again, other = (augment.simulate_rirs(2, RATE, seed) for seed in (5, 5, 6))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0][:1000], other[0][:1000])
    for rir in first:  # unit energy, starting at the direct path (a reflection may sum higher)
        assert abs(float(rir.norm()) - 1.0) < 1e-4 and rir[0].abs() > 0.5 * rir.abs().max()


def test_reverb_keeps_length_and_alignment(rich):
    t = np.arange(2 * RATE) / RATE  # a broadband chirp: its autocorrelation has one peak
    wave = torch.from_numpy((0.3 * np.sin(2 * np.pi * (50 * t + 1000 * t**2))).astype(np.float32))
    out = Augmenter(AugmentConfig(reverb_prob=1.0), RATE, rir_count=6, seed=3)(wave, np.random.default_rng(0))
    assert out.numel() == wave.numel() and not torch.allclose(out, wave, atol=1e-2)
    lags = []
    for rir in rich.rirs:
        out = augment.reverberate(wave, rir)
        xcorr = np.correlate(out.numpy(), wave[1000:-1000].numpy(), mode="valid")  # index 1000: lag 0
        lags.append(int(np.argmax(np.abs(xcorr))) - 1000)
    # the output never leads the input, and its strongest copy is the direct path, unless a
    # far talker's reflections sum higher (one of these six rooms)
    assert min(lags) >= 0 and lags.count(0) >= 5, lags


@pytest.mark.parametrize("gain_db", [-7.5, 3.0])
def test_gain_changes_rms_by_the_drawn_db(gain_db):
    wave = 0.1 * speechlike(1.0)
    aug = Augmenter(AugmentConfig(gain_prob=1.0, gain_db_range=(gain_db, gain_db)), RATE)
    out = aug(wave, np.random.default_rng(0))
    assert abs(db(float(out.pow(2).mean() / wave.pow(2).mean())) - gain_db) < 0.01


def test_loud_output_is_scaled_not_clipped():
    wave = speechlike(1.0) * 5  # peaks well above 1
    aug = Augmenter(AugmentConfig(gain_prob=1.0, gain_db_range=(6.0, 6.0)), RATE)
    out = aug(wave, np.random.default_rng(0))
    assert float(out.abs().max()) == pytest.approx(1.0)
    assert torch.allclose(out / out.abs().max(), wave / wave.abs().max(), atol=1e-6)  # same shape


@pytest.mark.parametrize("length", [0, 1, 2, 7, 300])
def test_tiny_inputs_do_not_crash(rich, length):
    out = rich(speechlike(1.0)[:length], np.random.default_rng(length))
    assert out.dtype == torch.float32 and out.dim() == 1 and torch.isfinite(out).all()


def test_parse_and_errors():
    config = AugmentConfig.parse("speed=0.5, noise=0.4,reverb=0.3,telephone=0.15,gain=0.5")
    assert (config.speed_prob, config.noise_prob, config.telephone_prob) == (0.5, 0.4, 0.15)
    assert config.enabled
    assert AugmentConfig.parse("robust") == AugmentConfig.parse(augment.PRESETS["robust"])
    assert not AugmentConfig.parse("").enabled and not AugmentConfig.parse("off").enabled
    assert not AugmentConfig.parse("babble=0.9").enabled  # a share, not an augmentation
    with pytest.raises(ValueError, match="speed, noise, reverb, telephone, gain"):
        AugmentConfig.parse("speed=0.5,echo=0.2")
    with pytest.raises(ValueError, match="not a number"):
        AugmentConfig.parse("speed=lots")
    with pytest.raises(ValueError, match="probability"):
        AugmentConfig.parse("noise=1.5")
