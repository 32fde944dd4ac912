"""espeak-ng text-to-speech through ctypes: audio, voices and errors."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from asr import tts
from asr.tts import Voice, synthesize

M3 = Voice("en-us", "m3", 160, 50)
SENTENCE = "the quick brown fox jumps over the lazy dog"


def _spectrum(wave: np.ndarray) -> np.ndarray:
    """Long-term average log magnitude spectrum: the timbre of a voice."""
    frames = np.lib.stride_tricks.sliding_window_view(wave, 512)[::256] * np.hanning(512)
    return np.log(np.abs(np.fft.rfft(frames)).mean(axis=0) + 1e-6)


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(_spectrum(a) - _spectrum(b)).mean())


def test_a_word_is_short_clean_audio():
    wave = synthesize("seven", M3)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert 0.2 < len(wave) / tts.TTS_SAMPLE_RATE < 2.0
    assert np.isfinite(wave).all() and np.abs(wave).max() <= 1.0
    assert np.sqrt(np.mean(wave**2)) > 0.01  # not silence


def test_longer_text_and_faster_rate_change_duration():
    one = len(synthesize("seven", M3))
    four = len(synthesize("seven three nine one", M3))
    fast = len(synthesize("seven three nine one", Voice("en-us", "m3", 250, 50)))
    assert four > 2.5 * one
    assert fast < 0.85 * four


def test_same_voice_sounds_the_same_and_other_voices_differ():
    first, again = synthesize(SENTENCE, M3), synthesize(SENTENCE, M3)
    assert abs(len(first) - len(again)) < 0.01 * len(first)
    assert _distance(first, again) < 0.05
    for other in (Voice("en-us", "f3", 160, 50), Voice("en-us", "m1", 160, 50)):
        assert _distance(first, synthesize(SENTENCE, other)) > 0.15, other


def test_a_fresh_process_gives_identical_audio():
    code = ("import hashlib; from asr.tts import Voice, synthesize; "
            "print(hashlib.sha1(synthesize('nine oh four', Voice('en-gb-x-rp', 'f2', 150, 40))"
            ".tobytes()).hexdigest())")
    repo = Path(__file__).resolve().parents[1]
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, cwd=repo).stdout for _ in range(2)]
    assert runs[0] == runs[1] and len(runs[0].strip()) == 40


def test_every_accent_and_usable_variant_speaks():
    for accent in tts.ENGLISH_ACCENTS:
        assert len(synthesize("hello", Voice(accent, "m3", 175, 50))) > 0.1 * tts.TTS_SAMPLE_RATE
    for variant in tts.english_variants():
        wave = synthesize("nine", Voice("en", variant, 175, 50))
        assert 0.1 < len(wave) / tts.TTS_SAMPLE_RATE < 2.0, variant
        assert np.abs(wave).max() > 0.02, variant


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="empty"):
        synthesize("  ", M3)
    with pytest.raises(ValueError, match="variant"):
        synthesize("hello", Voice("en-us", "no-such-variant", 160, 50))
    with pytest.raises(ValueError, match="no voice"):
        synthesize("hello", Voice("xx-nowhere", "m3", 160, 50))


def test_english_voices_are_distinct_deterministic_and_in_range():
    voices = tts.english_voices(seed=3, n=200)
    assert len(set(voices)) == 200
    assert voices == tts.english_voices(seed=3, n=200)
    assert voices != tts.english_voices(seed=4, n=200)
    assert {v.accent for v in voices} == set(tts.ENGLISH_ACCENTS)
    assert not {v.variant for v in voices} & tts.EXCLUDED_VARIANTS
    assert all(130 <= v.rate <= 200 and 30 <= v.pitch <= 70 for v in voices)
    assert all(re.fullmatch(r"[A-Za-z0-9+_.-]+", v.speaker_id) for v in voices)


def test_english_voices_respects_the_grid_it_is_given():
    voices = tts.english_voices(0, 16, rates=(150,), pitches=(40, 60), variants=["m1"])
    assert {(v.variant, v.rate) for v in voices} == {("m1", 150)}
    assert len(set(voices)) == 16  # 8 accents x 2 pitches: all of them
    with pytest.raises(ValueError, match="distinct voices"):
        tts.english_voices(0, 17, rates=(150,), pitches=(40, 60), variants=["m1"])


# ---- the other engines, behind one interface ------------------------------------------

def _installed(engine: str) -> bool:
    return tts.get_engine(engine).available()


@pytest.mark.parametrize("engine", ["espeak", "mbrola", "rhvoice", "piper"])
def test_every_installed_engine_speaks_at_its_rate_and_voice(engine):
    if not _installed(engine):
        pytest.skip(f"{engine} is not installed: {tts.ENGINES[engine].install}")
    speakers = tts.get_engine(engine).speakers()
    assert len(speakers) == len(set(speakers)) >= 5
    voice = speakers[len(speakers) // 2]
    wave, rate = tts.speak(SENTENCE, voice)
    assert wave.dtype == np.float32 and wave.ndim == 1 and rate in (16000, 22050, 24000)
    assert 1.2 < len(wave) / rate < 5.0  # nine words
    assert np.isfinite(wave).all() and np.sqrt(np.mean(wave**2)) > 0.01


def test_engine_speakers_differ_in_rate_and_timbre():
    if not _installed("rhvoice"):
        pytest.skip("rhvoice is not installed")
    slow, fast = (tts.speak(SENTENCE, tts.EngineVoice("rhvoice", "bdl", r))[0] for r in (85, 115))
    assert len(fast) < 0.9 * len(slow)
    male, female = (tts.speak(SENTENCE, tts.EngineVoice("rhvoice", v))[0] for v in ("bdl", "clb"))
    assert _distance(male, female) > 0.15
    assert tts.EngineVoice("rhvoice", "bdl", 85, 115).speaker_id == "rhvoice-bdl_r85_p115"


def test_piper_rate_sets_the_length_and_each_take_differs():
    if not _installed("piper"):
        pytest.skip("piper is not installed")
    joe = tts.EngineVoice("piper", "joe")
    first, again = tts.speak(SENTENCE, joe)[0], tts.speak(SENTENCE, joe)[0]
    assert not np.array_equal(first, again)  # the model samples its noise anew
    assert abs(len(first) - len(again)) < 0.15 * len(first)  # a little: the same rate
    # each take draws its own phone durations (about +-10%), so compare rates far apart
    slow, fast = (tts.speak(SENTENCE, tts.EngineVoice("piper", "joe", r))[0] for r in (70, 140))
    assert len(slow) > 1.4 * len(fast)


def test_missing_engines_are_reported_with_how_to_install(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # no espeak-ng, mbrola or RHVoice-test commands
    found, missing = tts.available_engines(["espeak", "mbrola", "rhvoice"])
    assert found == ["espeak"]
    assert "mbrola-us1" in missing["mbrola"] and "rhvoice-english" in missing["rhvoice"]
    with pytest.raises(ValueError, match="choose from espeak, mbrola, rhvoice, piper"):
        tts.get_engine("festival")
    with pytest.raises(ValueError, match="empty"):
        tts.speak("  ", M3)
