"""Checkpoints as plain dicts that load with `torch.load(weights_only=True)`.

A checkpoint holds `config`, `tokenizer`, `model` (CMVN stats included) and, for
training checkpoints (`epoch-N.pt`), `optimizer`, `scheduler`, `scaler`, `epoch`, `step`,
`best_wer`, `bad_epochs`, `rng` and `train_config`.
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path

import torch

from asr.atomic import atomic_path
from asr.model import CTCModel, ModelConfig
from asr.text import CharTokenizer


def save_atomic(state: dict, path: str | Path) -> None:
    """Write `state` to `path` atomically: a crash never leaves half a checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found; train a model first or fix --model")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        raise ValueError(f"{path}: not a readable asr checkpoint ({str(err).splitlines()[0]}); "
                         "pass a file written by `asr train`, e.g. exp/best.pt") from None
    if not isinstance(state, dict) or not {"config", "tokenizer", "model"} <= set(state):
        raise ValueError(f"{path}: not an asr checkpoint (no config/tokenizer/model); "
                         "pass a file written by `asr train`, e.g. exp/best.pt")
    return state


def model_state(model: CTCModel, tokenizer: CharTokenizer) -> dict:
    """What inference needs: config, tokenizer and weights."""
    return {
        "config": model.config.to_dict(),
        "tokenizer": tokenizer.to_dict(),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }


def load_model(path: str | Path, device: str | torch.device = "cpu"):
    """Rebuild a model and its tokenizer from a checkpoint, with no side files. Eval mode."""
    return model_from_state(load_checkpoint(path), device)


def model_from_state(state: dict, device: str | torch.device = "cpu"):
    """The model (eval mode) and tokenizer of a loaded checkpoint."""
    model = CTCModel(ModelConfig.from_dict(state["config"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval(), CharTokenizer.from_dict(state["tokenizer"])


def average_checkpoints(paths: list[str | Path]) -> dict:
    """A model checkpoint whose weights are the mean of those in `paths` (one training run)."""
    if not paths:
        raise ValueError("no checkpoints to average; pass e.g. exp/epoch-13.pt exp/epoch-14.pt")
    states = [load_checkpoint(p) for p in paths]
    for path, state in zip(paths[1:], states[1:]):
        if state["config"] != states[0]["config"]:
            raise ValueError(f"{path}: model config differs from {paths[0]}'s; "
                             "average checkpoints of one training run only")
    averaged = {}
    for name, first in states[0]["model"].items():
        if first.is_floating_point():
            total = sum(state["model"][name].double() for state in states)
            averaged[name] = (total / len(states)).to(first.dtype)
        else:  # integer buffers (e.g. counters) are taken from the first checkpoint
            averaged[name] = first
    return {"config": states[0]["config"], "tokenizer": states[0]["tokenizer"],
            "model": averaged, "averaged_from": [str(p) for p in paths]}


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
