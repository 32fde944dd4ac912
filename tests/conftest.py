import json
import random

import numpy as np
import pytest
import soundfile


@pytest.fixture
def noise_corpus(tmp_path):
    """A tiny corpus of noise with random letter texts: enough to exercise training code."""

    def make(name: str, n: int, seed: int = 0):
        rng = random.Random(seed)
        np_rng = np.random.default_rng(seed)
        folder = tmp_path / name
        folder.mkdir()
        rows = []
        for i in range(n):
            duration = rng.uniform(0.4, 1.2)
            path = folder / f"{name}-{i}.wav"
            soundfile.write(path, 0.1 * np_rng.standard_normal(int(16000 * duration)), 16000)
            text = " ".join(rng.choice(["ab", "ba", "cab"]) for _ in range(rng.randint(1, 3)))
            rows.append({"id": f"{name}-{i}", "audio_filepath": str(path),
                         "duration": round(duration, 3), "text": text, "speaker": "s"})
        manifest = tmp_path / f"{name}.jsonl"
        manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return manifest

    return make


SENTENCES = [
    "the cat sat on the mat", "a dog ran to the park", "she reads a good book",
    "we eat bread and jam", "open the red door", "my fish can swim",
    "the sun is hot today", "he has a big hat", "put the cup down", "birds sing at dawn",
]


@pytest.fixture(scope="session")
def spoken_model(tmp_path_factory):
    """A tiny model trained on ten sentences spoken by three espeak-ng voices, and their
    manifest: it recognises them (CER < 10 %), so transcription can be checked on meaning."""
    from asr.corpora.common import Utterance, synthesize_splits
    from asr.data import read_manifest
    from asr.train import TrainConfig, train
    from asr.tts import english_voices

    root = tmp_path_factory.mktemp("spoken")
    voices = english_voices(seed=1, n=3, rates=(160,), pitches=(50,))
    utts = [Utterance(f"u{i:02d}", text, text, voices[i % 3]) for i, text in enumerate(SENTENCES * 3)]
    manifest = synthesize_splits({"train": utts}, root / "data", jobs=1)["train"]
    cfg = TrainConfig(
        train_manifest=str(manifest), dev_manifest=str(manifest), exp_dir=str(root / "exp"),
        size="tiny", epochs=60, max_batch_seconds=12.0, lr=4e-3, warmup_steps=30, patience=60,
        num_workers=0, model_overrides={"dropout": 0.0, "n_time_masks": 0, "n_freq_masks": 0})
    result = train(cfg)
    return {"model": root / "exp" / "best.pt", "manifest": manifest, "best_wer": result["best_wer"],
            "rows": read_manifest(manifest)}  # audio paths resolved
