"""Synthetic corpora: manifests, audio, held-out speakers and text, idempotence."""

import json
import time
from pathlib import Path

import pytest
import soundfile

from asr import corpora, tts
from asr.corpora import synth as synth_corpus
from asr.corpora.common import SAMPLE_RATE, Utterance, synthesize_splits
from asr.corpora.digits import MAX_DIGITS, VOCABULARY, prepare_digits
from asr.corpora.synth import prepare_synth
from asr.text import normalize
from asr.tts import Voice

DIGITS = dict(n_train=24, n_dev=6, n_test=6, n_train_voices=6, n_dev_voices=2,
              n_test_voices=2, seed=1, jobs=2)
SYNTH = dict(hours=0.01, n_dev=4, n_test=4, n_train_voices=3, n_dev_voices=2,
             n_test_voices=2, seed=1, jobs=2)


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _variant(speaker: str) -> str:
    return speaker.split("+")[1].rsplit("_r", 1)[0]


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits")
    return out, prepare_digits(out, **DIGITS)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    return out, prepare_synth(out, **SYNTH)


def _check_manifest(path: Path, size: int | None = None) -> list[dict]:
    rows = _rows(path)
    if size is not None:
        assert len(rows) == size
    assert len({r["id"] for r in rows}) == len(rows)
    for r in rows:
        assert set(r) == {"id", "audio_filepath", "duration", "text", "speaker", "engine"}
        audio = Path(r["audio_filepath"])
        assert not audio.is_absolute()  # relative to the manifest: a moved data/ still works
        info = soundfile.info(str(path.parent / audio))
        assert info.samplerate == SAMPLE_RATE and info.channels == 1
        assert info.subtype == "PCM_16"
        assert abs(info.frames / SAMPLE_RATE - r["duration"]) < 0.001
        assert r["text"] and normalize(r["text"]) == r["text"]
    return rows


def test_digits_manifests_hold_digit_strings(digits):
    out, manifests = digits
    assert manifests == {s: out / f"{s}.jsonl" for s in ("train", "dev", "test")}
    for split, size in (("train", 24), ("dev", 6), ("test", 6)):
        for row in _check_manifest(manifests[split], size):
            words = row["text"].split()
            assert 1 <= len(words) <= MAX_DIGITS and set(words) <= VOCABULARY
            assert 0.3 < row["duration"] < 0.6 + 0.7 * len(words)


def test_digits_dev_and_test_speakers_are_new_people(digits):
    _, manifests = digits
    speakers = {s: {r["speaker"] for r in _rows(p)} for s, p in manifests.items()}
    assert len(speakers["train"]) == 6 and len(speakers["dev"]) == 2
    variants = {s: {_variant(v) for v in spk} for s, spk in speakers.items()}
    for held_out in ("dev", "test"):
        assert not variants[held_out] & variants["train"]
    assert not variants["dev"] & variants["test"]


def test_prepare_again_is_a_no_op_and_new_parameters_redo(digits):
    out, manifests = digits
    before = {p: p.stat().st_mtime_ns for p in manifests.values()}
    start = time.perf_counter()
    assert prepare_digits(out, **DIGITS) == manifests
    assert time.perf_counter() - start < 1.0
    assert {p: p.stat().st_mtime_ns for p in manifests.values()} == before

    bigger = prepare_digits(out, **{**DIGITS, "n_train": 30})
    assert len(_rows(bigger["train"])) == 30
    assert prepare_digits(out, **DIGITS) == manifests  # and back: rebuilt, not skipped
    assert len(_rows(manifests["train"])) == 24
    assert len(list((out / "wav" / "train").iterdir())) == 24  # no leftovers


def test_synth_holds_out_books_and_voices(synth):
    out, manifests = synth
    rows = {s: _check_manifest(p) for s, p in manifests.items()}
    assert len(rows["dev"]) == 4 and len(rows["test"]) == 4
    hours = sum(r["duration"] for r in rows["train"]) / 3600
    assert 0.005 < hours < 0.02  # 0.01 h asked; a few utterances, so a loose check

    lm_lines = (out / synth_corpus.LM_TEXT).read_text().splitlines()
    assert len(lm_lines) > 40000
    lm = set(lm_lines)
    assert all(r["text"] in lm for r in rows["train"])
    assert not any(r["text"] in lm for r in rows["dev"] + rows["test"])
    for book in synth_corpus.DEV_BOOKS + synth_corpus.TEST_BOOKS:
        own = {normalize(s) for s in synth_corpus.book_segments(book)}
        assert len(own - lm) > 0.9 * len(own), book  # only stock phrases are shared

    variants = {s: {_variant(r["speaker"]) for r in rs} for s, rs in rows.items()}
    assert not (variants["dev"] | variants["test"]) & variants["train"]


