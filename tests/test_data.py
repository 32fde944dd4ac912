import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from asr.data import BucketBatchSampler, SpeechDataset, ctc_min_frames, read_manifest
from asr.text import CharTokenizer


def test_ctc_min_frames_counts_repeats():
    assert ctc_min_frames([1, 2, 3]) == 3
    assert ctc_min_frames([5, 5, 5]) == 5  # blank between each repeat
    assert ctc_min_frames([]) == 0


def test_read_manifest_resolves_paths_and_reports_bad_lines(tmp_path):
    good = {"audio_filepath": "wav/a.wav", "duration": 1.5, "text": "hi"}
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(good) + "\n\n")
    [entry] = read_manifest(path)
    assert entry["audio_filepath"] == str(tmp_path / "wav" / "a.wav")
    assert entry["id"] == "a" and entry["speaker"] == "unknown"

    path.write_text(json.dumps(good) + "\n" + '{"audio_filepath": "b.wav", "text": "x"}\n')
    with pytest.raises(ValueError, match=r"m\.jsonl:2: missing duration"):
        read_manifest(path)
    path.write_text("{not json\n")
    with pytest.raises(ValueError, match=r"m\.jsonl:1: not valid JSON"):
        read_manifest(path)


def test_infeasible_utterances_are_filtered(tmp_path, caplog):
    entries = [
        {"id": "ok", "audio_filepath": "a.wav", "duration": 1.0, "text": "abc"},
        {"id": "too_long", "audio_filepath": "b.wav", "duration": 0.05, "text": "abcdef"},
        {"id": "repeats", "audio_filepath": "c.wav", "duration": 0.05, "text": "aaa"},
        {"id": "empty", "audio_filepath": "d.wav", "duration": 1.0, "text": "?!"},
    ]
    ds = SpeechDataset(entries, CharTokenizer(), 16000)
    # 5 output frames per 800 samples (0.05 s): "abcdef" needs 6, "aaa" needs 5
    ds.filter_infeasible(lambda n: n // 160, "m.jsonl")
    assert [e["id"] for e in ds.entries] == ["ok", "repeats"]
    assert "dropped 2 of 4 utterances" in caplog.text


def test_bucket_sampler_budget_coverage_and_order():
    durations = [0.5 + (i * 37 % 100) / 10 for i in range(300)]
    sampler = BucketBatchSampler(durations, max_batch_seconds=30.0, seed=3)
    sampler.set_epoch(0)
    epoch0 = list(sampler)
    assert sorted(i for b in epoch0 for i in b) == list(range(300))  # each once
    assert all(len(b) * max(durations[i] for i in b) <= 30.0 for b in epoch0)
    assert len(sampler) == len(epoch0)
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert epoch1 != epoch0
    sampler.set_epoch(0)
    assert list(sampler) == epoch0  # reproducible per epoch


def test_bucket_sampler_rejects_utterance_over_budget():
    with pytest.raises(ValueError, match="longer than --max-batch-seconds"):
        BucketBatchSampler([1.0, 50.0], max_batch_seconds=20.0)


def test_manifests_store_relative_paths_and_survive_a_move(tmp_path):
    from asr.cli import main
    from asr.data import write_manifest

    for name in ("a", "b"):
        (tmp_path / "data" / name / "wav").mkdir(parents=True)
        wav = tmp_path / "data" / name / "wav" / f"{name}.wav"
        soundfile.write(wav, np.zeros(1600, np.float32), 16000)
        write_manifest(tmp_path / "data" / name / "m.jsonl",
                       [{"id": name, "audio_filepath": str(wav), "duration": 0.1, "text": name}])
    assert json.loads((tmp_path / "data/a/m.jsonl").read_text())["audio_filepath"] == "wav/a.wav"
    assert main(["combine", str(tmp_path / "data/all.jsonl"), str(tmp_path / "data/a/m.jsonl"),
                 str(tmp_path / "data/b/m.jsonl")]) == 0
    (tmp_path / "data").rename(tmp_path / "moved")
    rows = read_manifest(tmp_path / "moved" / "all.jsonl")
    assert [Path(r["audio_filepath"]).is_file() for r in rows] == [True, True]
    assert main(["combine", str(tmp_path / "x.jsonl"), str(tmp_path / "moved/all.jsonl"),
                 str(tmp_path / "moved/a/m.jsonl")]) == 2  # id "a" twice: a one-line error
