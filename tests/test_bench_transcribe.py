"""scripts/bench_transcribe.py: its recordings, word pairing by time and alignment, and one run of
every system on a tiny model."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_transcribe.py"
RATE = 16000


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_transcribe", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_recording_holds_each_utterance_at_its_offset_between_quiet_pauses(tmp_path):
    bench = _bench_module()
    utts = [bench.Utterance(f"u{i}", "", f"text {i}") for i in range(3)]
    waves = {u.id: np.full(int(RATE * (0.2 + 0.1 * i)), 1000 * (i + 1), np.int16) for i, u in enumerate(utts)}
    for u in utts:
        u.seconds = len(waves[u.id]) / RATE
    rec = bench.write_recording(tmp_path / "r.wav", utts, waves, np.random.default_rng(0), min_seconds=5.0)
    samples, rate = soundfile.read(rec.path, dtype="int16")
    assert rate == RATE and len(samples) / RATE == pytest.approx(rec.seconds) and rec.seconds >= 5.0
    assert [p.key for p in rec.parts[:4]] == ["u0", "u1", "u2", "u0~r1"]
    assert rec.text.startswith("text 0 text 1 text 2 text 0")
    end = 0
    for part in rec.parts:
        start = round(part.offset * RATE)
        assert np.array_equal(samples[start:start + len(waves[part.utt.id])], waves[part.utt.id])
        assert 0.5 <= (start - end) / RATE <= 1.5 and np.abs(samples[end:start]).max() < 30
        end = start + len(waves[part.utt.id])
    assert 0.5 <= (len(samples) - end) / RATE <= 1.5


def test_long_files_are_consecutive_groups_of_about_the_length_asked():
    bench = _bench_module()
    utts = [bench.Utterance(f"u{i}", "", "", seconds=1.0) for i in range(10)]  # 20 s with pauses
    groups = bench.split_evenly(utts, minutes=5 / 60)
    assert len(groups) == 4 and [u for g in groups for u in g] == utts
    assert all(2 <= len(g) <= 3 for g in groups)
    assert bench.split_evenly(utts, minutes=10) == [utts]


def test_words_go_to_the_utterance_around_them_and_correct_words_pair_up():
    bench = _bench_module()
    a, b = bench.Utterance("a", "", "", seconds=1.0), bench.Utterance("b", "", "", seconds=1.0)
    parts = [bench.Part("a", a, 0.5), bench.Part("b", b, 2.5)]  # the pause's middle: 2.0 s
    words = [["x", 0.6, 0.9], ["y", 1.7, 2.2], ["z", 1.9, 2.3], ["w", 2.6, 3.0]]
    assert bench.words_by_utterance(words, parts) == {
        "a": [["x", pytest.approx(0.1), pytest.approx(0.4)], ["y", pytest.approx(1.2), pytest.approx(1.7)]],
        "b": [["z", pytest.approx(-0.6), pytest.approx(-0.2)], ["w", pytest.approx(0.1), pytest.approx(0.5)]]}
    refs = {"a": [["x", 0.10], ["y", 0.50]], "b": [["v", 0.0], ["w", 0.3]]}
    hyps = {"a": [["q", 0.0, 0.1], ["x", 0.15, 0.3], ["y", 0.45, 0.6]],
            "b": [["u", 0.0, 0.2], ["w", 0.2, 0.4]]}
    assert bench.start_errors_ms(refs, hyps) == pytest.approx([50, 50, 100])  # q inserted, v -> u
    assert bench.error_stats(np.array([])) == {"median": None, "p90": None, "words": 0}


def test_every_system_runs_and_reports_sane_numbers(spoken_model):
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--model", str(spoken_model["model"]),
         "--manifest", str(spoken_model["manifest"]), "--limit", "4", "--long-minutes", "0.1",
         "--hour-minutes", "0.3", "--threads", "2"],
        capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    systems = ["fp32", "int8", "onnx", *(["cuda"] if torch.cuda.is_available() else []), "pocketsphinx"]
    expected = [(s, kind) for s in systems for kind in ("utterances", "long files")]
    assert [(r["system"], r["input"]) for r in summary["rows"]] == expected
    rows = {(r["system"], r["input"]): r for r in summary["rows"]}
    for row in summary["rows"]:
        assert set(row) == {"system", "device", "input", "rtfx", "rtfx_with_load", "peak_rss_mb", "wer"}
        assert row["device"] == ("cuda" if row["system"] == "cuda" else "cpu")
        assert 0 < row["rtfx_with_load"] <= row["rtfx"] and row["peak_rss_mb"] > 50 and row["wer"] >= 0
    assert rows["fp32", "utterances"]["wer"] < 0.2  # the model knows these sentences (alone)
    for kind in ("utterances", "long files"):
        assert abs(rows["fp32", kind]["wer"] - rows["int8", kind]["wer"]) <= 0.1
        assert abs(rows["fp32", kind]["wer"] - rows["onnx", kind]["wer"]) <= 0.1
    assert summary["threads"] == 2 and summary["utterances"] == 4 and summary["long_files"] >= 2
    audio = summary["audio_seconds"]
    assert audio["long files"] > audio["utterances"] > 0 and audio["hour"] >= 18

    hour = summary["hour"]
    assert hour["utterances"] > 4 and hour["rtfx"] > 0 and hour["peak_rss_mb"] > 50
    assert 0 <= hour["wer_one_by_one"] < 0.5 and hour["wer"] >= 0
    assert hour["difference_points"] == pytest.approx(100 * (hour["wer"] - hour["wer_one_by_one"]), abs=1e-3)
    for kind in ("utterances", "long files"):
        stats = summary["word_start_error_ms"][kind]
        assert stats["words"] > 0 and 0 <= stats["median"] <= stats["p90"]

    table = [line for line in lines if line.startswith("| ") and "---" not in line]
    assert len(table) == 1 + len(expected)  # the header, then one line per row
