"""Transcription with a model that knows ten sentences: results in whisper's shape, long audio
stitched without loss in bounded memory, word times, and batch runs that resume."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from asr.checkpoint import load_model
from asr.cli import main
from asr.decode import greedy_decode
from asr.score import score
from asr.segment import EnergyVAD, SegmentOptions, plan_segments, read_segments, speech_frames
from asr.text import CharTokenizer, normalize
from asr.transcription import Recognizer, transcribe, word_timings

RATE = 16000


@pytest.fixture(scope="module")
def recognizer(spoken_model):
    model, tokenizer = load_model(spoken_model["model"])
    return Recognizer(model, tokenizer, greedy_decode)


def _read(path) -> np.ndarray:
    return soundfile.read(path, dtype="float32")[0]


def _recording(rows, pause: float = 0.8, seed: int = 0) -> tuple[np.ndarray, list[float]]:
    """The utterances of `rows` one after another with `pause` seconds of quiet noise between
    them; returns the samples and each utterance's start in seconds. Utterances start on the
    model's frame grid (this tiny model heard each sentence at one frame phase only)."""
    rng = np.random.default_rng(seed)
    parts, starts, at = [], [], 0
    for row in rows:
        gap = int(pause * RATE)
        gap = (3e-4 * rng.standard_normal(gap + -(at + gap) % 640)).astype(np.float32)  # -70 dBFS
        starts.append((at + len(gap)) / RATE)
        wave = _read(row["audio_filepath"])
        parts += [gap, wave]
        at += len(gap) + len(wave)
    return np.concatenate(parts), starts


def test_word_timings_come_from_the_forced_alignment():
    tokenizer = CharTokenizer()
    tokens = tokenizer.encode("hi yo")
    log_probs = torch.full((12, len(tokenizer)), -20.0)  # (T, V)
    h, i, space, y, o = tokens
    for frame, token in enumerate([0, h, i, 0, space, y, y, o, 0, 0, 0, 0]):
        log_probs[frame, token] = 0.0
    words = word_timings(log_probs, tokens, tokenizer, frame_seconds=0.03, offset=1.0)
    assert [w["word"] for w in words] == ["hi", "yo"]
    assert (words[0]["start"], words[0]["end"]) == (1.03, 1.09)
    assert (words[1]["start"], words[1]["end"]) == (1.15, 1.24)  # frames 5-7
    assert all(w["probability"] == 1.0 for w in words)


def test_result_has_whispers_shape_and_the_words(recognizer, spoken_model):
    row = spoken_model["rows"][0]
    result = transcribe(recognizer, row["audio_filepath"])
    assert set(result) == {"text", "segments", "language", "duration", "unrecognized"}
    assert result["duration"] == pytest.approx(row["duration"], abs=1e-3)
    assert score({"u": row["text"]}, {"u": result["text"]}, normalize).cer < 0.1
    [segment] = result["segments"]
    words = segment["words"]
    assert " ".join(w["word"] for w in words) == segment["text"] == result["text"]
    assert all(0 <= w["start"] < w["end"] <= result["duration"] for w in words)
    assert all(a["end"] <= b["start"] for a, b in zip(words, words[1:]))
    assert all(0 < w["probability"] <= 1 for w in words)


def test_beam_search_words_get_times_from_the_same_alignment(recognizer, spoken_model):
    from asr.decode import build_decoder

    beam = Recognizer(recognizer.model, recognizer.tokenizer,
                      build_decoder("beam", recognizer.tokenizer, beam_size=4))
    row = spoken_model["rows"][1]
    greedy, searched = (transcribe(r, row["audio_filepath"]) for r in (recognizer, beam))
    assert searched["text"] == greedy["text"]  # a confident model: the same words
    for a, b in zip(greedy["segments"][0]["words"], searched["segments"][0]["words"], strict=True):
        assert a == b


def test_a_file_too_short_for_one_output_frame_is_an_empty_transcript(recognizer, tmp_path):
    for n in (1, 100):
        path = tmp_path / f"short{n}.wav"
        soundfile.write(path, np.full(n, 0.5, np.float32), RATE)
        result = transcribe(recognizer, str(path))
        assert result["text"] == "" and result["segments"] == []


