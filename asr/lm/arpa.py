"""Reading ARPA n-gram language model files into numpy arrays."""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np

from asr.textfiles import git_lfs_pointer

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
_COUNT = re.compile(r"ngram\s+(\d+)\s*=\s*(\d+)")


@dataclass
class Arpa:
    """An ARPA model as arrays; word id = position in `words` (the 1-grams, in file order)."""

    words: list[str]
    ngrams: list[np.ndarray]  # per order k = 1..N: (n_k, k) int64 word ids
    log10_probs: list[np.ndarray]  # per order: (n_k,) float64
    log10_backoffs: list[np.ndarray]  # per order: (n_k,) float64, 0 where the file has none

    @property
    def order(self) -> int:
        return len(self.ngrams)


def arpa_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(line number, stripped text) of the non-blank lines of an ARPA file (gzipped when it ends
    in .gz). A file that is not such text (binary, a damaged gzip file, a git-lfs pointer)
    raises ValueError naming it and the line."""
    path = Path(path)
    if lfs := git_lfs_pointer(path):  # a plain text file, even where .gz is expected
        raise lfs
    opener = gzip.open if path.suffix == ".gz" else open
    number = 0
    try:
        with opener(path, "rb") as f:
            for number, raw in enumerate(f, 1):
                try:
                    line = raw.decode("utf-8").strip()
                except UnicodeDecodeError as err:
                    byte = raw[err.start]
                    raise ValueError(f"{path}:{number}: not UTF-8 text (byte 0x{byte:02x}); an ARPA LM is "
                                     "UTF-8 text: convert it (`iconv -f latin1 -t utf-8`) or build it again"
                                     ) from None
                if line:
                    yield number, line
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(f"{path}: cannot read it after line {number} ({err}); the file is damaged "
                         "(or not gzip): copy or build it again") from None



def read_arpa(path: str | Path) -> Arpa:
    """Parse an ARPA file (optionally .gz); a malformed one raises ValueError naming file and line."""
    path = Path(path)
    lines = arpa_lines(path)
    number, line = 0, ""

    def fail(message: str) -> NoReturn:
        raise ValueError(f"{path}:{number}: {message}" if number else f"{path}: {message}")

    def advance() -> None:
        nonlocal number, line
        number, line = next(lines, (number, None))

    while line != "\\data\\":  # text before \data\ is allowed
        advance()
        if line is None:
            fail("no \\data\\ header: not an ARPA file")
    counts: list[int] = []
    advance()
    while line is not None and (m := _COUNT.fullmatch(line)):
        if int(m[1]) != len(counts) + 1:
            fail(f"expected 'ngram {len(counts) + 1}=COUNT', got {line!r}")
        counts.append(int(m[2]))
        advance()
    if not counts:
        fail(f"expected 'ngram 1=COUNT', got {line!r}")

    words: list[str] = []
    word_ids: dict[str, int] = {}
    ngrams, probs, backoffs = [], [], []
    for k in range(1, len(counts) + 1):
        if line != f"\\{k}-grams:":
            fail(f"expected '\\{k}-grams:', got {line!r}")
        ids: list[int] = []
        section = number
        prob: list[float] = []
        backoff: list[float] = []
        advance()
        while line is not None and not line.startswith("\\"):
            fields = line.split()
            if len(fields) not in (k + 1, k + 2):
                fail(f"a {k}-gram line needs 'log10prob {' '.join(['word'] * k)} [log10backoff]', "
                     f"got {line!r}")
            try:
                prob.append(float(fields[0]))
                backoff.append(float(fields[k + 1]) if len(fields) == k + 2 else 0.0)
            except ValueError:
                fail(f"not a number in {line!r}")
            if k == 1:
                if fields[1] in word_ids:
                    fail(f"duplicate 1-gram {fields[1]!r}")
                word_ids[fields[1]] = len(words)
                words.append(fields[1])
            for word in fields[1:k + 1]:
                if (i := word_ids.get(word)) is None:
                    fail(f"word {word!r} is not in the 1-grams")
                ids.append(i)
            advance()
        if len(prob) != counts[k - 1]:
            number = section
            fail(f"the header says {counts[k - 1]} {k}-grams, the section has {len(prob)}")
        ngrams.append(np.array(ids, dtype=np.int64).reshape(-1, k))
        probs.append(np.array(prob))
        backoffs.append(np.array(backoff))
    if line != "\\end\\":
        fail(f"expected '\\end\\', got {'end of file' if line is None else repr(line)}")
    return Arpa(words, ngrams, probs, backoffs)
