"""CTC decoders: ``(log_probs (B, T, V), lengths (B,)) -> list of B token-id lists``.

Blank id is 0; outputs have repeats merged and blanks removed. ``get_decoder(name, **opts)``
returns such a callable, so callers never depend on which search runs behind it.
"""

from __future__ import annotations

import functools
import inspect
from typing import Protocol

import torch

from asr.decode.beam import beam_search_nbest, prefix_beam_search
from asr.decode.greedy import BLANK, greedy_decode, greedy_decode_with_frames

__all__ = [
    "BLANK",
    "Decoder",
    "beam_search_nbest",
    "get_decoder",
    "greedy_decode",
    "greedy_decode_with_frames",
    "prefix_beam_search",
]


class Decoder(Protocol):
    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]: ...


DECODERS = {"greedy": greedy_decode, "beam": prefix_beam_search}


def get_decoder(name: str, **opts) -> Decoder:
    """The decoder called ``name`` ("greedy" or "beam") with its options bound."""
    if name not in DECODERS:
        raise ValueError(f"unknown decoder {name!r}; choose from {sorted(DECODERS)}")
    fn = DECODERS[name]
    inspect.signature(fn).bind_partial(None, None, **opts)  # TypeError on a bad option now
    return functools.partial(fn, **opts)
