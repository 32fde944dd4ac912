"""Synthesise a few utterances, train a tiny model on them, transcribe with the CLI, then
build an LM, tune its weights and decode with it."""

import json
import subprocess
import sys

from asr.checkpoint import load_checkpoint
from asr.corpora.common import Utterance, synthesize_splits
from asr.data import read_manifest
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
    rows = read_manifest(manifest)  # audio paths resolved
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio")
    proc = subprocess.run(
        [sys.executable, "-m", "asr.cli", "transcribe", "--model", str(exp / "best.pt"),
         "--format", "json", rows[0]["audio_filepath"], str(broken)],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "broken.wav: cannot read audio" in proc.stderr
    [line] = proc.stdout.splitlines()
    out = json.loads(line)
    assert out["audio_filepath"] == rows[0]["audio_filepath"]
    report = score({"u": rows[0]["text"]}, {"u": out["text"]}, normalize)
    assert report.cer < 0.1
    words = [w for segment in out["segments"] for w in segment["words"]]
    assert " ".join(w["word"] for w in words) == out["text"]
    assert all(0 <= w["start"] < w["end"] <= rows[0]["duration"] + 0.05 for w in words)
    assert all(a["end"] <= b["start"] for a, b in zip(words, words[1:]))  # in order, no overlap

    # and the whole training set is transcribed at CER < 10%
    proc = subprocess.run(
        [sys.executable, "-m", "asr.cli", "decode", "--model", str(exp / "best.pt"),
         "--manifest", str(manifest), "--out", str(tmp_path / "hyp.jsonl")],
        capture_output=True, text=True, timeout=120, check=True)
    from asr.score import read_transcripts
    report = score(read_transcripts(manifest), read_transcripts(tmp_path / "hyp.jsonl"), normalize)
    assert report.cer < 0.1, report.cer

    # an LM from the training text; tune-lm saves its weights in the model, and `decode`
    # then uses the beam search with that LM by default
    (tmp_path / "lm.txt").write_text("\n".join(SENTENCES) + "\n")
    asr = [sys.executable, "-m", "asr.cli"]
    subprocess.run([*asr, "lm", "build", str(tmp_path / "lm.txt"), "--order", "2",
                    "--out", str(exp / "lm.arpa")], check=True, capture_output=True, timeout=120)
    tuned = subprocess.run([*asr, "tune-lm", "--model", str(exp / "best.pt"), "--manifest",
                            str(manifest), "--lm", str(exp / "lm.arpa"), "--alphas", "0", "0.5",
                            "--betas", "0", "1", "--oov-penalties", "-5", "-20"],
                           capture_output=True, text=True, timeout=300)
    assert tuned.returncode == 0, tuned.stderr
    assert tuned.stdout.count("\n| ") == 8  # the table: 2 x 2 x 2 weights
    saved = load_checkpoint(exp / "best.pt")["decoding"]["beam"]
    assert saved["oov_penalty"] in (-5, -20) and saved["alpha"] in (0, 0.5)
    decoded = subprocess.run([*asr, "decode", "--model", str(exp / "best.pt"), "--manifest",
                              str(manifest), "--out", str(tmp_path / "hyp-lm.jsonl")],
                             capture_output=True, text=True, timeout=300, check=True)
    assert "decoding: beam" in decoded.stderr and "lm.arpa" in decoded.stderr
    with_lm = score(read_transcripts(manifest), read_transcripts(tmp_path / "hyp-lm.jsonl"),
                    normalize)
    assert with_lm.wer <= report.wer
