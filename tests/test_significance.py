"""Bootstrap intervals, the paired bootstrap and the MAPSSWE test."""

import math

import numpy as np
import pytest

from asr.align import align_python
from asr.score import score
from asr.significance import bootstrap_interval, mapsswe, paired_bootstrap, segment_errors


def ops(ref: str, hyp: str) -> np.ndarray:
    return align_python(ref.split(), hyp.split())


def test_bootstrap_interval_brackets_the_wer_and_narrows_with_more_data():
    rng = np.random.default_rng(0)
    words = rng.integers(5, 30, 200)
    errors = rng.binomial(words, 0.2)
    lo, hi = bootstrap_interval(errors, words, seed=1)
    wer = errors.sum() / words.sum()
    assert lo < wer < hi
    assert bootstrap_interval(errors, words, seed=1) == (lo, hi)  # seeded: repeatable
    lo4, hi4 = bootstrap_interval(np.tile(errors, 4), np.tile(words, 4), seed=1)
    assert hi4 - lo4 == pytest.approx((hi - lo) / 2, rel=0.25)  # width ~ 1 / sqrt(N)
    assert bootstrap_interval(words * 0, words) == (0.0, 0.0)


def test_paired_bootstrap_sees_a_consistent_small_gain():
    rng = np.random.default_rng(0)
    words = rng.integers(5, 30, 300)
    errors_b = rng.binomial(words, 0.2)
    errors_a = np.maximum(errors_b - (rng.random(300) < 0.3), 0)  # A fixes an error in 30%
    result = paired_bootstrap(errors_a, errors_b, words, seed=0)
    assert result["p_a_better"] > 0.99
    assert result["diff_95ci"][1] < 0
    same = paired_bootstrap(errors_b, errors_b, words)
    assert same["p_a_better"] == same["p_b_better"] == 0.0


def test_segments_are_cut_at_two_words_both_systems_got_right():
    ref = "a b c d e f g h"
    # A: error on c; B: errors on c and g; d e f right in both -> segments [c] and [g h]
    a, b = ops(ref, "a b X d e f g h"), ops(ref, "a b Y d e f Z h")
    assert segment_errors(a, b) == [(1, 1), (0, 1)]
    # one shared right word between errors is not a boundary: one segment
    a, b = ops(ref, "a b X d e f g h"), ops(ref, "a b c Y e f g h")
    assert segment_errors(a, b) == [(1, 1)]
    # an insertion between two right words breaks the boundary
    a, b = ops(ref, "a X c d e f g h"), ops(ref, "a b c INS d Y f g h")
    assert segment_errors(a, b) == [(1, 2)]
    assert segment_errors(ops(ref, ref), ops(ref, ref)) == []


def test_mapsswe_z_statistic_by_hand():
    refs = ["a b c d e", "f g h i j", "k l m n o"]
    hyp_a = ["a b X d e", "f g h i j", "k l m n o"]
    hyp_b = ["a b X d e", "f g Y i j", "k l Z n o"]
    result = mapsswe([ops(r, h) for r, h in zip(refs, hyp_a)], [ops(r, h) for r, h in zip(refs, hyp_b)])
    d = np.array([0, -1, -1])  # per segment errors A - B
    z = d.mean() / (d.std(ddof=1) / math.sqrt(3))
    assert result["segments"] == 3 and result["z"] == pytest.approx(z)
    assert result["p_value"] == pytest.approx(math.erfc(abs(z) / math.sqrt(2)))


def test_score_report_groups_by_speaker_and_length():
    refs = {"s1-u1": "a b c", "s1-u2": "a b c d e f", "s2-u1": "x"}
    hyps = {"s1-u1": "a b", "s1-u2": "a b c d e f", "s2-u1": "y z"}
    r = score(refs, hyps)
    speakers = {g["group"]: (g["utterances"], g["ref_words"], g["wer"]) for g in r.by_speaker()}
    assert speakers == {"s1": (2, 9, pytest.approx(1 / 9)), "s2": (1, 1, pytest.approx(2.0))}
    lengths = {g["group"]: g["utterances"] for g in r.by_length()}
    assert lengths == {"1-4": 2, "5-9": 1}
    r = score(refs, hyps, speakers={"s1-u1": "alice", "s1-u2": "bob", "s2-u1": "bob"})
    assert [g["group"] for g in r.by_speaker()] == ["alice", "bob"]
