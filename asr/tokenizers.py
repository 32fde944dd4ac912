"""Tokenizers behind one interface: characters, or sentencepiece pieces (unigram or BPE).

Every tokenizer has id 0 for the CTC blank and the token " " between words, so the beam
searches, the flashlight lexicon and word timestamps find words the same way for both kinds;
`vocab` is each token's text, `encode(text)`/`decode(ids)` convert (characters outside the
vocabulary are skipped and counted, `report_oov` logs them), `to_dict()` stores it in a
checkpoint and `tokenizer_from_dict` rebuilds it.

Pieces are learnt by sentencepiece from the training transcripts' words, one word per line
and without sentencepiece's word-start marker, so that a piece never spans two words and the
word separator stays a token of its own: "the cat" -> [the] [ ] [c] [at]. The sentencepiece
model is stored inside the checkpoint (its serialised proto, base64).
"""

from __future__ import annotations

import base64
import io
from collections import Counter
from collections.abc import Iterable

from asr.text import CharTokenizer, Tokenizer

BLANK, SEPARATOR = CharTokenizer.BLANK, " "
KINDS = ("chars", "sentencepiece")


class SentencePieceTokenizer(Tokenizer):
    """Sentencepiece pieces within words, " " between them; id 0 blank, 1 " ", then the pieces."""

    def __init__(self, model_proto: bytes):
        import sentencepiece

        self.proto = model_proto
        self.sp = sentencepiece.SentencePieceProcessor(model_proto=model_proto)
        self.vocab = [BLANK, SEPARATOR] + [self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())]
        self.unk = self.sp.unk_id()
        self.oov = Counter()

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for word in text.split():
            pieces = self.sp.encode(word)
            if self.unk in pieces:  # characters training never saw: skipped and counted
                self.oov.update(ch for ch in word if self.sp.encode(ch) == [self.unk])
                pieces = self.sp.encode("".join(ch for ch in word if self.sp.encode(ch) != [self.unk]))
            if pieces:
                ids += ([1] if ids else []) + [p + 2 for p in pieces]
        return ids

    def decode(self, ids: list[int]) -> str:
        text = "".join(self.vocab[i] for i in ids if i > 0 and i - 2 != self.unk)
        return " ".join(text.replace("\u2581", " ").split())

    def to_dict(self) -> dict:
        return {"type": "sentencepiece", "model": base64.b64encode(self.proto).decode("ascii"),
                "vocab": list(self.vocab)}


def tokenizer_from_dict(state: dict):
    """The tokenizer a checkpoint stored (CharTokenizer.to_dict or SentencePieceTokenizer.to_dict)."""
    kind = state.get("type")
    if kind == "char":
        return CharTokenizer.from_dict(state)
    if kind == "sentencepiece":
        return SentencePieceTokenizer(base64.b64decode(state["model"]))
    raise ValueError(f"unknown tokenizer type {kind!r} in the checkpoint; it was written by a newer asr")


def train_tokenizer(kind: str, texts: Iterable[str], vocab_size: int = 256, piece_type: str = "unigram"):
    """A tokenizer for normalised `texts`: characters, or `vocab_size` sentencepiece pieces of
    `piece_type` ("unigram" or "bpe") learnt from their words."""
    if kind == "chars":
        return CharTokenizer()
    if kind != "sentencepiece":
        raise ValueError(f"unknown tokenizer {kind!r}; choose {' or '.join(KINDS)}")
    import sentencepiece

    words = [word for text in texts for word in text.split()]
    if not words:
        raise ValueError("no training text to learn sentencepiece pieces from")
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(words), model_writer=model, vocab_size=vocab_size, model_type=piece_type,
        character_coverage=1.0, add_dummy_prefix=False, split_by_whitespace=True, bos_id=-1, eos_id=-1,
        unk_id=0, hard_vocab_limit=False, num_threads=1, minloglevel=2)
    return SentencePieceTokenizer(model.getvalue())
