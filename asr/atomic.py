"""Atomic file writes: readers see the old file or the whole new one, never a part."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_path(path: str | Path, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it into place if the block succeeds (flushed
    to disk first when `durable`, so it also survives a power cut), delete it if the block
    raises. A killed process leaves the temporary (see `remove_leftovers`), never a partial
    `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _default_mode())  # mkstemp makes 0600 files
        if durable:
            _fsync(tmp)
        os.replace(tmp, path)
        if durable:
            _fsync(path.parent)  # the rename itself
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _fsync(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_leftovers(folder: str | Path, name_glob: str = "*") -> list[Path]:
    """Delete the temporaries that killed writers of `folder/<name_glob>` left; returns them."""
    leftovers = sorted(Path(folder).glob(f".{name_glob}.*"))
    for leftover in leftovers:
        leftover.unlink()
    return leftovers


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
