"""Word alignment with NIST sclite's costs and tie-breaking (see align.cpp), for many pairs at once.

`align_pairs(refs, hyps)` maps words to integer ids, aligns every pair in one call of the
compiled aligner, and returns per pair an int8 array of ops: CORRECT, SUBSTITUTION,
DELETION, INSERTION. Without a compiler the same algorithm runs in Python (slowly).
"""

from __future__ import annotations

import ctypes
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
        lib.asr_align_batch.argtypes = [ctypes.c_int64] + [ctypes.c_void_p] * 6
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


def align_pairs(refs: list[list[str]], hyps: list[list[str]]) -> list[np.ndarray]:
    """Per pair of word lists, its ops (int8, in order)."""
    lib = _library()
    if lib is None:
        return [align_python(r, h) for r, h in zip(refs, hyps, strict=True)]
    vocab: dict[str, int] = {}
    ref_ids = np.array([vocab.setdefault(w, len(vocab)) for words in refs for w in words], dtype=np.int32)
    hyp_ids = np.array([vocab.setdefault(w, len(vocab)) for words in hyps for w in words], dtype=np.int32)
    ref_offsets = np.cumsum([0] + [len(w) for w in refs], dtype=np.int64)
    hyp_offsets = np.cumsum([0] + [len(w) for w in hyps], dtype=np.int64)
    starts = ref_offsets + hyp_offsets  # (N+1,) where each pair's ops begin
    ops = np.zeros(max(int(starts[-1]), 1), dtype=np.int8)
    counts = np.zeros(len(refs), dtype=np.int32)
    lib.asr_align_batch(len(refs), ptr(ref_offsets), ptr(ref_ids if len(ref_ids) else np.zeros(1, np.int32)),
                        ptr(hyp_offsets), ptr(hyp_ids if len(hyp_ids) else np.zeros(1, np.int32)),
                        ptr(ops), ptr(counts))
    return [ops[s:s + n] for s, n in zip(starts[:-1].tolist(), counts.tolist(), strict=True)]
