"""The decoder a command asks for, with the settings saved in the model.

`asr tune-lm` stores its best weights in the checkpoint under "decoding":
{"lm": ARPA path (relative to the checkpoint's folder when inside it), "beam": {"alpha",
"beta", "oov_penalty", ...}, "flashlight": {...}}. Options given on the command line win over
them; `asr.decode.build_decoder(name, tokenizer, **options)` then builds the decoder.
"""

from __future__ import annotations

import os
from pathlib import Path

from asr.checkpoint import load_checkpoint, save_atomic
from asr.decode.registry import get_spec, resolve_options


def saved_lm(state: dict, checkpoint: str | Path) -> str | None:
    """The ARPA path saved in a checkpoint, resolved against the checkpoint's folder (or, for
    an exported model folder, against that folder itself)."""
    lm = state.get("decoding", {}).get("lm")
    checkpoint = Path(checkpoint)
    return str((checkpoint if checkpoint.is_dir() else checkpoint.parent) / lm) if lm else None


def resolve_decoder(name: str, state: dict, lm_path: str | None) -> str:
    """The decoder `--decoder NAME` means: "auto" is beam search when there is an LM and
    `asr tune-lm` saved beam weights in the checkpoint, else greedy."""
    if name != "auto":
        return name
    return "beam" if lm_path and "beam" in state.get("decoding", {}) else "greedy"


def decoder_settings(name: str, state: dict, checkpoint: str | Path, *, no_lm: bool = False,
                     **given) -> tuple[str, dict]:
    """`--decoder NAME` for this model: the decoder ("auto" as in `resolve_decoder`) and all its
    options. Given options (None: not given) win over the ones `asr tune-lm` saved, then the
    defaults; options the decoder lacks are ignored. The LM is the given one, else the model's
    (none with `no_lm`)."""
    lm = None if no_lm else given.pop("lm", None) or saved_lm(state, checkpoint)
    name = resolve_decoder(name, state, lm)
    spec = get_spec(name)
    given = {k: v for k, v in given.items() if k in spec.option_names}
    if spec.uses_lm:
        given["lm"] = lm
    return name, resolve_options(name, state.get("decoding", {}).get(name), **given)


def save_lm_weights(checkpoint: str | Path, decoder: str, lm_path: str, weights: dict) -> None:
    """Record tuned LM weights (and the LM) in `checkpoint`, rewriting it atomically."""
    if Path(checkpoint).is_dir():
        raise ValueError(f"{checkpoint}: a released model folder is not rewritten; tune the training "
                         "checkpoint (e.g. exp/best.pt) and export it again, or pass --no-save")
    state = load_checkpoint(checkpoint)
    decoding = dict(state.get("decoding", {}))
    folder = Path(checkpoint).resolve().parent
    lm = Path(lm_path).resolve()
    decoding["lm"] = os.path.relpath(lm, folder) if lm.is_relative_to(folder) else str(lm)
    decoding[decoder] = weights
    save_atomic({**state, "decoding": decoding}, checkpoint)
