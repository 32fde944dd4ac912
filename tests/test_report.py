"""`asr prepare --report`: every kind of problem a manifest can hold is found and named."""

import json

import numpy as np
import pytest
import soundfile
import torch

from asr.cli import main
from asr.config import ModelConfig
from asr.model import CTCModel
from asr.report import checkpoint_megabytes, manifest_report, output_frames


def _manifest(tmp_path):
    rows = []
    for name, seconds, text in [("good", 1.0, "hello there"), ("short", 0.1, "a very long sentence indeed"),
                                ("oov", 1.0, "naïve жук"), ("wrong", 2.0, "hello")]:
        soundfile.write(tmp_path / f"{name}.wav", np.zeros(16000 if name == "wrong" else int(16000 * seconds),
                                                            np.float32), 16000)
        rows.append({"id": name, "audio_filepath": f"{name}.wav", "duration": seconds, "text": text,
                     "speaker": name[0]})
    (tmp_path / "broken.wav").write_bytes(b"junk")
    rows += [{"id": "gone", "audio_filepath": "gone.wav", "duration": 1.0, "text": "x"},
             {"id": "broken", "audio_filepath": "broken.wav", "duration": 1.0, "text": "x"}]
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_the_report_finds_each_problem(tmp_path):
    report = manifest_report(_manifest(tmp_path))
    assert report["utterances"] == 6 and report["speakers"] == 5
    assert [u["id"] for u in report["ctc_infeasible"]] == ["short"]
    assert "ж" in report["oov_characters"] and "e" not in report["oov_characters"]
    assert report["missing"] == ["gone"]
    assert [u["id"] for u in report["unreadable"]] == ["broken"]
    assert report["duration_mismatch"] == [{"id": "wrong", "manifest": 2.0, "file": 1.0}]
    assert sum(b["utterances"] for b in report["histogram"]) == 6


def test_output_frames_and_checkpoint_size_match_the_model(tmp_path):
    for subsampling, factor in [("stack", 2), ("stack", 3), ("conv", 4)]:
        config = ModelConfig.from_size("tiny", 29, subsampling=subsampling, subsampling_factor=factor)
        model = CTCModel(config)
        for seconds in (0.01, 0.5, 1.234, 7.0):
            expected = model.output_lengths(torch.tensor([round(seconds * 16000)])).item()
            assert output_frames(seconds, config) == expected
    torch.save(model.state_dict(), tmp_path / "m.pt")
    model_mb, checkpoint_mb = checkpoint_megabytes(config)
    assert abs(model_mb - (tmp_path / "m.pt").stat().st_size / 1e6) < 0.05 * model_mb
    assert checkpoint_mb == pytest.approx(3 * model_mb)


def test_cli_prints_the_report_and_writes_the_histogram(tmp_path, capsys):
    manifest = _manifest(tmp_path)
    assert main(["prepare", "--report", str(manifest), "--subsampling-factor", "4"]) == 0
    out = capsys.readouterr().out
    assert "6 utterances" in out and "missing audio files: 1: gone" in out
    assert (tmp_path / "m.durations.png").read_bytes()[:4] == b"\x89PNG"
