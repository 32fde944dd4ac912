"""CTC prefix beam search (no LM) on CPU.

Each prefix carries two log-scores: ``pb`` (all alignments of the prefix ending in blank)
and ``pnb`` (ending in its last token). Prefixes are nodes of a trie, so extending or
merging one costs O(1) whatever its length.

Pruning:
- tokens: per frame only the ``top_k`` non-blank tokens with log-prob >= ``token_min_logp``
  may extend a prefix (a prefix's own last token is always allowed to repeat);
- blank skipping: on a frame with P(blank) > ``blank_skip`` the non-blank moves (total
  probability < 1 - blank_skip) are dropped, so every prefix just moves all its mass to
  ``pb``. Dropping the frame outright would be wrong: the blank it carries separates
  repeated tokens ("a _ a" is "aa", "a a" is "a"). A run of such frames then only adds
  the same constant to every prefix, which is kept aside in one scalar.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
import torch

from asr.decode.greedy import BLANK

NEG_INF = float("-inf")


def _logaddexp(a: float, b: float) -> float:
    if a < b:
        a, b = b, a
    if b == NEG_INF:
        return a
    return a + math.log1p(math.exp(b - a))


def _add(beam: dict[int, list[float]], node: int, pb: float, pnb: float) -> None:
    """Merge the scores ``(pb, pnb)`` into ``beam[node]``."""
    entry = beam.get(node)
    if entry is None:
        beam[node] = [pb, pnb]
    else:
        entry[0] = _logaddexp(entry[0], pb)
        entry[1] = _logaddexp(entry[1], pnb)


def _search_one(
    lp: np.ndarray, beam_size: int, top_k: int, token_min_logp: float, blank_skip: float | None
) -> list[tuple[list[int], float]]:
    """Prefix beam search over one utterance's (T, V) log-probs; best-first n-best."""
    T, V = lp.shape
    k = min(top_k, V - 1)
    scores = lp.copy()
    scores[:, BLANK] = NEG_INF
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # (T, k) candidate tokens
    ok = np.take_along_axis(scores, top, axis=1) >= token_min_logp  # (T, k)
    cands = [c[m].tolist() for c, m in zip(top, ok, strict=True)]
    skip = (lp[:, BLANK] > math.log(blank_skip)).tolist() if blank_skip is not None else [False] * T
    rows = lp.tolist()

    parent, token = [-1], [-1]  # trie; node 0 is the empty prefix
    children: list[dict[int, int]] = [{}]  # children[node][token] -> child node
    beam = [(0.0, 0, 0.0, NEG_INF)]  # (total, node, pb, pnb), scores relative to `offset`
    offset, collapsed = 0.0, False
    for t in range(T):
        row = rows[t]
        if skip[t]:
            if not collapsed:
                beam = [(total, node, total, NEG_INF) for total, node, _, _ in beam]
                collapsed = True
            offset += row[BLANK]
            continue
        collapsed = False
        nxt: dict[int, list[float]] = {}  # node -> [pb, pnb]
        for total, node, pb, pnb in beam:
            last = token[node]
            # Stay on the same prefix: emit blank, or repeat the last token.
            _add(nxt, node, total + row[BLANK], pnb + row[last] if last >= 0 else NEG_INF)
            kids = children[node]
            for c in cands[t]:
                # Repeating the last token as a new token needs a blank in between.
                score = (pb if c == last else total) + row[c]
                if score == NEG_INF:
                    continue
                child = kids.get(c)
                if child is None:
                    child = kids[c] = len(token)
                    parent.append(node)
                    token.append(c)
                    children.append({})
                entry = nxt.get(child)
                if entry is None:
                    nxt[child] = [NEG_INF, score]
                else:
                    entry[1] = _logaddexp(entry[1], score)
        beam = heapq.nlargest(
            beam_size, ((_logaddexp(pb, pnb), node, pb, pnb) for node, (pb, pnb) in nxt.items())
        )

    nbest = []
    for total, node, _, _ in beam:
        ids = []
        while node > 0:
            ids.append(token[node])
            node = parent[node]
        nbest.append((ids[::-1], total + offset))
    return nbest


def beam_search_nbest(
    log_probs: torch.Tensor,
    lengths: torch.Tensor,
    beam_size: int = 10,
    top_k: int = 10,
    token_min_logp: float = -10.0,
    blank_skip: float | None = 0.999,
) -> list[list[tuple[list[int], float]]]:
    """Up to ``beam_size`` ``(token_ids, log_prob)`` hypotheses per utterance, best first.

    ``log_probs`` is (B, T, V) with blank id 0, ``lengths`` (B,) valid frames. ``log_prob``
    sums over all alignments of the prefix (exact when nothing was pruned).
    ``blank_skip=None`` disables blank skipping.
    """
    if beam_size < 1 or top_k < 1:
        raise ValueError(f"beam_size and top_k must be >= 1, got {beam_size} and {top_k}")
    lp = log_probs.detach().float().cpu().numpy()  # (B, T, V)
    return [
        _search_one(lp[b, :n], beam_size, top_k, token_min_logp, blank_skip)
        for b, n in enumerate(lengths.tolist())
    ]


def prefix_beam_search(
    log_probs: torch.Tensor,
    lengths: torch.Tensor,
    beam_size: int = 10,
    top_k: int = 10,
    token_min_logp: float = -10.0,
    blank_skip: float | None = 0.999,
) -> list[list[int]]:
    """Best prefix-beam-search hypothesis per utterance; see :func:`beam_search_nbest`."""
    nbest = beam_search_nbest(log_probs, lengths, beam_size, top_k, token_min_logp, blank_skip)
    return [hyps[0][0] for hyps in nbest]