def test_long_audio_is_cut_at_pauses_and_stitched_without_loss(recognizer, spoken_model):
    """Each utterance becomes a segment; batched together, each reads as it does decoded alone,
    its times shifted by its offset, and close to the utterance decoded from its own file (this
    tiny model heard each sentence with one margin only, so not equal)."""
    rows = spoken_model["rows"]
    wave, starts = _recording(rows, pause=1.5)
    stitched = transcribe(recognizer, wave, max_segment_seconds=8.0)
    assert len(stitched["segments"]) == len(rows)
    speech, levels, _ = speech_frames(wave, EnergyVAD(), RATE)
    planned = plan_segments(speech, levels, SegmentOptions(max_seconds=8.0), stride=2)
    for segment, piece in zip(stitched["segments"], read_segments(wave, planned, RATE), strict=True):
        assert transcribe(recognizer, piece)["text"] == segment["text"]
    alone = [transcribe(recognizer, row["audio_filepath"]) for row in rows]
    joined = " ".join(r["text"] for r in alone)
    assert score({"a": joined}, {"a": stitched["text"]}, normalize).wer < 0.1
    shifts = [segment["words"][0]["start"] - (start + result["segments"][0]["words"][0]["start"])
              for result, segment, start in zip(alone, stitched["segments"], starts, strict=True)]
    assert np.median(np.abs(shifts)) <= 0.03


def test_speech_that_gives_no_words_is_listed(spoken_model):
    """A model that hears only blanks (its blank output biased up) yields no words: each speech
    region must then appear in "unrecognized", where it is in the recording."""
    model, tokenizer = load_model(spoken_model["model"])
    with torch.no_grad():
        model.output.bias[0] += 100.0
    deaf = Recognizer(model, tokenizer, greedy_decode)
    speech = _read(spoken_model["rows"][0]["audio_filepath"])
    silence = np.zeros(2 * RATE, np.float32)
    recording = np.concatenate([silence, speech, silence, speech, silence])
    result = transcribe(deaf, recording, max_segment_seconds=3)
    assert result["text"] == "" and result["segments"] == []
    starts = [2.0, 4.0 + len(speech) / RATE]
    assert len(result["unrecognized"]) == 2
    for region, start in zip(result["unrecognized"], starts):
        assert start - 0.3 <= region["start"] <= start + 0.3
        assert region["end"] - region["start"] >= 0.8 * len(speech) / RATE


def _tree(tmp_path: Path, rows) -> Path:
    """A folder of audio with a subfolder, a broken file, a 1-sample file and a non-audio file."""
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    for i, row in enumerate(rows[:4]):
        shutil.copy(row["audio_filepath"], folder / ("sub" if i % 2 else "") / f"{row['id']}.wav")
    soundfile.write(folder / "tiny.wav", np.full(1, 0.5, np.float32), RATE)
    (folder / "broken.flac").write_bytes(b"not audio")
    (folder / "notes.txt").write_text("not an input")
    return folder


def _ledger(out: Path) -> dict[str, dict]:
    return {row["id"]: row for row in map(json.loads, (out / "ledger.jsonl").read_text().splitlines())}


def test_a_folder_run_records_everything_and_resumes(spoken_model, tmp_path, capsys):
    folder, out = _tree(tmp_path, spoken_model["rows"]), tmp_path / "out"
    args = ["transcribe", "--model", str(spoken_model["model"]), str(folder), "-o", str(out)]
    assert main(args) == 1  # the broken file failed; the others are done
    ledger = _ledger(out)
    assert sorted(ledger) == sorted(["u00", "sub/u01", "u02", "sub/u03", "tiny", "broken"])
    assert ledger["broken"]["status"] == "failed"
    assert "broken.flac: cannot read audio" in ledger["broken"]["error"]
    assert ledger["tiny"]["status"] == "done" and ledger["tiny"]["text"] == ""
    for ext in ("txt", "json", "jsonl", "srt", "vtt", "tsv", "ctm"):
        assert (out / "sub" / f"u01.{ext}").is_file()
    assert (out / "sub/u01.txt").read_text().strip() == ledger["sub/u01"]["text"]
    assert "5 done, 1 failed, 0 skipped" in capsys.readouterr().err  # the 1-sample file is done
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.srt")}

    assert main(args) == 1  # the failed file is retried (and fails again); the rest is skipped
    ledger = _ledger(out)
    assert {i for i, r in ledger.items() if r["status"] == "skipped"} == set(ledger) - {"broken"}
    assert stamps == {p: p.stat().st_mtime_ns for p in out.rglob("*.srt")}
    assert "0 done, 1 failed, 5 skipped" in capsys.readouterr().err

    (folder / "broken.flac").unlink()
    assert main([*args, "--overwrite", "--format", "srt,txt"]) == 0
    assert all(p.stat().st_mtime_ns != stamp for p, stamp in stamps.items())
    assert all(r["status"] == "done" for r in _ledger(out).values() if r["id"] != "broken")


