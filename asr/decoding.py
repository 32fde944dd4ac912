"""Building the decoder a command asks for, with the LM settings saved in the model.

`asr tune-lm` stores its best weights in the checkpoint under "decoding":
{"lm": ARPA path (relative to the checkpoint's folder when inside it), "beam": {"alpha",
"beta", "oov_penalty", ...}, "flashlight": {...}}. Options given on the command line win over them.
"""

from __future__ import annotations

import os
from pathlib import Path

from asr.checkpoint import load_checkpoint, save_atomic
from asr.decode import BeamSearchDecoder, Decoder, greedy_decode
from asr.text import CharTokenizer

DEFAULT_WEIGHTS = {"alpha": 0.5, "beta": 1.0}  # before tuning; see `asr tune-lm`


def saved_lm(state: dict, checkpoint: str | Path) -> str | None:
    """The ARPA path saved in a checkpoint, resolved against the checkpoint's folder."""
    lm = state.get("decoding", {}).get("lm")
    return str(Path(checkpoint).parent / lm) if lm else None


def resolve_decoder(name: str, state: dict, lm_path: str | None) -> str:
    """The decoder `--decoder NAME` means: "auto" is beam search when there is an LM and
    `asr tune-lm` saved beam weights in the checkpoint, else greedy."""
    if name != "auto":
        return name
    return "beam" if lm_path and "beam" in state.get("decoding", {}) else "greedy"


def make_decoder(name: str, tokenizer: CharTokenizer, *, beam_size: int = 10,
                 lm_path: str | None = None, alpha: float | None = None, beta: float | None = None,
                 saved: dict | None = None) -> Decoder:
    """Decoder `name` ("greedy", "beam" or "flashlight"); unset weights come from `saved`
    (a checkpoint's "decoding" entry for this decoder), then DEFAULT_WEIGHTS."""
    if name == "greedy":
        return greedy_decode
    saved = saved or {}
    alpha = alpha if alpha is not None else saved.get("alpha", DEFAULT_WEIGHTS["alpha"])
    beta = beta if beta is not None else saved.get("beta", DEFAULT_WEIGHTS["beta"])
    if name == "beam":
        from asr.lm import NgramLM

        lm = NgramLM.from_arpa(lm_path) if lm_path else None
        extra = {"oov_penalty": saved["oov_penalty"]} if "oov_penalty" in saved else {}
        return BeamSearchDecoder(beam_size=beam_size, lm=lm, tokenizer=tokenizer, alpha=alpha,
                                 beta=beta, **extra)
    if name == "flashlight":
        from asr.decode.flashlight import FlashlightDecoder

        return FlashlightDecoder(tokenizer, lm_path=lm_path, beam_size=beam_size, lm_weight=alpha,
                                 word_score=beta)
    raise ValueError(f"unknown decoder {name!r}; choose greedy, beam or flashlight")


def save_lm_weights(checkpoint: str | Path, decoder: str, lm_path: str, weights: dict) -> None:
    """Record tuned LM weights (and the LM) in `checkpoint`, rewriting it atomically."""
    state = load_checkpoint(checkpoint)
    decoding = dict(state.get("decoding", {}))
    folder = Path(checkpoint).resolve().parent
    lm = Path(lm_path).resolve()
    decoding["lm"] = os.path.relpath(lm, folder) if lm.is_relative_to(folder) else str(lm)
    decoding[decoder] = weights
    save_atomic({**state, "decoding": decoding}, checkpoint)
