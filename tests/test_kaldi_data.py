"""Kaldi data directories in (`asr prepare kaldi`) and out (`asr export-data kaldi`), on real files."""

import argparse
import logging
import shlex
import shutil

import numpy as np
import pytest
import soundfile

from asr import corpora
from asr.corpora.kaldi import prepare_kaldi
from asr.data import read_manifest
from asr.kaldi_data import add_parser, export_kaldi, run

RATE = 8000
FILES = ("wav.scp", "segments", "text", "utt2spk", "spk2utt")


def write_kaldi(folder, tables):
    """Write {file: {key: value}} as sorted Kaldi tables into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        (folder / name).write_text("".join(f"{k} {table[k]}\n" for k in sorted(table)))


@pytest.fixture
def source(tmp_path):
    """A Kaldi dir `train` with segments over a wav path, a `cat |` pipe and (with ffmpeg) an ffmpeg pipe."""
    rng = np.random.default_rng(0)
    audio = {rec: (rng.standard_normal(int(RATE * seconds)) * 3000).astype(np.int16)
             for rec, seconds in (("recA", 2.0), ("recB", 1.5), ("recC", 1.0))}
    files = tmp_path / "audio"
    files.mkdir()
    for rec, suffix in (("recA", "wav"), ("recB", "wav"), ("recC", "flac")):
        soundfile.write(files / f"{rec}.{suffix}", audio[rec], RATE, subtype="PCM_16")
    wav = {"recA": str(files / "recA.wav"), "recB": f"cat {shlex.quote(str(files / 'recB.wav'))} |"}
    segments = {"spk1-a1": "recA 0.00 0.75", "spk1-a2": "recA 0.80 1.95", "spk2-b1": "recB 0.10 1.40"}
    if shutil.which("ffmpeg"):
        wav["recC"] = f"ffmpeg -v error -i {shlex.quote(str(files / 'recC.flac'))} -f wav - |"
        segments["spk2-c1"] = "recC 0.25 -1"
    text = {utt: f"words of {utt}" for utt in segments}
    utt2spk = {utt: utt.split("-")[0] for utt in segments}
    spk2utt = {spk: " ".join(u for u in sorted(utt2spk) if utt2spk[u] == spk)
               for spk in set(utt2spk.values())}
    folder = tmp_path / "kaldi" / "train"
    write_kaldi(folder, {"wav.scp": wav, "segments": segments, "text": text, "utt2spk": utt2spk,
                         "spk2utt": spk2utt})
    return folder, audio


def slice_of(audio, rec, start, end):
    return audio[rec][round(float(start) * RATE):None if end == "-1" else round(float(end) * RATE)]


def test_round_trip_is_byte_identical_and_audio_is_the_source_slice(source, tmp_path):
    folder, audio = source
    options = vars(corpora.option_parser("kaldi").parse_args([str(folder), "--out", str(tmp_path / "out")]))
    manifest = corpora.prepare("kaldi", options.pop("out"), **options)["train"]
    assert manifest == tmp_path / "out" / "train.jsonl"
    rows = read_manifest(manifest)
    assert [r["id"] for r in rows] == [line.split()[0] for line in (folder / "text").read_text().splitlines()]
    for row in rows:
        samples, rate = soundfile.read(row["audio_filepath"], dtype="int16")
        k = row["kaldi"]
        assert rate == RATE and soundfile.info(row["audio_filepath"]).subtype == "PCM_16"
        np.testing.assert_array_equal(samples, slice_of(audio, k["recording"], k["start"], k["end"]))
        assert row["duration"] == len(samples) / RATE > 0
        assert row["speaker"] == row["id"].split("-")[0] and row["text"] == f"words of {row['id']}"

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    assert run(parser.parse_args(["export-data", "kaldi", str(manifest), str(tmp_path / "back")])) == 0
    for name in FILES:
        assert (tmp_path / "back" / name).read_bytes() == (folder / name).read_bytes(), name

    shutil.move(tmp_path / "out", tmp_path / "moved")  # relative audio paths travel with the folder
    for row in read_manifest(tmp_path / "moved" / "train.jsonl"):
        assert row["audio_filepath"].startswith(str(tmp_path / "moved"))
        assert soundfile.info(row["audio_filepath"]).frames == round(row["duration"] * RATE)


def test_without_segments_each_recording_is_an_utterance(tmp_path, noise_corpus):
    wav = tmp_path / "u1.wav"
    soundfile.write(wav, np.arange(800, dtype=np.int16), RATE, subtype="PCM_16")
    folder = tmp_path / "test"
    write_kaldi(folder, {"wav.scp": {"u1": str(wav)}, "text": {"u1": "hello there"}})
    (row,) = read_manifest(prepare_kaldi(tmp_path / "out", folder)["test"])
    assert row["speaker"] == "u1" and row["kaldi"] == {"recording": "u1", "wav": str(wav), "start": None,
                                                       "end": None}
    (tmp_path / "back").mkdir()
    (tmp_path / "back" / "segments").write_text("stale\n")
    export_kaldi(tmp_path / "out" / "test.jsonl", tmp_path / "back")
    assert not (tmp_path / "back" / "segments").exists()
    assert (tmp_path / "back" / "utt2spk").read_text() == "u1 u1\n"
    for name in ("wav.scp", "text"):
        assert (tmp_path / "back" / name).read_bytes() == (folder / name).read_bytes()

    plain = read_manifest(noise_corpus("plain", 3))  # rows without a "kaldi" entry: absolute paths
    export_kaldi(tmp_path / "plain.jsonl", tmp_path / "plain")
    assert (tmp_path / "plain" / "wav.scp").read_text() == "".join(
        f"{r['id']} {r['audio_filepath']}\n" for r in plain)
    assert (tmp_path / "plain" / "spk2utt").read_text() == "s plain-0 plain-1 plain-2\n"


def test_missing_program_is_a_one_line_error(source, tmp_path):
    folder, _ = source
    (folder / "wav.scp").write_text((folder / "wav.scp").read_text().replace("cat ", "no-such-sox-xyz "))
    with pytest.raises(FileNotFoundError, match=r"wav\.scp:2: .*`no-such-sox-xyz`.*install") as err:
        prepare_kaldi(tmp_path / "out", folder)
    assert "\n" not in str(err.value)


def test_failing_command_skips_only_its_utterances(source, tmp_path, caplog):
    folder, _ = source
    (folder / "wav.scp").write_text((folder / "wav.scp").read_text().replace("recB.wav", "gone.wav"))
    with caplog.at_level(logging.WARNING):
        manifest = prepare_kaldi(tmp_path / "out", folder)["train"]
    ids = [r["id"] for r in read_manifest(manifest)]
    assert "spk2-b1" not in ids and {"spk1-a1", "spk1-a2"} <= set(ids)
    assert "skipping spk2-b1 of recording recB" in caplog.text and "exit status 1" in caplog.text


def test_text_without_audio_is_a_one_line_error(source, tmp_path):
    folder, _ = source
    with (folder / "text").open("a") as f:
        f.write("spk3-x1 no audio here\n")
    with pytest.raises(ValueError, match=r"text:\d+: spk3-x1 has no audio \(no line in segments\)") as err:
        prepare_kaldi(tmp_path / "out", folder)
    assert "\n" not in str(err.value)


def test_rerun_is_a_no_op_and_a_changed_source_redoes(source, tmp_path):
    folder, _ = source
    manifest = prepare_kaldi(tmp_path / "out", folder)["train"]
    written = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*")}
    assert prepare_kaldi(tmp_path / "out", folder)["train"] == manifest
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*")} == written
    (folder / "text").write_text((folder / "text").read_text().replace("words of spk1-a1", "new words"))
    prepare_kaldi(tmp_path / "out", folder)
    assert read_manifest(manifest)[0]["text"] == "new words"
