"""C++ parts of asr (plain C++17 with a C interface), compiled on first use and loaded with ctypes.

A source `NAME.cpp` is compiled once per source version with the system C++ compiler
(`$CXX`, else g++) into `$ASR_CACHE` (default ~/.cache/asr) as `NAME-<hash>.so`. Callers
fall back to a Python or torch path when `load_library` returns None (no compiler).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    return Path(os.environ.get("ASR_CACHE", Path.home() / ".cache" / "asr"))


def _compile(source: Path, target: Path) -> None:
    compiler = os.environ.get("CXX", "g++")
    if shutil.which(compiler) is None:
        raise OSError(f"no C++ compiler {compiler!r} on PATH (install one: apt-get install g++)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:  # concurrent builds never clash
        built = Path(tmp) / target.name
        cmd = [compiler, "-O3", "-std=c++17", "-shared", "-fPIC", "-pthread", str(source), "-o", str(built)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise OSError(f"compiling {source} failed:\n{result.stderr[-2000:]}")
        os.replace(built, target)


@cache
def load_library(source: Path) -> ctypes.CDLL | None:
    """The compiled `source`, building it if needed; None (with a warning) when it cannot be."""
    digest = hashlib.sha1(source.read_bytes()).hexdigest()[:16]
    library = cache_dir() / f"{source.stem}-{digest}.so"
    try:
        if not library.exists():
            log.info("compiling %s into %s", source.name, library)
            _compile(source, library)
        return ctypes.CDLL(str(library))
    except OSError as err:
        log.warning("%s is unavailable, using the slower fallback: %s", source.name, err)
        return None


def ptr(array: np.ndarray) -> int:
    """The address of a contiguous array's data, for a `void *` argument."""
    return array.ctypes.data
