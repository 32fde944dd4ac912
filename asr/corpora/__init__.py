"""The corpus registry. A corpus is a module `asr/corpora/<name>.py` with

    prepare_<name>(out_dir, **options) -> {split: manifest path}   idempotent; validates what it writes
    add_arguments(parser)                                           its options, dest = keyword names

`asr prepare NAME` finds it here by its file name, so adding a corpus never edits the CLI.
Modules are imported only when used (the synthetic corpora pull in torch).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

_NOT_CORPORA = {"common"}


def names() -> list[str]:
    """Every corpus that `asr prepare` knows, sorted."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__)
                  if not m.name.startswith("_") and m.name not in _NOT_CORPORA)


def get_corpus(name: str) -> ModuleType:
    if name not in names():
        raise ValueError(f"unknown corpus {name!r}; choose one of {', '.join(names())}")
    return importlib.import_module(f"asr.corpora.{name}")


def prepare(name: str, out_dir: str | Path, **options) -> dict[str, Path]:
    """Run corpus `name`'s prepare_<name>(out_dir, **options)."""
    return getattr(get_corpus(name), f"prepare_{name}")(out_dir, **options)


def option_parser(name: str) -> argparse.ArgumentParser:
    """The parser of `asr prepare NAME --out DIR [OPTIONS]`."""
    corpus = get_corpus(name)
    parser = argparse.ArgumentParser(prog=f"asr prepare {name}",
                                     description=(corpus.__doc__ or "").strip().split("\n")[0])
    parser.add_argument("--out", required=True, help="output folder: manifests and audio")
    corpus.add_arguments(parser)
    return parser
