"""The compiled CPU engine of the beam search (`beam_search.cpp`, built by asr.native).

Without a compiler `load_engine()` returns None and the decoder keeps its torch engine.
"""

from __future__ import annotations

import ctypes
from functools import cache
from pathlib import Path

import numpy as np

from asr.native import load_library
from asr.native import ptr as _ptr

SOURCE = Path(__file__).with_name("beam_search.cpp")
_P = ctypes.c_void_p


@cache
def load_engine() -> ctypes.CDLL | None:
    """The compiled engine with its function signatures declared, or None."""
    lib = load_library(SOURCE)
    if lib is None:
        return None
    lib.asr_beam_create.restype = _P
    lib.asr_beam_create.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int32, ctypes.c_int32,
                                    _P, _P, _P, _P, ctypes.c_int, _P, _P, _P, ctypes.c_int, ctypes.c_int,
                                    *[ctypes.c_float] * 5, ctypes.c_int32, ctypes.c_int, ctypes.c_int,
                                    ctypes.c_float]
    lib.asr_beam_free.argtypes = [_P]
    lib.asr_beam_decode.argtypes = [_P, ctypes.c_int, ctypes.c_int, ctypes.c_int, _P, _P, _P,
                                    ctypes.c_int, ctypes.c_int, _P, _P, _P, _P, _P]
    return lib


def _pointers(arrays: list[np.ndarray]) -> ctypes.Array:
    return (ctypes.c_void_p * max(len(arrays), 1))(*[_ptr(a) for a in arrays])


class NativeBeamSearch:
    """One compiled decoder: the LM tables and word spellings (None: no LM) and the settings
    of `asr.decode.BeamSearchDecoder`, whose docstring describes the search."""

    def __init__(self, lib: ctypes.CDLL, beam_size: int, top_k: int, token_min_logp: float,
                 blank_skip: float | None, lm=None, spellings: dict[int, list[int]] | None = None,
                 alpha: float = 0.0, beta: float = 0.0, oov_penalty: float = 0.0, separator: int = -1,
                 lookahead: bool = False, recombine: bool = False,
                 beam_threshold: float = float("inf")):
        self.lib = lib
        if lm is not None:
            # contiguous CPU copies the engine borrows; kept alive as long as this object
            self._tables = [[np.ascontiguousarray(t.cpu().numpy()) for t in tables]
                            for tables in (lm.keys, lm.log_probs, lm.backoffs)]
            keys, log_probs, backoffs = self._tables
            self.start_context = lm.start_context().cpu().numpy().astype(np.int32)
            order, base, unk, eos = lm.order, lm.base, lm.unk_id, lm.eos_id
        else:
            keys = log_probs = backoffs = []
            self.start_context = np.zeros(1, dtype=np.int32)
            order = base = unk = eos = 0
        spellings = spellings or {}
        word_ids = np.array(list(spellings) or [0], dtype=np.int32)
        offsets = np.cumsum([0] + [len(tokens) for tokens in spellings.values()], dtype=np.int64)
        tokens = np.array([t for tokens in spellings.values() for t in tokens] or [0], dtype=np.int32)
        sizes = np.array([len(k) for k in keys] or [0], dtype=np.int64)
        skip_logp = float(np.log(np.float32(blank_skip))) if blank_skip is not None else 0.0
        self.handle = lib.asr_beam_create(order, base, unk, eos, _pointers(keys), _pointers(log_probs),
                                          _pointers(backoffs), _ptr(sizes), len(spellings),
                                          _ptr(word_ids), _ptr(offsets), _ptr(tokens), beam_size, top_k,
                                          token_min_logp, skip_logp, alpha, beta, oov_penalty, separator,
                                          int(lookahead), int(recombine), beam_threshold)
        if not self.handle:
            raise ValueError(f"the compiled beam search takes LMs of order <= 10, beam >= 1 and "
                             f"top_k >= 1, got order {order}, beam {beam_size}, top_k {top_k}")

    def __del__(self):
        if getattr(self, "handle", None):
            self.lib.asr_beam_free(self.handle)

    def search(self, log_probs: np.ndarray, lengths: np.ndarray, n: int, threads: int):
        """log_probs (B, T, V), lengths (B,) -> per utterance, up to n (tokens, start frames,
        score), best first."""
        B, T, V = log_probs.shape
        log_probs = np.ascontiguousarray(log_probs, dtype=np.float32)
        lengths = np.ascontiguousarray(np.minimum(lengths, T), dtype=np.int64)
        scores = np.empty((B, n), dtype=np.float32)
        count = np.zeros(B, dtype=np.int32)
        hyp_len = np.zeros((B, n), dtype=np.int32)
        tokens = np.zeros((B, n, max(T, 1)), dtype=np.int32)
        frames = np.zeros_like(tokens)
        self.lib.asr_beam_decode(self.handle, B, T, V, _ptr(log_probs), _ptr(lengths),
                                 _ptr(self.start_context), n, threads, _ptr(scores), _ptr(count),
                                 _ptr(hyp_len), _ptr(tokens), _ptr(frames))
        return [[(tokens[b, i, :hyp_len[b, i]].tolist(), frames[b, i, :hyp_len[b, i]].tolist(),
                  float(scores[b, i])) for i in range(count[b])] for b in range(B)]