def test_segments_are_clean_sentences_of_4_to_25_words():
    text = synth_corpus.clean(
        'Now the earth was formless and empty. Darkness was on the surface of the deep. '
        'He said, "Take the [first -fruits] of 12 sheep, the oil, the flour, the wine, the '
        'salt, the incense, the wood, the fire, and the knife, and go to the mountain '
        'which I will show you, and offer them there." Amen.'
    )
    assert "[" not in text and '"' not in text and "first fruits" in text
    segments = synth_corpus.split_segments(text)
    assert segments[0] == "Now the earth was formless and empty."
    assert not any(s.startswith("Amen") for s in segments)  # too short: dropped
    for s in segments:
        assert 4 <= len(normalize(s).split()) <= 25
        spoken = synth_corpus.speakable(s)
        assert normalize(spoken) == normalize(s)  # what is said is what is written
        assert spoken == spoken.lower() and not any(c.isdigit() for c in spoken)
    assert "twelve sheep" in " ".join(normalize(s) for s in segments)
    assert any(s.endswith(",") for s in map(synth_corpus.speakable, segments[1:]))


def test_a_failed_utterance_is_logged_and_left_out(tmp_path, caplog):
    good = Voice("en-us", "m3", 160, 50)
    plan = {"train": [Utterance("good", "one two", "one two", good),
                      Utterance("bad", "three", "three", Voice("en-us", "nonesuch", 160, 50))]}
    manifests = synthesize_splits(plan, tmp_path, jobs=1)
    assert [r["id"] for r in _rows(manifests["train"])] == ["good"]
    assert "1 of 2 utterances failed" in caplog.text and "nonesuch" in caplog.text
    with pytest.raises(RuntimeError, match="no utterance"):
        synthesize_splits({"dev": plan["train"][1:]}, tmp_path, jobs=1)


def test_the_registry_finds_corpora_by_file_name():
    assert {"digits", "synth", "uqm"} <= set(corpora.names())
    assert "common" not in corpora.names()
    options = corpora.option_parser("synth").parse_args(
        ["--out", "d", "--hours", "2", "--engine-hours", "mbrola=1,piper=0.5"])
    assert options.engine_hours == {"mbrola": 1.0, "piper": 0.5} and options.hours == 2.0
    with pytest.raises(ValueError, match="unknown corpus 'timit'; choose one of"):
        corpora.prepare("timit", "d")


def test_other_engines_say_other_training_text(tmp_path, monkeypatch, caplog):
    engines = {e: 0.004 for e in ("mbrola", "rhvoice", "piper") if tts.get_engine(e).available()}
    if not engines:
        pytest.skip("no optional TTS engine is installed")
    manifests = prepare_synth(tmp_path, **{**SYNTH, "engine_hours": engines})
    rows = _check_manifest(manifests["train"])
    by_engine = {e: [r for r in rows if r["engine"] == e] for e in ["espeak", *engines]}
    assert all(by_engine.values()), {e: len(r) for e, r in by_engine.items()}
    for engine in engines:
        assert all(r["speaker"].startswith(f"{engine}-") for r in by_engine[engine])
    assert len({r["text"] for r in rows}) == len(rows)  # no text said twice
    assert {r["engine"] for r in _rows(manifests["test"])} == {"espeak"}

    monkeypatch.setenv("PATH", "/nonexistent")  # the command-line engines go missing
    prepare_synth(tmp_path, **{**SYNTH, "engine_hours": {"mbrola": 0.004, "rhvoice": 0.004}})
    assert "mbrola is not installed" in caplog.text and "apt-get install" in caplog.text
    assert {r["engine"] for r in _rows(manifests["train"])} == {"espeak"}
