"""Synthesise a few utterances, train a tiny model on them, transcribe with the CLI."""

import json
import subprocess
import sys

from asr.corpora.common import Utterance, synthesize_splits
from asr.score import score
from asr.text import normalize
from asr.train import TrainConfig, train
from asr.tts import english_voices

SENTENCES = [
    "the cat sat on the mat", "a dog ran to the park", "she reads a good book",
    "we eat bread and jam", "open the red door", "my fish can swim",
    "the sun is hot today", "he has a big hat", "put the cup down", "birds sing at dawn",
]


def test_train_then_transcribe(tmp_path):
    voices = english_voices(seed=1, n=3, rates=(160,), pitches=(50,))
    utts = [Utterance(f"u{i:02d}", text, text, voices[i % 3])
            for i, text in enumerate(SENTENCES * 3)]
    manifest = synthesize_splits({"train": utts}, tmp_path / "data", jobs=1)["train"]

    exp = tmp_path / "exp"
    cfg = TrainConfig(
        train_manifest=str(manifest), dev_manifest=str(manifest), exp_dir=str(exp),
        size="tiny", epochs=60, max_batch_seconds=12.0, lr=4e-3, warmup_steps=30, patience=60,
        num_workers=0, model_overrides={"dropout": 0.0, "n_time_masks": 0, "n_freq_masks": 0})
    result = train(cfg)
    assert result["best_wer"] < 0.5

    # the CLI transcribes one training file and a broken one; the broken one fails alone
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio")
    proc = subprocess.run(
        [sys.executable, "-m", "asr.cli", "transcribe", "--model", str(exp / "best.pt"),
         "--format", "jsonl", rows[0]["audio_filepath"], str(broken)],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "broken.wav: cannot read audio" in proc.stderr
    [line] = proc.stdout.splitlines()
    out = json.loads(line)
    assert out["path"] == rows[0]["audio_filepath"]
    report = score({"u": rows[0]["text"]}, {"u": out["text"]}, normalize)
    assert report.cer < 0.1

    # and the whole training set is transcribed at CER < 10%
    proc = subprocess.run(
        [sys.executable, "-m", "asr.cli", "decode", "--model", str(exp / "best.pt"),
         "--manifest", str(manifest), "--out", str(tmp_path / "hyp.jsonl")],
        capture_output=True, text=True, timeout=120, check=True)
    from asr.score import read_transcripts
    report = score(read_transcripts(manifest), read_transcripts(tmp_path / "hyp.jsonl"), normalize)
    assert report.cer < 0.1, report.cer
