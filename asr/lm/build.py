"""Estimate a word n-gram LM (interpolated modified Kneser-Ney, count pruning) and write ARPA.

Smoothing after Chen & Goodman (1998), with KenLM lmplz's conventions: sentences are
`<s> w1 ... wn </s>`; the highest order uses raw counts, lower orders continuation counts
(the number of distinct words seen before the n-gram), except n-grams that start with `<s>`,
which nothing can precede and so keep their raw counts. Each order has three discounts
D1, D2, D3+ from its count-of-counts t1..t4. For an n-gram hw with adjusted count a:

    p(w | h) = (a(hw) - D(a(hw))) / sum_x a(hx) + gamma(h) * p(w | h minus its first word)

The unigrams interpolate with the uniform distribution over the vocabulary (all words,
`</s>` and `<unk>`, not `<s>`), so `<unk>` gets the mass that interpolation leaves it;
`<s>` is never predicted (log10 -99) and only has a backoff. The model is normalised, with
or without pruning: a pruned n-gram's discounted mass goes to its context's gamma, which is
the context's ARPA backoff.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

from asr.atomic import write_text
from asr.lm.arpa import BOS, EOS, UNK
from asr.text import normalize

log = logging.getLogger(__name__)

FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)  # lmplz --discount_fallback
Ngram = tuple[str, ...]


def _thresholds(prune: list[int] | None, order: int) -> list[int]:
    """Minimum adjusted count to keep, per order; the last value repeats for higher orders."""
    if not prune:
        return [0] * order
    if len(prune) > order or any(t < 0 for t in prune):
        raise ValueError(f"prune needs at most {order} non-negative counts, got {prune}")
    if prune[0] > 1:
        raise ValueError(f"unigrams are never pruned: prune[0] must be 0 or 1, got {prune[0]}")
    return list(prune) + [prune[-1]] * (order - len(prune))


def _count(lines: Iterable[str], order: int, normalizer: Callable[[str], str] | None, source: str):
    """Raw counts of the `order`-grams and of the sentence prefixes `<s> ...` shorter than that."""
    top: Counter[Ngram] = Counter()
    prefixes: list[Counter[Ngram]] = [Counter() for _ in range(order - 1)]
    sentences = tokens = 0
    for number, line in enumerate(lines, 1):
        words = (normalizer(line) if normalizer else line).split()
        if not words:
            continue
        if BOS in words or EOS in words:
            raise ValueError(f"{source}:{number}: {BOS} and {EOS} are reserved: {line!r}")
        sentences += 1
        tokens += len(words)
        padded = (BOS, *words, EOS)
        top.update(padded[i:i + order] for i in range(len(padded) - order + 1))
        for n in range(1, min(order, len(padded) + 1)):
            prefixes[n - 1][padded[:n]] += 1
    return top, prefixes, sentences, tokens


def _adjusted_counts(top: Counter[Ngram], prefixes: list[Counter[Ngram]]) -> list[Counter[Ngram]]:
    """Per order 1..N: raw counts for the top order and `<s>` prefixes, continuation counts else."""
    adjusted = [top]
    for prefix in reversed(prefixes):
        lower = Counter(prefix)
        lower.update(g[1:] for g in adjusted[0])  # one per distinct left extension
        adjusted.insert(0, lower)
    return adjusted


def _discounts(counts: Iterable[int], n: int) -> tuple[float, float, float]:
    """D1, D2, D3+ from the count-of-counts (Chen & Goodman); FALLBACK_DISCOUNTS if they fail."""
    t = Counter(min(c, 5) for c in counts)
    try:
        y = t[1] / (t[1] + 2 * t[2])
        d = (1 - 2 * y * t[2] / t[1], 2 - 3 * y * t[3] / t[2], 3 - 4 * y * t[4] / t[3])
    except ZeroDivisionError:
        d = (0.0, 0.0, 0.0)
    if all(0 < dk < k for k, dk in enumerate(d, 1)):
        return d
    log.warning("%d-grams: count-of-counts t1..t4 = %s give no valid discounts (small text?); "
                "using %s", n, [t[k] for k in range(1, 5)], FALLBACK_DISCOUNTS)
    return FALLBACK_DISCOUNTS


def _kept(adjusted: list[Counter[Ngram]], thresholds: list[int]) -> list[set[Ngram]]:
    """The n-grams at or above their order's threshold, plus every prefix and suffix of a kept
    n-gram (ARPA needs the context of each n-gram, kenlm its suffix too)."""
    kept = [{g for g, c in a.items() if c >= t} for a, t in zip(adjusted, thresholds)]
    kept[0] = set(adjusted[0])
    for n in range(len(kept) - 1, 0, -1):
        for g in kept[n]:
            kept[n - 1].update((g[:-1], g[1:]))
    return kept


def build_arpa(lines: Iterable[str], order: int, out: str | Path, prune: list[int] | None = None,
               normalizer: Callable[[str], str] | None = normalize, source: str = "text") -> dict:
    """Estimate an `order`-gram modified Kneser-Ney LM from one sentence per line; write ARPA to
    `out` (atomically). `prune[k]`: the smallest adjusted count a (k+1)-gram needs to be kept.
    Errors about the text name it as `source`. Returns a summary: sentences, words, vocab,
    n-grams and pruned per order, discounts."""
    if order < 2:
        raise ValueError(f"order must be at least 2 (kenlm loads no unigram models), got {order}")
    thresholds = _thresholds(prune, order)
    top, prefixes, sentences, tokens = _count(lines, order, normalizer, source)
    if not top:
        raise ValueError(f"{source}: text too small for a {order}-gram model: {sentences} non-empty "
                         f"sentences, none with the {max(order - 2, 1)}+ words a {order}-gram needs")
    adjusted = _adjusted_counts(top, prefixes)
    unigrams = adjusted[0]
    unigrams.pop((BOS,), None)  # never predicted; its 1-gram is written separately
    discounts = [_discounts(a.values(), n) for n, a in enumerate(adjusted, 1)]
    kept = _kept(adjusted, thresholds)

    def discounted(a: int, d: tuple[float, float, float]) -> float:
        return a - d[min(a, 3) - 1]

    vocab = sorted({w for (w,) in unigrams} | {UNK})  # predictable words
    total = sum(unigrams.values())
    gamma = sum(c - discounted(c, discounts[0]) for c in unigrams.values()) / total
    probs: list[dict[Ngram, float]] = [
        {(w,): discounted(unigrams[(w,)], discounts[0]) / total + gamma / len(vocab) if (w,) in unigrams
         else gamma / len(vocab) for w in vocab}]
    backoffs: list[dict[Ngram, float]] = []
    for n in range(2, order + 1):
        a, d = adjusted[n - 1], discounts[n - 1]
        totals: defaultdict[Ngram, int] = defaultdict(int)
        kept_mass: defaultdict[Ngram, float] = defaultdict(float)
        for g, c in a.items():  # in insertion order, not a set's: the same sums every run
            totals[g[:-1]] += c
            if g in kept[n - 1]:
                kept_mass[g[:-1]] += discounted(c, d)
        backoffs.append({h: 1 - m / totals[h] for h, m in kept_mass.items()})  # gamma with pruned mass
        probs.append({g: discounted(a[g], d) / totals[g[:-1]] + backoffs[-1][g[:-1]] * probs[-1][g[1:]]
                      for g in kept[n - 1]})
    backoffs.append({})
    probs[0][(BOS,)] = 0.0
    kept[0] = set(probs[0])

    out_lines = ["\\data\\"] + [f"ngram {n}={len(k)}" for n, k in enumerate(kept, 1)]
    for n in range(1, order + 1):
        out_lines += ["", f"\\{n}-grams:"]
        for g in sorted(kept[n - 1]):
            p = probs[n - 1][g]
            row = f"{math.log10(p) if p > 0 else -99:.6f}\t{' '.join(g)}"
            out_lines.append(row + f"\t{math.log10(backoffs[n - 1].get(g, 1.0)):.6f}" if n < order else row)
    write_text(out, "\n".join(out_lines + ["", "\\end\\", ""]))
    summary = {"sentences": sentences, "words": tokens, "vocab": len(vocab) + 1,
               "ngrams": [len(k) for k in kept],
               "pruned": [len(a) - len(k) for a, k in zip(adjusted, kept)],
               "discounts": [[round(x, 4) for x in d] for d in discounts]}
    summary["pruned"][0] = 0
    log.info("%d-gram LM %s: %s", order, out, summary)
    return summary
