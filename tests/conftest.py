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
