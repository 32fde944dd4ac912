"""Reading audio in blocks and cutting it at pauses: no sample lost, none invented."""

import shutil
import subprocess

import numpy as np
import pytest
import soundfile
import soxr

from asr import segment
from asr.audio import AudioError, audio_duration, load_audio, stream_audio
from asr.segment import EnergyVAD, SegmentOptions, plan_segments, read_segments, speech_frames


def _tone_bursts(seconds_on_off: list[tuple[float, float]], rate: int = 16000, seed: int = 0) -> np.ndarray:
    """Bursts of loud noise ("speech") separated by near-silence."""
    rng = np.random.default_rng(seed)
    parts = []
    for on, off in seconds_on_off:
        parts.append(0.3 * rng.standard_normal(int(on * rate)))
        parts.append(1e-4 * rng.standard_normal(int(off * rate)))
    return np.concatenate(parts).astype(np.float32)


def test_stream_audio_resamples_across_blocks_like_one_read(tmp_path):
    rate = 44100
    wave = np.random.default_rng(0).uniform(-0.5, 0.5, (int(rate * 7.3), 2)).astype(np.float32)
    path = tmp_path / "stereo.flac"
    soundfile.write(path, wave, rate)
    blocks = list(stream_audio(path, 16000, block_seconds=2.0))
    assert len(blocks) > 3
    streamed = np.concatenate(blocks)
    read, _ = soundfile.read(path, dtype="float32")
    whole = soxr.resample(read.mean(axis=1), rate, 16000)
    assert len(streamed) == len(whole)
    assert np.abs(streamed - whole).max() < 1e-4
    assert audio_duration(path) == pytest.approx(7.3, abs=1e-3)


def test_unreadable_and_empty_files_name_the_file_and_the_fix(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(AudioError, match="bad.wav: cannot read audio.*ffmpeg"):
        list(stream_audio(bad, 16000))
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="empty.wav: the file holds no samples"):
        list(stream_audio(empty, 16000))


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_containers_go_through_ffmpeg_and_its_absence_is_one_line(tmp_path, monkeypatch):
    wav = tmp_path / "a.wav"
    soundfile.write(wav, _tone_bursts([(1.0, 0.5)]), 16000)
    m4a = tmp_path / "a.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(wav), str(m4a)], check=True)
    samples = np.concatenate(list(stream_audio(m4a, 16000)))
    assert abs(len(samples) / 16000 - 1.5) < 0.1  # the AAC encoder pads a few ms
    assert audio_duration(m4a) == pytest.approx(1.5, abs=0.1)
    assert len(load_audio(m4a, 16000)) == len(samples)  # manifests may name such files too
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    with pytest.raises(AudioError, match=r"a.m4a: .m4a files are decoded by ffmpeg, which is not installed; "
                                          r"install it"):
        list(stream_audio(m4a, 16000))


def test_plan_keeps_every_speech_frame_in_segments_no_longer_than_the_limit():
    rng = np.random.default_rng(1)
    speech = np.zeros(20000, bool)  # 200 s of 10 ms frames
    for start in rng.integers(0, 19000, 60):
        speech[start:start + rng.integers(20, 900)] = True
    speech[5000:9000] = True  # 40 s without a pause: must be cut
    levels = np.where(speech, -20.0, -80.0) + rng.normal(0, 1, len(speech))
    options = SegmentOptions(max_seconds=12.0)
    segments = plan_segments(speech, levels, options)
    assert all(0 < end - start <= 1200 for start, end in segments)
    assert all(a[1] <= b[0] for a, b in zip(segments, segments[1:]))  # in order, no overlap
    covered = np.zeros(len(speech), bool)
    for start, end in segments:
        covered[start:end] = True
    assert covered[speech].all()
    assert covered.sum() < 0.9 * len(speech)  # long silences are not decoded


def test_a_long_run_is_cut_at_its_quietest_moment():
    speech = np.ones(3000, bool)
    levels = np.full(3000, -20.0)
    levels[2400:2410] = -50.0  # a dip 24 s in
    assert plan_segments(speech, levels, SegmentOptions(max_seconds=25.0))[0] == (0, 2405)


def test_energy_vad_finds_bursts_on_a_noise_floor_and_read_segments_cuts_them_exactly(monkeypatch):
    monkeypatch.setattr(segment, "BLOCK_SECONDS", 0.7)  # segments straddle block edges
    wave = _tone_bursts([(0.8, 1.5), (0.5, 0.2), (0.6, 2.0)])
    speech, levels, seconds = speech_frames(wave, EnergyVAD(), 16000)
    assert seconds == pytest.approx(len(wave) / 16000)
    assert speech[10:70].all() and not speech[110:220].any()
    segments = plan_segments(speech, levels, SegmentOptions(max_seconds=4.0))
    assert plan_segments(speech, levels, SegmentOptions()) == [(0, len(speech))]  # short: whole
    assert len(segments) == 2  # the 0.2 s gap is bridged, the 1.5 s one is not
    pieces = list(read_segments(wave, segments, 16000))
    for (start, end), piece in zip(segments, pieces, strict=True):
        assert np.array_equal(piece, wave[start * 160:end * 160])


def test_silero_vad_marks_speech_not_silence():
    pytest.importorskip("silero_vad")
    from asr.tts import TTS_SAMPLE_RATE, english_voices, synthesize

    wave = synthesize("the quick brown fox jumps over the lazy dog", english_voices(seed=0, n=1)[0])
    wave = soxr.resample(wave, TTS_SAMPLE_RATE, 16000).astype(np.float32)
    silence = np.zeros(16000, np.float32)
    speech, _, _ = speech_frames(np.concatenate([silence, wave, silence]), segment.SileroVAD(), 16000)
    n = len(wave) // 160
    assert speech[100:100 + n].mean() > 0.7
    assert speech[:80].mean() < 0.1 and speech[-80:].mean() < 0.1
