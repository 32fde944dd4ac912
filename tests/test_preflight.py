import pytest
import torch

from asr.preflight import fitting_budget, worst_case_batch


def test_worst_case_batch_fills_the_budget_with_the_longest_utterance():
    batch = worst_case_batch(50.0, 12.0, 30, 16000, 29)
    assert batch["waves"].shape == (4, 12 * 16000)  # 4 x 12 s = 48 s <= 50 s
    assert batch["wave_lens"].tolist() == [192000] * 4
    assert batch["tokens"].shape == (4, 30) and int(batch["tokens"].min()) >= 1  # no blanks


def _memory_limited(limit_seconds: float, tried: list):
    """Stands in for a device that holds `limit_seconds` of padded audio per batch."""
    def run_batch(seconds: float) -> None:
        tried.append(seconds)
        if seconds > limit_seconds:
            raise torch.OutOfMemoryError("CUDA out of memory")
    return run_batch


def test_budget_that_fits_is_accepted_in_one_try():
    tried = []
    assert fitting_budget(_memory_limited(400, tried), 300.0, 20.0) is None
    assert tried == [300.0]


def test_too_large_budget_shrinks_until_one_fits():
    tried = []
    fits = fitting_budget(_memory_limited(100, tried), 300.0, 20.0)
    assert fits == pytest.approx(300 * 0.8**5) and fits <= 100 < fits / 0.8
    assert tried[0] == 300.0 and len(tried) == 6


def test_not_even_one_utterance_fits():
    with pytest.raises(ValueError, match="one utterance of 20.0 s does not fit"):
        fitting_budget(_memory_limited(10, []), 300.0, 20.0)
