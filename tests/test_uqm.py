"""The Ur-Quan Masters corpus: transcripts, stage directions, cuts at pauses, held-out actors.

Most tests build a small copy of the game's layout (two zip files, Ogg clips, dialogue and
timing files); one reads the installed packages when they are there.
"""

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile

from asr.corpora import uqm

RATE = 11025


def _speech(seconds: float, seed: int) -> np.ndarray:
    """Speech-like sound: a harmonic tone with a syllable-rate envelope."""
    t = np.arange(int(seconds * RATE)) / RATE
    tone = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((140, 280, 420, 560), 1))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * (3 + seed) * t) ** 2
    return (0.2 * tone * envelope).astype(np.float32)


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), np.float32)


def _ogg(wave: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    soundfile.write(buffer, wave, RATE, format="OGG", subtype="VORBIS")
    return buffer.getvalue()


# race -> [(key, clip audio or None, text lines, line timings in ms)]
GAME = {
    "orz": [("HELLO", _speech(3, 0), ["Hello, *Captain*!"], []),
            ("CRY", _speech(1, 1), ["(SOB!)"], []),
            # 9 s + 0.4 s pause, 8 s + 0.4 s pause, 6 s: cut into lines 1-2 and line 3
            ("LONG", np.concatenate([_speech(9, 2), _silence(0.4), _speech(8, 3), _silence(0.4),
                                     _speech(6, 4)]),
             ["We are Orz.", "We are happy campers (sniff!) today.", "Goodbye, 22 friends."],
             [9100, 8300]),
            ("ONE_LONG_LINE", _speech(23, 5), ["A very long line."], []),
            ("NO_CLIP", None, ["Text the game shows but no actor says."], [])],
    "spathi": [("HI", _speech(2, 6), ["Greetings (whatever that means) human."], [])],
    "yehat": [("HI", _speech(2, 7), ["Honor to the clan."], [])],
    "yehatrebels": [("HI", _speech(2, 8), ["Rebel honor."], [])],
    "zoqfotpik": [("HI", _speech(2, 9), ["Hello, friend <HEAVY BREATHING>."], []),
                  ("captain_says", None, ["Hi there!"], [])],
    "druuge": [("HI", _speech(2, 10), ["Buy now."], [])],  # its dialogue file is missing
}
NO_DIALOGUE = {"druuge"}


@pytest.fixture(scope="module")
def game(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("uqm")
    (root / "addons").mkdir()
    (root / "packages").mkdir()
    with zipfile.ZipFile(root / uqm.VOICE_ZIP, "w") as voice, \
            zipfile.ZipFile(root / uqm.CONTENT_ZIP, "w") as content:
        for race, entries in GAME.items():
            dialogue, timings = [], []
            for i, (key, audio, lines, ms) in enumerate(entries):
                clip = f"{race}-{i:03d}.ogg" if audio is not None else ""
                dialogue += [f"#({key})\t{clip}".rstrip(), *lines, ""]
                timings.append(f"#({key}) {','.join(map(str, ms))}")
                if audio is not None:
                    voice.writestr(f"3dovoice/{race}/{clip}", _ogg(audio))
            if race not in NO_DIALOGUE:
                content.writestr(f"base/comm/{race}/{race}.txt", "\n".join(dialogue).encode("latin-1"))
            voice.writestr(f"3dovoice/{race}/{race}.ts", "\n".join(timings))
    return root


@pytest.fixture(scope="module")
def corpus(game, tmp_path_factory):
    out = tmp_path_factory.mktemp("uqm-out")
    return out, uqm.prepare_uqm(out, data_dir=game, dev_races=("spathi",),
                                test_races=("orz", "yehat"))


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_stage_directions_are_not_speech():
    assert uqm.speech_text("(SOB!) I am (sniff!) so sad... (whimper)") == "i am so sad"
    assert uqm.speech_text("(...much later...) Hello <HEAVY BREATHING>") == "hello"
    assert uqm.speech_text("(that's what the Earth press called it)") == \
        "that's what the earth press called it"
    assert uqm.speech_text("(sob!)") == ""


def test_whole_characters_are_held_out(corpus):
    _, manifests = corpus
    speakers = {split: {r["speaker"] for r in _rows(path)} for split, path in manifests.items()}
    assert speakers == {"train": {"zoqfotpik"}, "dev": {"spathi"}, "test": {"orz", "yehat"},
                        "test_clips": {"orz", "yehat"}}
    test_ids = {r["id"] for r in _rows(manifests["test"])}
    assert "yehatrebels-000" in test_ids  # the same actor as the yehat


def test_long_clips_are_cut_at_the_pause_between_lines(corpus):
    out, manifests = corpus
    rows = {r["id"]: r for r in _rows(manifests["test"])}
    first, second = rows["orz-002-0"], rows["orz-002-1"]
    assert first["text"] == "we are orz we are happy campers today"
    assert second["text"] == "goodbye twenty two friends"
    # the nominal boundary (17.4 s) is moved into the real pause (17.4-17.8 s)
    assert 17.4 <= first["duration"] <= 17.8 and 5.9 < second["duration"] < 6.5
    assert rows["orz-000"]["text"] == "hello captain"
    assert not any(i.startswith(("orz-001", "orz-003")) for i in rows)  # sob only; one long line
    whole = [r["id"] for r in _rows(manifests["test_clips"])]
    assert whole == ["orz-000", "yehat-000", "yehatrebels-000"]  # the clips that needed no cut
    summary = json.loads((out / "summary.json").read_text())
    assert summary == {"clips": 8, "kept": 6, "cut": 1, "pieces": 7, "no_speech": 1,
                       "too_long": 1, "no_transcript": 0, "unreadable": 0,
                       "no_dialogue": 1}
    for row in rows.values():
        info = soundfile.info(manifests["test"].parent / row["audio_filepath"])  # relative to it
        assert info.samplerate == 16000 and abs(info.frames / 16000 - row["duration"]) < 0.001


def test_lines_too_short_to_cut_between_leave_the_clip_out():
    # a line timed at 0 ms: the cut before it and the one after it fall at the same pause
    wave = np.concatenate([_speech(9.5, 0), _silence(0.1), _speech(11, 1)])
    assert uqm.cut_between_lines(wave, RATE, ["a", "b", "c"], [9000, 0]) is None
    (_, cut, first), (start, _, second) = uqm.cut_between_lines(wave, RATE, ["a", "b"], [9000])
    assert (first, second) == (["a"], ["b"]) and cut == start and 9.5 <= cut / RATE <= 9.6


def test_lm_text_is_the_training_actors_only(corpus):
    out, _ = corpus
    assert (out / "lm_train.txt").read_text() == "hello friend\nhi there\n"  # + the captain's line


def test_prepare_again_is_a_no_op(corpus, game):
    out, manifests = corpus
    before = {p: p.stat().st_mtime_ns for p in manifests.values()}
    assert uqm.prepare_uqm(out, data_dir=game, dev_races=("spathi",),
                           test_races=("orz", "yehat")) == manifests
    assert {p: p.stat().st_mtime_ns for p in manifests.values()} == before


def test_missing_packages_and_unknown_characters_name_the_fix(game, tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install uqm-voice uqm-content"):
        uqm.prepare_uqm(tmp_path / "out", data_dir=tmp_path)
    with pytest.raises(ValueError, match="no UQM character kzinti; choose from"):
        uqm.prepare_uqm(tmp_path / "out", data_dir=game, dev_races=("spathi",), test_races=("kzinti",))
    with pytest.raises(ValueError, match="yehat: held out for both dev and test"):
        uqm.prepare_uqm(tmp_path / "out", data_dir=game, dev_races=("yehatrebels",), test_races=("yehat",))
    assert not (tmp_path / "out").exists()


def test_a_broken_zip_names_the_file_and_the_fix(game, tmp_path):
    broken = tmp_path / "game"
    for name, keep in ((uqm.VOICE_ZIP, None), (uqm.CONTENT_ZIP, 100)):  # content cut short
        (broken / name).parent.mkdir(parents=True, exist_ok=True)
        (broken / name).write_bytes((game / name).read_bytes()[:keep])
    with pytest.raises(ValueError, match=f"{uqm.CONTENT_ZIP}: not a readable zip file.*apt-get install"):
        uqm.prepare_uqm(tmp_path / "out", data_dir=broken)


def test_the_installed_game_has_timings_for_its_long_clips():
    root = Path(uqm.DATA_DIR)
    if not (root / uqm.VOICE_ZIP).is_file():
        pytest.skip("uqm-voice and uqm-content are not installed")
    with uqm.game_zips(root) as (voice, content):
        entries, timings = uqm._dialogue(voice, content, "syreen")
        races = uqm._races(voice)
    clip, lines = entries["HELLO_BEFORE_AMBUSH_1"]
    assert clip == "syreen-000.ogg" and lines[0] == "Attention unidentified space vessel!"
    assert len(timings["HELLO_BEFORE_AMBUSH_1"]) == len(lines) - 1
    assert len(races) == 27
