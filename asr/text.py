"""English text normalisation and the character tokenizer.

The same `normalize` is used for training targets and for scoring, so a model is
never penalised for casing, punctuation or how a number was written.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections import Counter

log = logging.getLogger(__name__)

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = [(10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand")]
_ORDINAL_WORDS = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}


def number_to_words(n: int) -> str:
    """Spell a non-negative integer in English words: 342 -> 'three hundred forty two'."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = "" if n % 100 == 0 else " " + number_to_words(n % 100)
        return _ONES[n // 100] + " hundred" + rest
    for scale, name in _SCALES:
        if n >= scale:
            rest = "" if n % scale == 0 else " " + number_to_words(n % scale)
            return number_to_words(n // scale) + " " + name + rest
    raise AssertionError("unreachable")


def ordinal_words(n: int) -> str:
    """Spell an ordinal: 21 -> 'twenty first'."""
    words = number_to_words(n).split()
    last = words[-1]
    if last in _ORDINAL_WORDS:
        words[-1] = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


_MAX_SPELLED_DIGITS = 15  # longer numbers (past the trillions) are read digit by digit


def _spell_number(match: re.Match) -> str:
    digits, fraction, suffix = match.group(1).replace(",", ""), match.group(2), match.group(3)
    if len(digits) > _MAX_SPELLED_DIGITS:  # int() would also refuse thousands of digits
        head, value = " ".join(_ONES[int(d)] for d in digits[:-1]) + " ", int(digits[-1])
    else:
        head, value = "", int(digits)
    if suffix:
        return " " + head + ordinal_words(value) + " "
    words = head + number_to_words(value)
    if fraction:
        words += " point " + " ".join(_ONES[int(d)] for d in fraction)
    return " " + words + " "


_NUMBER = re.compile(r"(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(st|nd|rd|th)?(?!\d)")
_SYMBOLS = {"&": " and ", "%": " percent ", "+": " plus ", "@": " at "}
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'", "\u02bc": "'"})


def normalize(text: str) -> str:
    """Lower-case words with numbers spelled out, apostrophes kept inside words.

    'Dr. Smith's 2nd car costs $1,200!' -> "dr smith's second car costs one thousand two hundred"
    """
    text = unicodedata.normalize("NFKD", text.translate(_APOSTROPHES))
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    for symbol, words in _SYMBOLS.items():
        text = text.replace(symbol, words)
    text = _NUMBER.sub(_spell_number, text)
    text = re.sub(r"[^\w' ]+|_", " ", text)  # punctuation, hyphens, dashes -> space
    text = re.sub(r"(?<![a-z0-9])'|'(?![a-z0-9])", " ", text)  # quote marks, not apostrophes
    return " ".join(text.split())


class Tokenizer:
    """What every tokenizer shares (asr.tokenizers): id 0 is the CTC blank, `vocab` holds each
    token's text, and characters it cannot spell are skipped and counted in `self.oov` so
    callers can report them; they are never dropped silently."""

    BLANK = "<blank>"
    vocab: list[str]
    oov: Counter[str]

    @property
    def blank_id(self) -> int:
        return 0

    def __len__(self) -> int:
        return len(self.vocab)

    def report_oov(self, source: str) -> None:
        """Log (and reset) the characters skipped since the last report."""
        if self.oov:
            shown = ", ".join(f"{ch!r}×{n}" for ch, n in self.oov.most_common(20))
            log.warning("%s: skipped %d out-of-vocabulary characters: %s",
                        source, sum(self.oov.values()), shown)
            self.oov.clear()


class CharTokenizer(Tokenizer):
    """Characters of normalised English text; " " is the word separator."""

    def __init__(self, vocab: list[str] | None = None):
        self.vocab = vocab or [self.BLANK, " ", "'"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
        if self.vocab[0] != self.BLANK:
            raise ValueError(f"vocab[0] must be {self.BLANK!r}, got {self.vocab[0]!r}")
        self._ids = {ch: i for i, ch in enumerate(self.vocab)}
        self.oov = Counter()

    def encode(self, text: str) -> list[int]:
        ids = []
        for ch in text:
            token = self._ids.get(" " if ch.isspace() else ch)  # a tab or newline still parts words
            if token is None or token == 0:
                self.oov[ch] += 1
            else:
                ids.append(token)
        return ids

    def decode(self, ids: list[int]) -> str:
        return " ".join("".join(self.vocab[i] for i in ids if i != 0).split())

    def to_dict(self) -> dict:
        return {"type": "char", "vocab": list(self.vocab)}

    @classmethod
    def from_dict(cls, state: dict) -> CharTokenizer:
        if state.get("type") != "char":
            raise ValueError(f"unknown tokenizer type {state.get('type')!r}")
        return cls(list(state["vocab"]))


def basic_normalize(text: str) -> str:
    """Language-neutral: Unicode NFKC, lower case, punctuation to spaces (apostrophes inside
    words kept), single spaces. 'Don't STOP -- now!' -> "don't stop now"."""
    text = unicodedata.normalize("NFKC", text.translate(_APOSTROPHES)).lower()
    text = re.sub(r"[^\w' ]+|_", " ", text)
    text = re.sub(r"(?<!\w)'|'(?!\w)", " ", text)
    return " ".join(text.split())


# Scoring normalisers by name; "english" is the one training transcripts go through.
NORMALIZERS = {"none": lambda text: " ".join(text.split()), "basic": basic_normalize, "english": normalize}
