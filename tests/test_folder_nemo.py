"""Real corpora in: `asr prepare folder` and `asr prepare nemo`, NeMo manifests as scoring
references, and scoring's normalisation default (none for trn/Kaldi files, as sclite)."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile

from asr import cli
from asr.corpora.folder import prepare_folder
from asr.corpora.nemo import prepare_nemo
from asr.data import read_manifest
from asr.transcripts import read_speakers, read_transcripts


def _wav(path: Path, seconds: float, rate: int = 16000, fmt: str | None = None) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    wave = (np.arange(int(seconds * rate)) % 1000 - 500).astype(np.int16)  # every sample tells its place
    soundfile.write(path, wave, rate, format=fmt)
    return wave


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def recordings(tmp_path):
    src = tmp_path / "recordings"
    _wav(src / "ann" / "a.wav", 0.5)
    (src / "ann" / "a.txt").write_text("  Hello,   World\n w12 \n")
    _wav(src / "ann" / "b.flac", 0.25, 8000, "FLAC")
    (src / "ann" / "b.txt").write_text("second one")
    _wav(src / "bob" / "day2" / "c.wav", 1.0)
    (src / "bob" / "day2" / "c.txt").write_text("third")
    _wav(src / "bob" / "orphan.wav", 0.1)  # no transcript
    (src / "bob" / "lonely.txt").write_text("no audio")  # no audio
    (src / "bob" / "broken.wav").write_bytes(b"RIFF not really a wav file")
    (src / "bob" / "broken.txt").write_text("unreadable")
    return src


def test_folder_pairs_audio_with_transcripts_and_lists_the_rest(recordings, tmp_path, caplog, capsys):
    out = tmp_path / "data"
    with caplog.at_level(logging.WARNING):
        assert cli.main(["prepare", "folder", str(recordings), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"all: {out / 'all.jsonl'}"
    rows = _rows(out / "all.jsonl")
    assert [r["id"] for r in rows] == ["ann/a", "ann/b", "bob/day2/c"]
    assert [r["speaker"] for r in rows] == ["ann", "ann", "day2"]
    assert [r["duration"] for r in rows] == [0.5, 0.25, 1.0]
    assert rows[0]["text"] == "Hello, World w12"  # as written, on one line: training normalises
    assert rows[0]["audio_filepath"] == str(recordings.resolve() / "ann" / "a.wav")  # not copied
    assert [Path(e["audio_filepath"]).resolve() for e in read_manifest(out / "all.jsonl")] == \
        [recordings / "ann" / "a.wav", recordings / "ann" / "b.flac", recordings / "bob" / "day2" / "c.wav"]
    log = caplog.text
    assert "1 audio files without a .txt transcript, left out: bob/orphan.wav" in log
    assert "1 transcripts without an audio file, left out: bob/lonely.txt" in log
    assert "1 unreadable files, left out:" in log and "broken.wav: cannot read audio" in log


def test_folder_is_idempotent_and_redoes_on_changes(recordings, tmp_path, monkeypatch):
    out = tmp_path / "data"
    manifest = prepare_folder(out, recordings)["all"]
    monkeypatch.setattr("asr.corpora.folder.audio_duration", lambda path: pytest.fail("redone"))
    assert prepare_folder(out, recordings) == {"all": manifest}  # same inputs: at once
    monkeypatch.undo()
    prepare_folder(out, recordings, speaker_from="none")  # other options: redone
    assert {r["speaker"] for r in _rows(manifest)} == {"unknown"}
    (recordings / "bob" / "orphan.txt").write_text("found")  # other files: redone
    prepare_folder(out, recordings, speaker_from="none")
    assert "bob/orphan" in [r["id"] for r in _rows(manifest)]
    test = prepare_folder(out, recordings / "bob", split="test")["test"]  # another name, another manifest
    assert [r["id"] for r in _rows(test)] == ["day2/c", "orphan"] and len(_rows(manifest)) == 4


def test_folder_without_pairs_is_a_one_line_error(tmp_path):
    _wav(tmp_path / "in" / "a.wav", 0.1)
    with pytest.raises(ValueError, match=r"in: no audio file with a same-named \.txt transcript"):
        prepare_folder(tmp_path / "out", tmp_path / "in")
    with pytest.raises(FileNotFoundError, match="nowhere: no such folder"):
        prepare_folder(tmp_path / "out", tmp_path / "nowhere")


@pytest.fixture
def nemo(tmp_path):
    """A NeMo manifest with relative paths, two files of one name and two segments of one file."""
    src = tmp_path / "nemo"
    _wav(src / "x" / "a.wav", 0.5)
    _wav(src / "y" / "a.wav", 0.25)
    long = _wav(src / "long.wav", 3.0, 8000)
    lines = [{"audio_filepath": "x/a.wav", "duration": 0.5, "text": "W12  first"},
             {"audio_filepath": "y/a.wav", "duration": 0.25, "text": "second", "speaker": "bob"},
             {"audio_filepath": str(src / "long.wav"), "offset": 0.5, "duration": 1.0, "text": "cut one"},
             {"audio_filepath": "long.wav", "offset": 2.0, "duration": 1.0, "text": "cut two",
              "utt_id": "s2"}]
    path = src / "train_manifest.json"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path, long


def test_nemo_manifest_gets_ids_relative_paths_and_cut_segments(nemo, tmp_path):
    path, long = nemo
    out = tmp_path / "data"
    assert cli.main(["prepare", "nemo", str(path), "--out", str(out)]) == 0
    manifest = out / "train_manifest.jsonl"
    rows = _rows(manifest)
    assert [r["id"] for r in rows] == ["a", "a-2", "long-500", "s2"]
    assert [r["text"] for r in rows] == ["W12 first", "second", "cut one", "cut two"]
    assert [r["speaker"] for r in rows] == ["unknown", "bob", "unknown", "unknown"]
    # cut segments live in out/ (relative); the source's own files stay where they are (absolute)
    assert [Path(r["audio_filepath"]).is_absolute() for r in rows] == [True, True, False, False]
    entries = read_manifest(manifest)
    assert Path(entries[1]["audio_filepath"]).resolve() == path.parent / "y" / "a.wav"
    assert Path(entries[2]["audio_filepath"]).resolve() == out / "wav" / "long-500.wav"
    info = soundfile.info(entries[3]["audio_filepath"])
    assert (info.samplerate, info.subtype, info.frames) == (8000, "PCM_16", 8000)
    cut, _ = soundfile.read(entries[2]["audio_filepath"], dtype="int16")
    assert np.array_equal(cut, long[4000:12000])  # [0.5 s, 1.5 s) at 8 kHz
    assert rows[2]["duration"] == 1.0
    (out / "wav" / "s2.wav").unlink()
    prepare_nemo(out, path)  # same manifest: returns at once, the marker decides
    assert not (out / "wav" / "s2.wav").exists()
    path.write_text(path.read_text() + "\n")  # changed manifest: redone
    prepare_nemo(out, path)
    assert (out / "wav" / "s2.wav").exists()


@pytest.mark.parametrize("line, error", [
    ({"audio_filepath": "a.wav", "duration": 0, "text": "x"}, r"m\.json:2: duration 0 is not a positive"),
    ({"audio_filepath": "a.wav", "duration": 1.0}, r"m\.json:2: missing text"),
    ({"audio_filepath": "gone.wav", "duration": 1.0, "text": "x"}, r"m\.json:2: .*gone\.wav: no such audio"),
    ({"audio_filepath": "a.wav", "duration": 1.0, "offset": 0.5, "text": "x"},
     r"m\.json:2: offset 0\.5 \+ duration 1\.0 s runs past the end"),
    ({"id": "a", "audio_filepath": "a.wav", "duration": 0.1, "text": "x"}, r"m\.json:2: duplicate id 'a'"),
    ({"id": "../x", "audio_filepath": "a.wav", "duration": 0.1, "offset": 0, "text": "x"},
     r"m\.json:2: id '\.\./x' cannot name a file under"),
    ("not json", r"m\.json:2: not valid JSON"),
])
def test_nemo_lines_are_validated(tmp_path, line, error):
    _wav(tmp_path / "a.wav", 0.5)
    first = {"id": "a", "audio_filepath": "a.wav", "duration": 0.5, "text": "fine"}
    (tmp_path / "m.json").write_text(json.dumps(first) + "\n" + (line if isinstance(line, str) else
                                                                 json.dumps(line)) + "\n")
    with pytest.raises(ValueError, match=error):
        prepare_nemo(tmp_path / "out", tmp_path / "m.json")


def test_score_a_nemo_manifest_without_ids(tmp_path):
    ref = tmp_path / "nemo.jsonl"
    ref.write_text(json.dumps({"audio_filepath": "/data/spk1-u1.wav", "duration": 1.0, "text": "w12 cat"})
                   + "\n" + json.dumps({"audio_filepath": "u2.flac", "duration": 1.0, "text": "a dog",
                                        "speaker": "bob"}) + "\n")
    assert read_transcripts(ref) == {"spk1-u1": "w12 cat", "u2": "a dog"}
    assert read_speakers(ref) == {"spk1-u1": "spk1", "u2": "bob"}
    hyp = tmp_path / "hyps.jsonl"
    hyp.write_text('{"id": "spk1-u1", "text": "w twelve cat"}\n{"id": "u2", "text": "a log"}\n')
    assert cli.main(["score", str(ref), str(hyp), "--json-out", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["normalization"] == "english" and report["substitutions"] == 1  # JSONL: english
    assert report["missing"] == report["extra"] == []
    ref.write_text(ref.read_text() * 2)
    with pytest.raises(ValueError, match=r"nemo\.jsonl:3: duplicate id 'spk1-u1'.*comes from the audio file"):
        read_transcripts(ref)


def _score(tmp_path, *args) -> dict:
    assert cli.main([*args, "--json-out", str(tmp_path / "r.json")]) == 0
    return json.loads((tmp_path / "r.json").read_text())


def test_trn_and_kaldi_inputs_score_without_normalisation_by_default(tmp_path):
    (tmp_path / "ref.trn").write_text("w12 cat (u1)\n")
    (tmp_path / "hyp.trn").write_text("w twelve cat (u1)\n")
    (tmp_path / "ref.jsonl").write_text('{"id": "u1", "text": "w12 cat"}\n')
    (tmp_path / "hyp.jsonl").write_text('{"id": "u1", "text": "w twelve cat"}\n')
    (tmp_path / "ref_text").write_text("u1 w12 cat\n")
    ref, hyp = str(tmp_path / "ref.trn"), str(tmp_path / "hyp.trn")
    trn = _score(tmp_path, "score", ref, hyp)  # as sclite: w (I), w12 -> twelve (S)
    assert trn["normalization"] == "none" and (trn["substitutions"], trn["insertions"]) == (1, 1)
    assert [c["ref"] for c in trn["top_confusions"]] == ["w12"]  # the word w12 stays
    forced = _score(tmp_path, "score", ref, hyp, "--normalize", "english")  # an explicit choice wins
    assert forced["normalization"] == "english" and forced["wer"] == 0
    jsonl = _score(tmp_path, "score", str(tmp_path / "ref.jsonl"), str(tmp_path / "hyp.jsonl"))
    assert jsonl["normalization"] == "english" and jsonl["wer"] == 0
    kaldi = _score(tmp_path, "score", str(tmp_path / "ref_text"), str(tmp_path / "hyp.jsonl"))
    assert kaldi["normalization"] == "none" and kaldi["wer"] == 1.0  # Kaldi text (detected): none


def test_compare_scores_both_systems_alike(tmp_path, capsys):
    (tmp_path / "ref.jsonl").write_text('{"id": "u1", "text": "w12 cat"}\n')
    (tmp_path / "a.jsonl").write_text('{"id": "u1", "text": "w twelve cat"}\n')
    (tmp_path / "b.trn").write_text("w12 cat (u1)\n")
    files = [str(tmp_path / name) for name in ("ref.jsonl", "a.jsonl", "b.trn")]
    assert cli.main(["compare", "--ref", *files, "--json", "--draws", "10"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["normalization"] == "none"  # B is a trn file: neither side is normalised
    assert result["a"]["wer"] == 1.0 and result["b"]["wer"] == 0.0
