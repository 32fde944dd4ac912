"""Checkpoints as plain dicts that load with `torch.load(weights_only=True)`, and exported
model folders (`asr export`) that load without pickle.

A checkpoint holds `config`, `tokenizer`, `model` (CMVN stats included) and, for
training checkpoints (`epoch-N.pt`), `optimizer`, `scheduler`, `scaler`, `epoch`, `step`,
`best_wer`, `bad_epochs`, `skipped_steps`, `rng` and `train_config`. Every checkpoint written here
carries a `checksum` of the rest of its contents, checked on loading. An exported folder holds config.json
({"format": "asr-model", "version": 1, "model", "tokenizer", "decoding", ...}) and
model.safetensors (the state dict); it loads as {config, tokenizer, model, decoding}.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import random
import warnings
from pathlib import Path

import torch

from asr.atomic import atomic_path
from asr.model import CTCModel, ModelConfig
from asr.text import CharTokenizer
from asr.textfiles import git_lfs_pointer
from asr.tokenizers import tokenizer_from_dict

FORMAT, VERSION = "asr-model", 1  # config.json's "format" and "version" in an exported folder
CONFIG, WEIGHTS, ONNX = "config.json", "model.safetensors", "model.onnx"
_FIX = "pass a .pt written by `asr train` (e.g. exp/best.pt) or a folder written by `asr export`"


class CheckpointWriteError(ValueError):
    """A checkpoint could not be written (disk full, no permission ...); nothing was replaced."""


def state_checksum(state) -> str:
    """SHA-256 of a checkpoint's contents: tensors by dtype, shape and bytes, the rest by repr."""
    digest = hashlib.sha256()

    def visit(value) -> None:
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().contiguous()
            digest.update(f"T{value.dtype}{tuple(value.shape)}".encode())
            digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(value, dict):
            digest.update(f"D{len(value)}".encode())
            for key in sorted(value, key=repr):
                digest.update(repr(key).encode())
                visit(value[key])
        elif isinstance(value, (list, tuple)):
            digest.update(f"{type(value).__name__[0]}{len(value)}".encode())
            for item in value:
                visit(item)
        else:
            digest.update(repr(value).encode())

    visit({k: v for k, v in state.items() if k != "checksum"})
    return digest.hexdigest()


def save_atomic(state: dict, path: str | Path) -> None:
    """Write `state` with its checksum to `path` atomically: a crash never leaves half a
    checkpoint, and a failed write (disk full) leaves the file that was there."""
    try:
        with atomic_path(path, durable=True) as tmp, open(tmp, "wb") as file:
            torch.save({**state, "checksum": state_checksum(state)}, file)  # OSError when it fails
    except OSError as err:
        raise CheckpointWriteError(f"{path}: could not be written ({err.strerror or err}); "
                                   "any earlier file of that name is untouched") from None


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """A checkpoint (.pt) or an exported model folder as a dict with config, tokenizer and
    model (a state dict), and decoding when it has one (always for a folder).

    Nothing but tensors and plain data is ever unpickled: anything else is a ValueError."""
    path = Path(path)
    if path.is_dir():
        return load_folder(path, map_location)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found; train a model first or fix --model")
    if lfs := git_lfs_pointer(path):
        raise lfs
    try:
        with warnings.catch_warnings():  # a plain pickle's protocol note: refused anyway if unsafe
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise ValueError(f"{path}: not a readable asr checkpoint (not a weights-only torch file: "
                         "garbage, or a pickle of more than tensors and plain data, left unpickled "
                         f"as that could run code); {_FIX}") from None
    except Exception:  # truncated zip, empty file, text ...
        raise ValueError(f"{path}: not a readable asr checkpoint (damaged, truncated or not a "
                         f"torch file); {_FIX}") from None
    if not isinstance(state, dict) or not {"config", "tokenizer", "model"} <= set(state):
        raise ValueError(f"{path}: not an asr checkpoint (no config/tokenizer/model); {_FIX}")
    if "checksum" in state and state_checksum(state) != state["checksum"]:
        raise ValueError(f"{path}: damaged (its contents no longer match their checksum); "
                         "use an earlier checkpoint")
    return state


def load_folder(path: str | Path, map_location="cpu") -> dict:
    """An `asr export` folder as {config, tokenizer, model, decoding}: json and safetensors only."""
    from safetensors.torch import load_file

    path = Path(path)
    config = path / CONFIG
    if not config.is_file():
        raise ValueError(f"{path}: a folder without {CONFIG}, so not an exported model; {_FIX}")
    try:
        meta = json.loads(config.read_text(encoding="utf-8"))
    except (ValueError, OSError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValueError(f"{config}: unreadable ({type(err).__name__}); re-export the model "
                         "with `asr export MODEL --out DIR`") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise ValueError(f"{config}: not an asr model config (format {found!r}, not {FORMAT!r}); {_FIX}")
    if meta.get("version") != VERSION:
        raise ValueError(f"{config}: {FORMAT} version {meta.get('version')!r}, but this asr reads "
                         f"version {VERSION}; re-export the model with this version's `asr export`")
    if not {"model", "tokenizer"} <= set(meta):
        raise ValueError(f"{config}: no \"model\" or \"tokenizer\" entry; re-export the model with "
                         "`asr export MODEL --out DIR`")
    try:
        weights = load_file(path / WEIGHTS)
    except Exception as err:  # missing, truncated, not safetensors
        if lfs := git_lfs_pointer(path / WEIGHTS):
            raise lfs from None
        raise ValueError(f"{path / WEIGHTS}: missing or not a readable safetensors file "
                         f"({type(err).__name__}); re-export the model with `asr export`") from None
    weights = {k: v.to(map_location) for k, v in weights.items()}
    return {"config": meta["model"], "tokenizer": meta["tokenizer"], "model": weights,
            "decoding": meta.get("decoding", {})}


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
    return model.to(device).eval(), tokenizer_from_dict(state["tokenizer"])


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
