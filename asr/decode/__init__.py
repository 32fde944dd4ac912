"""CTC decoders: ``(log_probs (B, T, V), lengths (B,)) -> list of B token-id lists``.

Blank id 0; outputs have repeats merged and blanks removed. The registry (asr.decode.registry)
names the decoders, their options and capabilities; ``build_decoder(name, tokenizer, **options)``
builds one: "greedy" (best path), "beam" (our batched prefix beam search, optionally with an
n-gram LM) or "flashlight" (torchaudio's flashlight-text decoder with KenLM).

The decoders themselves load on first use (they need torch; the registry does not).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from asr.decode.registry import DECODERS, Decoder, NBestDecoder, build_decoder, get_spec, names

if TYPE_CHECKING:
    from asr.decode.batch_beam import BeamSearchDecoder
    from asr.decode.greedy import BLANK, GreedyDecoder, greedy_decode, greedy_decode_with_frames

_LAZY = {"BLANK": "greedy", "GreedyDecoder": "greedy", "greedy_decode": "greedy",
         "greedy_decode_with_frames": "greedy", "BeamSearchDecoder": "batch_beam"}

__all__ = ["BLANK", "DECODERS", "BeamSearchDecoder", "Decoder", "GreedyDecoder", "NBestDecoder",
           "build_decoder", "get_spec", "greedy_decode", "greedy_decode_with_frames", "names"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"asr.decode.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'asr.decode' has no attribute {name!r}")
