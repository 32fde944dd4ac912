"""CTC decoders: ``(log_probs (B, T, V), lengths (B,)) -> list of B token-id lists``.

Blank id is 0; outputs have repeats merged and blanks removed. ``get_decoder(name, **opts)``
returns such a callable, so callers never depend on which search runs behind it:
"greedy" (best path), "beam" (our batched prefix beam search, optionally with an n-gram
LM) or "flashlight" (torchaudio's flashlight-text decoder with KenLM).
"""

from __future__ import annotations

from typing import Protocol

import torch

from asr.decode.batch_beam import BeamSearchDecoder
from asr.decode.greedy import BLANK, greedy_decode, greedy_decode_with_frames

__all__ = [
    "BLANK",
    "BeamSearchDecoder",
    "Decoder",
    "get_decoder",
    "greedy_decode",
    "greedy_decode_with_frames",
]


class Decoder(Protocol):
    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]: ...


def _flashlight(**opts):
    from asr.decode.flashlight import FlashlightDecoder

    return FlashlightDecoder(**opts)


DECODERS = {"greedy": None, "beam": BeamSearchDecoder, "flashlight": _flashlight}


def get_decoder(name: str, **opts) -> Decoder:
    """The decoder called ``name`` built with ``opts`` (TypeError on an unknown option)."""
    if name not in DECODERS:
        raise ValueError(f"unknown decoder {name!r}; choose from {sorted(DECODERS)}")
    if name == "greedy":
        if opts:
            raise TypeError(f"the greedy decoder takes no options, got {sorted(opts)}")
        return greedy_decode
    return DECODERS[name](**opts)
