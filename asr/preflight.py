"""Out-of-memory pre-flight: run the worst batch the budget allows before training starts.

A bucketed batch holds at most `max_batch_seconds` of padded audio, so the worst case is
`max_batch_seconds // longest` copies of the longest utterance with the longest transcript.
If that runs out of memory, smaller budgets are tried until one fits, and training stops
with a message that names it, instead of failing hours later on an unlucky batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

log = logging.getLogger("asr.preflight")


def worst_case_batch(seconds: float, longest: float, max_tokens: int, sample_rate: int,
                     vocab_size: int) -> dict:
    """A collated batch of `seconds // longest` random utterances of `longest` seconds."""
    n = max(1, int(seconds // longest))
    samples = int(longest * sample_rate)
    return {
        "failed": [],
        "ids": [f"preflight-{i}" for i in range(n)],
        "waves": 0.1 * torch.randn(n, samples),  # (B, S)
        "wave_lens": torch.full((n,), samples),  # (B,)
        "tokens": torch.randint(1, vocab_size, (n, max_tokens)),  # (B, L)
        "token_lens": torch.full((n,), max_tokens),  # (B,)
    }


def fitting_budget(run_batch: Callable[[float], None], budget: float, longest: float,
                   shrink: float = 0.8) -> float | None:
    """None when `run_batch(budget)` fits in memory; else the largest `budget * shrink**k` that
    does. Raises ValueError when not even one utterance of `longest` seconds fits."""
    candidate = budget
    while candidate >= longest:
        try:
            run_batch(candidate)
        except torch.OutOfMemoryError:
            log.info("pre-flight: %.0f s of padded audio per batch runs out of memory", candidate)
            candidate *= shrink
            continue
        return None if candidate == budget else candidate
    raise ValueError(f"one utterance of {longest:.1f} s does not fit in memory; use a smaller "
                     "model, shorter utterances or a device with more memory")
