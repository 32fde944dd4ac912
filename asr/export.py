"""`asr export MODEL --out DIR [--onnx]`: a released model folder, loadable without pickle.

DIR gets, each file written atomically (config.json last):
- model.safetensors: the model's state dict, fp32, CMVN statistics included;
- config.json: {"format": "asr-model", "version": 1, "model": ModelConfig, "tokenizer",
  "cmvn": a note on the statistics, "decoding": the checkpoint's tuned decoder settings,
  "files", "source"};
- the tuned LM's ARPA file when the checkpoint names one (`asr tune-lm`), "decoding"."lm"
  then being its name relative to DIR;
- model.onnx with --onnx (asr.onnx_model.export_onnx: waveform in, log-probs out).
Every command's `--model` takes DIR (asr.checkpoint.load_checkpoint), as does `asr export`.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path

from asr.atomic import atomic_path, write_text

log = logging.getLogger(__name__)


def add_parser(sub) -> None:
    """Add the `export` command to an argparse subparsers object."""
    p = sub.add_parser("export", help="write a released model folder (safetensors, config.json, "
                                      "its tuned LM, optionally ONNX)")
    p.add_argument("model", help="checkpoint (e.g. exp/best.pt) or an exported folder")
    p.add_argument("--out", required=True, help="the folder to write, e.g. exp/model")
    p.add_argument("--onnx", action="store_true",
                   help="also model.onnx, for onnxruntime (needs the onnx extra: pip install '.[onnx]')")


def _check_onnx_tools() -> None:
    import importlib.util

    missing = [m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise ValueError(f"--onnx needs {', '.join(missing)}; install the onnx extra "
                         "(pip install '.[onnx]') or export without --onnx")


def _copy_lm(lm: str, model_path: str | Path, out: Path) -> str:
    """Copy the ARPA file `lm` into `out`; its name there."""
    source, dest = Path(lm), out / Path(lm).name
    if not source.is_file():
        raise FileNotFoundError(f"{source}: the LM that {model_path} was tuned with is missing; "
                                "restore it, or run `asr tune-lm` again before exporting")
    if not dest.exists() or not dest.samefile(source):
        with atomic_path(dest) as tmp:
            shutil.copyfile(source, tmp)
    return dest.name


def export_model(model_path: str | Path, out_dir: str | Path, onnx: bool = False) -> Path:
    """Export the checkpoint or exported folder `model_path` into `out_dir`; returns out_dir."""
    from safetensors.torch import save_file

    from asr.checkpoint import CONFIG, FORMAT, ONNX, VERSION, WEIGHTS, load_checkpoint, model_from_state
    from asr.decoding import saved_lm

    if onnx:
        _check_onnx_tools()
    state = load_checkpoint(model_path)
    model, tokenizer = model_from_state(state)  # checks that the weights fit the config
    out = Path(out_dir)  # created by the first write (atomic_path)
    decoding = dict(state.get("decoding", {}))
    lm = saved_lm(state, model_path)
    if lm:
        decoding["lm"] = _copy_lm(lm, model_path, out)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(out / WEIGHTS) as tmp:
        save_file(tensors, tmp, metadata={"format": "pt"})
    files = {"weights": WEIGHTS}
    if onnx:
        from asr.onnx_model import export_onnx

        export_onnx(model, out / ONNX)
        files["onnx"] = ONNX
    elif (out / ONNX).exists():  # from an earlier export: it would not match these weights
        (out / ONNX).unlink()
        log.info("removed the stale %s (export again with --onnx to rebuild it)", out / ONNX)
    config = model.config
    meta = {
        "format": FORMAT, "version": VERSION, "model": config.to_dict(), "tokenizer": tokenizer.to_dict(),
        "cmvn": {"type": config.cmvn,
                 "note": "cmvn.mean and cmvn.inv_std in model.safetensors: features = (log-mel - mean) "
                         "* inv_std, each utterance's own mean removed first when type is 'utterance'"},
        "decoding": decoding, "files": files,
        "source": {"model": str(model_path),
                   **{k: state[k] for k in ("epoch", "dev_wer", "averaged_from") if k in state}},
    }
    write_text(out / CONFIG, json.dumps(meta, indent=1) + "\n")
    return out


def run(args) -> int:
    """Export, then say what was written."""
    out = export_model(args.model, args.out, onnx=args.onnx)
    print(f"exported {args.model} to {out}/: {', '.join(sorted(p.name for p in out.iterdir()))}",
          file=sys.stderr)
    return 0
