"""Word alignment with NIST sclite's costs and tie-breaking (see align.cpp), for many pairs at once.

`align_words(refs, hyps)` maps words to integer ids and aligns every pair in one call of the
compiled aligner (`align_chars` does the same for characters); ops are int8 codes CORRECT,
SUBSTITUTION, DELETION, INSERTION. Without a compiler the same algorithm runs in Python
(slowly).
"""

from __future__ import annotations

import ctypes
import itertools
import os
from functools import cache
from pathlib import Path

import numpy as np

from asr.native import load_library, ptr

CORRECT, SUBSTITUTION, DELETION, INSERTION = 0, 1, 2, 3
OP_NAMES = "CSDI"  # sclite's marks, by op code
SUB_COST, INS_DEL_COST = 4, 3
SOURCE = Path(__file__).with_name("align.cpp")


@cache
def _library() -> ctypes.CDLL | None:
    lib = load_library(SOURCE)
    if lib is not None:
        lib.asr_align_batch.argtypes = [ctypes.c_int64] + [ctypes.c_void_p] * 6 + [ctypes.c_int]
    return lib


def align_python(ref: list, hyp: list) -> np.ndarray:
    """The ops aligning one pair: align.cpp's algorithm, in Python."""
    R, H = len(ref), len(hyp)
    cost = [[0] * (H + 1) for _ in range(R + 1)]
    back = [["L"] * (H + 1) for _ in range(R + 1)]  # D: diagonal, U: up (deletion), L: left
    for b in range(1, H + 1):
        cost[0][b] = INS_DEL_COST * b
    for a in range(1, R + 1):
        cost[a][0], back[a][0] = INS_DEL_COST * a, "U"
        for b in range(1, H + 1):
            sub = cost[a - 1][b - 1] + (0 if ref[a - 1] == hyp[b - 1] else SUB_COST)
            dele, ins = cost[a - 1][b] + INS_DEL_COST, cost[a][b - 1] + INS_DEL_COST
            if sub <= dele and sub <= ins:
                cost[a][b], back[a][b] = sub, "D"
            elif dele < ins:
                cost[a][b], back[a][b] = dele, "U"
            else:
                cost[a][b], back[a][b] = ins, "L"
    ops, a, b = [], R, H
    while a > 0 or b > 0:
        step = back[a][b]
        if step == "D":
            ops.append(CORRECT if ref[a - 1] == hyp[b - 1] else SUBSTITUTION)
            a, b = a - 1, b - 1
        elif step == "U":
            ops.append(DELETION)
            a -= 1
        else:
            ops.append(INSERTION)
            b -= 1
    return np.array(ops[::-1], dtype=np.int8)


def align_ids(ref_ids: np.ndarray, ref_offsets: np.ndarray, hyp_ids: np.ndarray,
              hyp_offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """N pairs of integer sequences, concatenated (with offsets (N+1,)) -> the ops of all
    pairs one after another (int8) and each pair's number of ops (N,)."""
    n = len(ref_offsets) - 1
    lib = _library()
    if lib is None:
        per_pair = [align_python(ref_ids[ref_offsets[i]:ref_offsets[i + 1]].tolist(),
                                 hyp_ids[hyp_offsets[i]:hyp_offsets[i + 1]].tolist()) for i in range(n)]
        counts = np.array([len(p) for p in per_pair], dtype=np.int32)
        return np.concatenate(per_pair or [np.zeros(0, np.int8)]).astype(np.int8), counts
    arrays = [np.ascontiguousarray(a, dtype=d) for a, d in ((ref_offsets, np.int64), (ref_ids, np.int32),
                                                             (hyp_offsets, np.int64), (hyp_ids, np.int32))]
    arrays = [a if len(a) else np.zeros(1, a.dtype) for a in arrays]  # valid pointers
    ops = np.zeros(max(len(ref_ids) + len(hyp_ids), 1), dtype=np.int8)
    counts = np.zeros(n, dtype=np.int32)
    lib.asr_align_batch(n, *map(ptr, arrays), ptr(ops), ptr(counts), os.cpu_count() or 1)
    return ops[:int(counts.sum())], counts


def _offsets(lengths: list[int]) -> np.ndarray:
    return np.cumsum([0] + lengths, dtype=np.int64)


def align_words(refs: list[list[str]], hyps: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Word lists, pair by pair -> (ops of all pairs, ops per pair (N,))."""
    ref_words, hyp_words = (list(itertools.chain.from_iterable(side)) for side in (refs, hyps))
    vocab = {w: i for i, w in enumerate(dict.fromkeys(itertools.chain(ref_words, hyp_words)))}
    ref_ids = np.fromiter(map(vocab.__getitem__, ref_words), dtype=np.int32, count=len(ref_words))
    hyp_ids = np.fromiter(map(vocab.__getitem__, hyp_words), dtype=np.int32, count=len(hyp_words))
    return align_ids(ref_ids, _offsets([len(w) for w in refs]), hyp_ids, _offsets([len(w) for w in hyps]))


def align_chars(refs: list[str], hyps: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Strings, pair by pair, aligned character by character (spaces included)."""
    def code_points(texts: list[str]) -> np.ndarray:
        return np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32).astype(np.int32)

    return align_ids(code_points(refs), _offsets([len(t) for t in refs]), code_points(hyps),
                     _offsets([len(t) for t in hyps]))


def split_ops(ops: np.ndarray, counts: np.ndarray) -> list[np.ndarray]:
    """The flat ops of align_ids cut into one array per pair."""
    return np.split(ops, np.cumsum(counts)[:-1]) if len(counts) else []
