"""Checkpoints as plain dicts that load with `torch.load(weights_only=True)`.

A checkpoint holds `config`, `tokenizer`, `model` (CMVN stats included) and, for
training checkpoints, `optimizer`, `scheduler`, `step`, `epoch`, `rng` and `best`.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import torch

from asr.model import CTCModel, ModelConfig
from asr.text import CharTokenizer


def save_atomic(state: dict, path: str | Path) -> None:
    """Write `state` to `path` via a temp file and `os.replace`, so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found; train a model first or fix --model")
    return torch.load(path, map_location=map_location, weights_only=True)


def model_state(model: CTCModel, tokenizer: CharTokenizer) -> dict:
    """What inference needs: config, tokenizer and weights."""
    return {
        "config": model.config.to_dict(),
        "tokenizer": tokenizer.to_dict(),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }


def load_model(path: str | Path, device: str | torch.device = "cpu"):
    """Rebuild a model and its tokenizer from a checkpoint, with no side files. Eval mode."""
    state = load_checkpoint(path)
    model = CTCModel(ModelConfig.from_dict(state["config"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval(), CharTokenizer.from_dict(state["tokenizer"])


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
