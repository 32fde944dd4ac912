"""Text files (manifests, transcripts, list files, LM text) read line by line as UTF-8, with
errors that name the file and the line.

A leading UTF-8 byte-order mark (Windows editors write one) is dropped; UTF-16 and bytes that
are not UTF-8 raise ValueError with `path:line` and how to convert the file. Lines end at
"\\n" only (a "\\r" before it is dropped), so a transcript holding other Unicode line
separators stays one line.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from pathlib import Path


def _not_utf8(path: Path, number: int, raw: bytes, err: UnicodeDecodeError) -> ValueError:
    return ValueError(f"{path}:{number}: not UTF-8 text (byte 0x{raw[err.start]:02x} at column "
                      f"{err.start + 1}); save the file as UTF-8, e.g. `iconv -f latin1 -t utf-8 "
                      f"{path.name} > {path.stem}.utf8{path.suffix}`")


def iter_lines(path: str | Path) -> Iterator[str]:
    """The lines of the UTF-8 text file `path`, without their line ends, read as needed."""
    path = Path(path)
    with path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            if number == 1:
                if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                    raise ValueError(f"{path}:1: UTF-16 text; save the file as UTF-8, e.g. `iconv -f "
                                     f"utf-16 -t utf-8 {path.name} > {path.stem}.utf8{path.suffix}`")
                raw = raw.removeprefix(codecs.BOM_UTF8)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise _not_utf8(path, number, raw, err) from None
            yield line.removesuffix("\n").removesuffix("\r")


def read_lines(path: str | Path) -> list[str]:
    """All lines of the UTF-8 text file `path` (see iter_lines)."""
    return list(iter_lines(path))


GIT_LFS_POINTER = "version https://git-lfs"


def git_lfs_pointer(path: str | Path) -> ValueError | None:
    """The error for a git-lfs pointer stored where a large file (a model, an LM) should be:
    a clone made without git-lfs has these small text files instead; else None."""
    try:
        with open(path, "rb") as f:
            start = f.read(len(GIT_LFS_POINTER))
    except OSError:
        return None
    if start != GIT_LFS_POINTER.encode():
        return None
    return ValueError(f"{path}: a git-lfs pointer, not the file itself; fetch it with "
                      "`git lfs pull` (git-lfs installed) in its repository")
