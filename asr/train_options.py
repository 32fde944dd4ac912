"""`asr train`'s options: shared by `asr train` and `asr sweep`, and turned back into an exact
`asr train` command line for a configuration (a sweep's best trial)."""

from __future__ import annotations

import argparse
from dataclasses import fields

from asr.config import SIZES, ModelConfig, TrainConfig

MODEL_OPTIONS = [f for f in fields(ModelConfig) if f.name not in ("vocab_size", "sample_rate")]
CONFIG_ONLY = ("train_manifest", "dev_manifest", "model_overrides")  # set from other flags


def add_train_options(p: argparse.ArgumentParser) -> None:
    """--train, --dev, --exp-dir, the training options and the model overrides."""
    default = {f.name: f.default for f in fields(TrainConfig)}
    p.add_argument("--train", required=True, help="training manifest (JSONL)")
    p.add_argument("--dev", required=True, help="dev manifest, for model selection")
    p.add_argument("--exp-dir", required=True, help="where checkpoints and logs go")
    p.add_argument("--size", default=default["size"], choices=list(SIZES), help="named model size")
    p.add_argument("--epochs", type=int, default=default["epochs"])
    p.add_argument("--max-batch-seconds", type=float, default=default["max_batch_seconds"],
                   help="padded audio seconds per batch and process")
    p.add_argument("--lr", type=float, default=default["lr"], help="peak learning rate")
    p.add_argument("--warmup-steps", type=int, default=default["warmup_steps"])
    p.add_argument("--patience", type=int, default=default["patience"],
                   help="stop after this many epochs without dev WER improvement")
    p.add_argument("--seed", type=int, default=default["seed"])
    p.add_argument("--device", default=default["device"], help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--num-workers", type=int, default=default["num_workers"],
                   help="data loader processes")
    p.add_argument("--resume", action="store_true",
                   help="continue from the newest EXP_DIR/step-K.pt or epoch-N.pt")
    p.add_argument("--save-every-steps", type=int, default=default["save_every_steps"],
                   help="also write step-K.pt every this many steps (0: at epoch ends only)")
    p.add_argument("--max-steps", type=int, default=default["max_steps"],
                   help="stop after this step, e.g. before a job's time limit; --resume goes on")
    p.add_argument("--max-skipped-steps", type=int, default=default["max_skipped_steps"],
                   help="stop after this many steps in a row with a non-finite loss or gradient "
                        "(each such step is skipped and counted)")
    p.add_argument("--init-from", default=default["init_from"], metavar="CKPT",
                   help="start from this model's weights and CMVN (e.g. a model trained on other "
                        "data) with a fresh optimizer and schedule; same size and tokens")
    p.add_argument("--tokenizer", default=default["tokenizer"], choices=["chars", "sentencepiece"],
                   help="output units: characters, or sentencepiece pieces learnt from the training "
                        "transcripts (stored in the model; pieces allow --subsampling-factor 4)")
    p.add_argument("--vocab-size", type=int, default=default["vocab_size"], help="sentencepiece pieces")
    p.add_argument("--piece-type", default=default["piece_type"], choices=["unigram", "bpe"])
    p.add_argument("--augment", default=default["augment"], metavar="NAME=PROB,...",
                   help="waveform augmentation of training audio, each with a probability: speed, "
                        "noise, reverb, telephone, gain (e.g. speed=0.5,noise=0.4,reverb=0.3), or the "
                        "preset robust (recipes/english's mix); off by default")
    p.add_argument("--no-preflight", dest="preflight", action="store_false",
                   help="skip running the largest batch once before training (GPU)")
    model = p.add_argument_group("model (overrides of the named size)")
    for f in MODEL_OPTIONS:
        flag = f"--{f.name.replace('_', '-')}"
        if f.type == "bool":
            model.add_argument(flag, choices=["true", "false"], default=None)
        else:
            model.add_argument(flag, type={"int": int, "float": float, "str": str}[f.type])


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig that parsed `asr train` options ask for."""
    overrides = {f.name: getattr(args, f.name) for f in MODEL_OPTIONS
                 if getattr(args, f.name, None) is not None}
    overrides.update({k: v == "true" for k, v in overrides.items() if v in ("true", "false")})
    options = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    return TrainConfig(**{**options, "train_manifest": args.train, "dev_manifest": args.dev,
                          "model_overrides": overrides})


def train_command(cfg: TrainConfig) -> list[str]:
    """`asr train` arguments that rebuild `cfg`: the manifests, the exp dir and every option
    that differs from its default."""
    command = ["asr", "train", "--train", cfg.train_manifest, "--dev", cfg.dev_manifest]
    for f in fields(TrainConfig):
        value = getattr(cfg, f.name)
        if f.name in CONFIG_ONLY or (f.name != "exp_dir" and value == f.default):
            continue
        if f.name == "preflight":
            command.append("--no-preflight")
        elif f.name == "resume":
            command.append("--resume")
        else:
            command += [f"--{f.name.replace('_', '-')}", str(value)]
    for name, value in cfg.model_overrides.items():
        command += [f"--{name.replace('_', '-')}", str(value).lower() if isinstance(value, bool)
                    else str(value)]
    return command