def test_manifests_and_list_files_are_inputs(spoken_model, tmp_path, capsys):
    rows = spoken_model["rows"][:3]
    (tmp_path / "list.txt").write_text(f"first {rows[0]['audio_filepath']}\n{rows[1]['audio_filepath']}\n")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"id": "third", "audio_filepath": rows[2]["audio_filepath"]}) + "\n")
    assert main(["transcribe", "--model", str(spoken_model["model"]), str(tmp_path / "list.txt"),
                 str(manifest), "--format", "json"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(p["id"] for p in printed) == sorted(["first", rows[1]["id"], "third"])
    manifest.write_text(json.dumps({"id": "../escape", "audio_filepath": rows[2]["audio_filepath"]}) + "\n")
    model = str(spoken_model["model"])
    assert main(["transcribe", "--model", model, str(manifest), "-o", str(tmp_path)]) == 2
    assert "would put outputs outside --output-dir" in capsys.readouterr().err


def test_torchrun_shares_the_files_and_merges_one_ledger(spoken_model, tmp_path):
    folder = _tree(tmp_path, spoken_model["rows"])
    (folder / "broken.flac").unlink()
    command = ["transcribe", "--model", str(spoken_model["model"]), str(folder), "--device", "cpu"]
    assert main([*command, "-o", str(tmp_path / "one")]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", "29533", "-m", "asr.cli", *command, "-o", str(tmp_path / "two")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    one, two = _ledger(tmp_path / "one"), _ledger(tmp_path / "two")
    assert one == two
    assert not list((tmp_path / "two").glob(".ledger.rank*"))
    for path in (tmp_path / "one").rglob("*.*"):
        if path.name != "ledger.jsonl":
            assert path.read_bytes() == (tmp_path / "two" / path.relative_to(tmp_path / "one")).read_bytes()


# VmHWM is this process's own peak; ru_maxrss would carry the parent's over fork and exec
PEAK_RSS = """import re, sys
from asr.cli import main
code = main(sys.argv[1:])
print(int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) // 1024)  # MiB
sys.exit(code)
"""


def test_an_hour_of_audio_is_transcribed_in_bounded_memory(spoken_model, tmp_path):
    minute, _ = _recording(spoken_model["rows"], pause=1.2)  # about a minute
    one, hour = tmp_path / "minute.wav", tmp_path / "hour.wav"
    soundfile.write(one, minute, RATE)
    repeats = int(np.ceil(3600 / (len(minute) / RATE)))
    with soundfile.SoundFile(hour, "w", RATE, 1, "PCM_16") as f:
        for _ in range(repeats):
            f.write(minute)
    peaks, texts = {}, {}
    for path in (one, hour):
        proc = subprocess.run([sys.executable, "-c", PEAK_RSS, "transcribe", "--model",
                               str(spoken_model["model"]), str(path), "-o", str(tmp_path / path.stem),
                               "--format", "txt", "--device", "cpu"],
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-2000:]
        peaks[path.stem] = int(proc.stdout.split()[-1])
        texts[path.stem] = (tmp_path / path.stem / f"{path.stem}.txt").read_text().split()
    assert peaks["hour"] < 1024
    assert peaks["hour"] - peaks["minute"] < 200, peaks  # the hour's whole samples would be 220 MiB
    per_minute = len(texts["minute"])
    assert abs(len(texts["hour"]) - repeats * per_minute) <= 0.02 * repeats * per_minute
