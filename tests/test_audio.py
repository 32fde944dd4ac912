import numpy as np
import pytest
import soundfile
import torch

from asr.audio import AudioError, load_audio


def _tone(freq, rate, seconds=1.0):
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(wave: torch.Tensor, rate: int) -> float:
    spectrum = torch.fft.rfft(wave).abs()
    return float(spectrum.argmax()) * rate / len(wave)


def test_resampling_keeps_tone_frequency(tmp_path):
    path = tmp_path / "tone.wav"
    soundfile.write(path, _tone(440.0, 44100), 44100)
    wave = load_audio(path, 16000)
    assert wave.dtype == torch.float32
    assert abs(len(wave) - 16000) <= 1
    assert abs(_peak_hz(wave, 16000) - 440.0) < 2.0


def test_stereo_is_downmixed(tmp_path):
    tone = _tone(300.0, 16000)
    path = tmp_path / "stereo.flac"
    soundfile.write(path, np.stack([tone, np.zeros_like(tone)], axis=1), 16000)
    wave = load_audio(path, 16000)
    assert wave.ndim == 1
    assert np.allclose(wave.numpy(), tone / 2, atol=1e-3)  # FLAC is 16-bit


@pytest.mark.parametrize("fmt, ext", [("OGG", "ogg"), ("FLAC", "flac"), ("WAV", "wav")])
def test_formats_read(tmp_path, fmt, ext):
    path = tmp_path / f"a.{ext}"
    soundfile.write(path, _tone(500.0, 22050), 22050, format=fmt)
    wave = load_audio(path, 16000)
    assert abs(len(wave) - 16000) <= 2
    assert abs(_peak_hz(wave, 16000) - 500.0) < 3.0


def test_corrupt_file_names_file_and_fix(tmp_path):
    path = tmp_path / "broken.wav"
    path.write_bytes(b"RIFF\x00\x00garbage" * 10)
    with pytest.raises(AudioError, match=r"broken\.wav: cannot read audio.*convert it"):
        load_audio(path, 16000)


def test_missing_empty_and_nan_files(tmp_path):
    with pytest.raises(AudioError, match="nope.wav: no such file"):
        load_audio(tmp_path / "nope.wav", 16000)
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="empty.wav: the file holds no samples"):
        load_audio(empty, 16000)
    bad = tmp_path / "nan.wav"
    samples = _tone(100.0, 16000)
    samples[10] = np.nan
    soundfile.write(bad, samples, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="nan.wav: samples contain NaN"):
        load_audio(bad, 16000)
