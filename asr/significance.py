"""Statistics for comparing WERs: bootstrap confidence intervals, the paired bootstrap and
NIST's matched-pair sentence-segment word error (MAPSSWE) test.

Bootstrap: utterances are resampled with replacement (seeded, so results repeat); the WER
of a resample is its errors over its reference words. References: Bisani & Ney, "Bootstrap
estimates for confidence intervals in ASR performance evaluation" (ICASSP 2004); Gillick &
Cox, "Some statistical issues in the comparison of speech recognition algorithms" (ICASSP
1989), as implemented in NIST sclite's `sc_stats`.
"""

from __future__ import annotations

import math

import numpy as np

from asr.align import CORRECT, INSERTION

CHUNK = 100  # resamples drawn at once


def _resampled_wers(errors: list[np.ndarray], words: np.ndarray, draws: int, seed: int) -> list[np.ndarray]:
    """Per errors array, the WER of each of `draws` resamples of the same utterance indices."""
    rng = np.random.default_rng(seed)
    n = len(words)
    out = [[] for _ in errors]
    for start in range(0, draws, CHUNK):
        index = rng.integers(0, n, size=(min(CHUNK, draws - start), n))  # (chunk, N)
        total = np.maximum(words[index].sum(1), 1)  # (chunk,)
        for k, e in enumerate(errors):
            out[k].append(e[index].sum(1) / total)
    return [np.concatenate(parts) for parts in out]


def bootstrap_interval(errors: np.ndarray, words: np.ndarray, level: float = 0.95, draws: int = 1000,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the WER from per-utterance errors and words (N,)."""
    (wers,) = _resampled_wers([np.asarray(errors)], np.asarray(words), draws, seed)
    tail = (1 - level) / 2
    return float(np.quantile(wers, tail)), float(np.quantile(wers, 1 - tail))


def paired_bootstrap(errors_a: np.ndarray, errors_b: np.ndarray, words: np.ndarray, draws: int = 1000,
                     seed: int = 0) -> dict:
    """P(A's WER < B's WER) over paired resamples of utterances, and a 95% interval of the
    difference WER_A - WER_B."""
    wer_a, wer_b = _resampled_wers([np.asarray(errors_a), np.asarray(errors_b)], np.asarray(words),
                                   draws, seed)
    diff = wer_a - wer_b
    return {"p_a_better": float((diff < 0).mean()), "p_b_better": float((diff > 0).mean()),
            "diff_95ci": [float(np.quantile(diff, 0.025)), float(np.quantile(diff, 0.975))],
            "draws": draws, "seed": seed}


def _units(ops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per reference word, 1 if it was an error (S or D); per gap before word j (and after
    the last), the number of insertions there: (R,), (R + 1,)."""
    word_errors, gaps = [], [0]
    for op in ops.tolist():
        if op == INSERTION:
            gaps[-1] += 1
        else:
            word_errors.append(int(op != CORRECT))
            gaps.append(0)
    return np.array(word_errors, dtype=np.int64), np.array(gaps, dtype=np.int64)


def segment_errors(ops_a: np.ndarray, ops_b: np.ndarray, min_good: int = 2) -> list[tuple[int, int]]:
    """One utterance cut into segments for MAPSSWE: (errors of A, errors of B) per segment.
    Segments are separated by at least `min_good` reference words that both systems got
    right with no insertion between them; every segment holds an error of A or B."""
    word_a, gap_a = _units(ops_a)
    word_b, gap_b = _units(ops_b)
    if len(word_a) != len(word_b):
        raise ValueError("the two alignments are of different references")
    # the utterance as units: gap 0, word 0, gap 1, ..., word R-1, gap R; (errors A, errors B)
    units = [(int(gap_a[0]), int(gap_b[0]))]
    for j in range(len(word_a)):
        units += [(int(word_a[j]), int(word_b[j])), (int(gap_a[j + 1]), int(gap_b[j + 1]))]
    is_word = [k % 2 == 1 for k in range(len(units))]
    clean = [a == 0 and b == 0 for a, b in units]
    # anchors: runs of >= min_good clean words whose gaps between them are clean too
    anchor = [False] * len(units)
    k = 1
    while k < len(units):
        end = k
        while end + 2 < len(units) and clean[end] and clean[end + 1] and clean[end + 2]:
            end += 2
        if clean[k] and (end - k) // 2 + 1 >= min_good:
            for i in range(k, end + 1):
                anchor[i] = True
            k = end + 2
        else:
            k += 2
    segments, current, dirty = [], [0, 0], False
    for unit, (a, b) in enumerate(units):
        if anchor[unit] and is_word[unit]:
            if dirty:
                segments.append(tuple(current))
            current, dirty = [0, 0], False
        elif not anchor[unit]:
            current[0] += a
            current[1] += b
            dirty = dirty or a > 0 or b > 0
    if dirty:
        segments.append(tuple(current))
    return segments


def mapsswe(ops_a: list[np.ndarray], ops_b: list[np.ndarray], min_good: int = 2) -> dict:
    """The matched-pair sentence-segment word error test over utterances aligned to the
    same references: Z = mean(d) / (sd(d) / sqrt(n)) over segments' error differences
    d = errors_A - errors_B, two-sided p from the normal distribution."""
    diffs = [a - b for oa, ob in zip(ops_a, ops_b, strict=True) for a, b in segment_errors(oa, ob, min_good)]
    n = len(diffs)
    if n < 2:
        return {"segments": n, "mean_diff": float(np.mean(diffs)) if diffs else 0.0, "z": 0.0,
                "p_value": 1.0, "min_good": min_good}
    d = np.array(diffs, dtype=np.float64)
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    if sd == 0:  # every segment differs by the same amount
        z = 0.0 if mean == 0 else math.copysign(math.inf, mean)
    else:
        z = mean / (sd / math.sqrt(n))
    return {"segments": n, "mean_diff": mean, "z": z, "p_value": math.erfc(abs(z) / math.sqrt(2)),
            "min_good": min_good}
