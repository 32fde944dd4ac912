"""A synthetic connected-digits corpus in the manner of TIDIGITS.

Each utterance is a string of 1-7 digits spoken as words, "oh" or "zero" for 0
(e.g. "nine oh four two"). Dev and test speakers are new voices whose variants
(timbres) no training speaker has.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

from asr.corpora.common import (
    Utterance,
    is_completed,
    mark_completed,
    split_voices,
    start_fresh,
    synthesize_splits,
)

log = logging.getLogger(__name__)

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
VOCABULARY = frozenset(DIGIT_WORDS) | {"oh"}
MAX_DIGITS = 7
_VERSION = 1  # bump when the output for the same parameters changes


def digit_string(rng: random.Random) -> str:
    """1-7 random digits as words; a 0 is "oh" or "zero" with equal chance."""
    digits = [rng.randrange(10) for _ in range(rng.randint(1, MAX_DIGITS))]
    return " ".join(rng.choice(("oh", "zero")) if d == 0 else DIGIT_WORDS[d] for d in digits)


def prepare_digits(
    out_dir: str | Path,
    n_train: int = 4000,
    n_dev: int = 400,
    n_test: int = 400,
    n_train_voices: int = 200,
    n_dev_voices: int = 10,
    n_test_voices: int = 10,
    seed: int = 0,
    jobs: int | None = None,
) -> dict[str, Path]:
    """Write `out_dir/{train,dev,test}.jsonl` and their 16 kHz wavs under `out_dir/wav/`.

    Idempotent: returns at once when `out_dir` already holds a corpus made with the same
    parameters. Returns split name -> manifest path.
    """
    out_dir = Path(out_dir)
    sizes = {"train": n_train, "dev": n_dev, "test": n_test}
    n_voices = {"train": n_train_voices, "dev": n_dev_voices, "test": n_test_voices}
    params = {"corpus": "digits", "version": _VERSION, "seed": seed, "sizes": sizes,
              "voices": n_voices}
    manifests = {split: out_dir / f"{split}.jsonl" for split in sizes}
    if is_completed(out_dir, params, list(manifests.values())):
        log.info("%s: digits corpus already prepared, skipping", out_dir)
        return manifests
    if min(*sizes.values(), *n_voices.values()) < 1:
        raise ValueError(f"every split needs at least one utterance and one voice, got "
                         f"sizes {sizes} and voices {n_voices}")
    start_fresh(out_dir)
    voices = split_voices(seed, n_voices)
    plan = {}
    for split, size in sizes.items():
        rng = random.Random(f"{seed}-{split}")
        speakers = voices[split]
        plan[split] = []
        for i in range(size):
            voice = speakers[i % len(speakers)]  # every speaker says as much
            text = digit_string(rng)
            plan[split].append(Utterance(f"{voice.speaker_id}-{split}{i:06d}", text, text, voice))
    synthesize_splits(plan, out_dir, jobs)
    mark_completed(out_dir, params)
    return manifests


def add_arguments(parser) -> None:
    """`asr prepare digits` options."""
    parser.add_argument("--n-train", type=int, default=4000, help="training utterances")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=None, help="processes (default: all cores)")
