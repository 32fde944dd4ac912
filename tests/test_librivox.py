"""Real speech from Debian's pocketsphinx-testdata: the manifests, and PocketSphinx on them."""

import argparse
import importlib.util
import inspect
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from asr import cli
from asr.corpora.librivox import DATA_DIR, add_arguments, prepare_librivox
from asr.score import score
from asr.text import normalize

INSTALLED = (Path(DATA_DIR) / "librivox" / "transcription").is_file()
needs_data = pytest.mark.skipif(not INSTALLED, reason="pocketsphinx-testdata is not installed")
needs_pocketsphinx = pytest.mark.skipif(importlib.util.find_spec("pocketsphinx") is None,
                                        reason="pocketsphinx is not installed")


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    if not INSTALLED:
        pytest.skip("pocketsphinx-testdata is not installed")
    out = tmp_path_factory.mktemp("librivox")
    return out, prepare_librivox(out)


@needs_data
def test_manifests_hold_the_recordings_and_their_transcripts(prepared):
    out, manifests = prepared
    assert manifests == {"test": out / "test.jsonl", "cards": out / "cards.jsonl"}
    test, cards = _rows(manifests["test"]), _rows(manifests["cards"])
    assert len(test) == len(cards) == 5
    for r in test + cards:
        assert set(r) == {"id", "audio_filepath", "duration", "text", "speaker", "engine"}
        info = soundfile.info(r["audio_filepath"])
        assert Path(r["audio_filepath"]).is_absolute() and Path(r["audio_filepath"]).is_relative_to(DATA_DIR)
        assert info.samplerate == 16000 and info.channels == 1
        assert r["duration"] == round(info.frames / 16000, 3)
        assert r["text"] and normalize(r["text"]) == r["text"] and "<s>" not in r["text"]
    assert 20 < sum(r["duration"] for r in test) < 30
    assert {r["speaker"] for r in test} == {"sense_and_sensibility_01_austen_64kb"}
    words = " ".join(r["text"] for r in test)
    assert "mister john dashwood" in words and "ill disposed young man" in words
    assert words.count("amiable") == 2
    assert [r["id"] for r in cards] == [f"cards-00{i}" for i in range(1, 6)]
    assert cards[4]["text"] == "eight of spades four of clubs seven of hearts"


@needs_data
def test_prepare_is_idempotent_and_cards_optional(prepared, tmp_path):
    out, manifests = prepared
    before = {name: path.read_bytes() for name, path in manifests.items()}
    assert prepare_librivox(out) == manifests
    assert {name: path.read_bytes() for name, path in manifests.items()} == before
    assert prepare_librivox(tmp_path, cards=False) == {"test": tmp_path / "test.jsonl"}
    assert not (tmp_path / "cards.jsonl").exists()


def test_missing_package_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"none: not found; install Debian's "
                       r"pocketsphinx-testdata \(apt-get install pocketsphinx-testdata\)"):
        prepare_librivox(tmp_path / "out", data_dir=tmp_path / "none")
    (tmp_path / "data").mkdir()
    with pytest.raises(FileNotFoundError, match=r"librivox/transcription: not found; install Debian's"):
        prepare_librivox(tmp_path / "out", data_dir=tmp_path / "data")
    assert not (tmp_path / "out").exists()


def test_a_bad_transcript_line_or_missing_wav_is_named(tmp_path):
    folder = tmp_path / "librivox"
    folder.mkdir()
    soundfile.write(folder / "a-1.wav", np.zeros(1600, dtype=np.int16), 16000)
    (folder / "transcription").write_text("<s> One, two! </s> (a-1)\nno id here\n")
    with pytest.raises(ValueError, match=r"transcription:2: not a `<s> words </s> \(id\)` line"):
        prepare_librivox(tmp_path / "out", data_dir=tmp_path, cards=False)
    (folder / "transcription").write_text("<s> One, two! </s> (a-1)\n<s> three </s> (a-2)\n")
    with pytest.raises(FileNotFoundError, match=r"a-2.wav: not found \(named in transcription\)"):
        prepare_librivox(tmp_path / "out", data_dir=tmp_path, cards=False)
    (folder / "transcription").write_text("<s> One, two! </s> (a-1)\n")
    rows = _rows(prepare_librivox(tmp_path / "out", data_dir=tmp_path, cards=False)["test"])
    assert rows == [{"id": "a-1", "audio_filepath": str(folder / "a-1.wav"), "duration": 0.1,
                     "text": "one two", "speaker": "a", "engine": "human"}]


def test_add_arguments_gives_prepare_librivox_keywords():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    options = vars(parser.parse_args([]))
    assert options == {"data_dir": DATA_DIR, "cards": True}
    assert set(options) <= set(inspect.signature(prepare_librivox).parameters)
    assert vars(parser.parse_args(["--data-dir", "/x", "--no-cards"])) == {"data_dir": "/x", "cards": False}


@pytest.fixture(scope="module")
def pocketsphinx_test(prepared):
    if importlib.util.find_spec("pocketsphinx") is None:
        pytest.skip("pocketsphinx is not installed")
    from asr.data import read_manifest
    from asr.pocketsphinx_baseline import decode_manifest

    entries = read_manifest(prepared[1]["test"])
    return entries, decode_manifest(prepared[1]["test"])


@needs_data
@needs_pocketsphinx
def test_pocketsphinx_recognises_the_librivox_reading(pocketsphinx_test):
    entries, hyps = pocketsphinx_test
    assert list(hyps) == [e["id"] for e in entries]
    report = score({e["id"]: e["text"] for e in entries}, hyps, normalize)
    assert 0.1 < report.wer < 0.4  # PocketSphinx's own test expects about 28%
    assert report.cer < 0.3
    text = " ".join(hyps.values())
    assert "leisure to consider how much there might be" in text and "rather selfish" in text


@needs_data
@needs_pocketsphinx
def test_pocketsphinx_reads_other_rates_and_skips_bad_audio(pocketsphinx_test, tmp_path, caplog):
    from asr.audio import load_audio
    from asr.pocketsphinx_baseline import decode_manifest

    entries, hyps = pocketsphinx_test
    entry = next(e for e in entries if e["id"].endswith("0930"))  # "he might even have been made ..."
    ogg = tmp_path / "clip.ogg"  # as the UQM clips: 11,025 Hz Ogg Vorbis
    soundfile.write(ogg, load_audio(entry["audio_filepath"], 11025).numpy(), 11025, format="OGG")
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    manifest = [{**entry, "id": "ogg", "audio_filepath": str(ogg)},
                {**entry, "id": "bad", "audio_filepath": str(tmp_path / "bad.wav")}]
    with caplog.at_level(logging.WARNING):
        out = decode_manifest(manifest)
    assert list(out) == ["ogg"] and "he might even have been made" in out["ogg"]
    assert "skipping bad:" in caplog.text and "bad.wav: cannot read audio" in caplog.text


@needs_data
def test_asr_prepare_librivox_and_light_import(tmp_path, capsys):
    assert cli.main(["prepare", "librivox", "--out", str(tmp_path), "--no-cards"]) == 0
    assert capsys.readouterr().out == f"test: {tmp_path / 'test.jsonl'}\n"
    assert len(_rows(tmp_path / "test.jsonl")) == 5
    code = "import sys, asr.corpora.librivox; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout == "False\n"  # asr.corpora stays light
