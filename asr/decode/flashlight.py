"""CTC beam search through torchaudio's flashlight ``ctc_decoder`` (flashlight-text + KenLM).

With a word-level n-gram LM the search is lexicon-constrained: every word it outputs is a
lexicon entry, spelled in our characters and closed by the word separator (``hello h e l l o |``;
our " " token is "|" to flashlight, which is also its ``sil_token``). The lexicon is by default
every word of the ARPA file's unigram section. Without an LM (and without a lexicon) the search
is lexicon-free, over characters only.

Two departures from a plain ``ctc_decoder`` call:
- flashlight closes a word only when it reads the separator after it, but our models emit no
  separator after the last word; the last word would then be dropped or bought with a spurious
  "|" on some blank frame. So in lexicon mode each utterance gets one extra frame on which "|"
  has probability 1 (log-prob 0): it closes the last word at no acoustic cost.
- flashlight's KenLM scores are log10; ``lm_weight`` here weighs natural-log LM probabilities,
  the unit of the acoustic log-probs (and of pyctcdecode's ``alpha``), and is multiplied by
  ln 10 before it is passed on.
"""

from __future__ import annotations

import logging
import math
import tempfile
from pathlib import Path

import torch

from asr.text import CharTokenizer

log = logging.getLogger(__name__)

SEP = "|"  # flashlight's name for our " " token (token files are whitespace-separated)
_LM_SPECIAL = {"<s>", "</s>", "<unk>"}
_CLOSED = -1e9  # log-prob of every other token on the appended separator frame


def arpa_unigrams(path: str | Path) -> list[str]:
    """The words of an ARPA file's ``\\1-grams:`` section, in file order (``.gz`` is read too)."""
    from asr.lm.arpa import arpa_lines

    words, inside = [], False
    for number, line in arpa_lines(path):
        if line == "\\1-grams:":
            inside = True
        elif inside and line.startswith("\\"):
            break
        elif inside:
            fields = line.split()  # "log10 prob <tab> word [<tab> backoff]"
            if len(fields) < 2:
                raise ValueError(f"{path}:{number}: a 1-gram line needs 'log10prob word', got {line!r}")
            words.append(fields[1])
    if not inside:
        raise ValueError(f"{path}: no \\1-grams: section (not an ARPA file?); for a binary KenLM "
                         "model pass the word list explicitly (lexicon=[...])")
    return words


def _load(lm_path, ctc_decoder, **options):
    """torchaudio's ctc_decoder(**options); KenLM's complaint about the LM as a ValueError naming it."""
    try:
        return ctc_decoder(**options)
    except (RuntimeError, IndexError, ValueError) as err:  # KenLM's parser raises them all
        if lm_path is None:
            raise
        reason = (str(err).strip().splitlines() or [type(err).__name__])[-1][:200]  # its last line says what
        raise ValueError(f"{lm_path}: KenLM cannot load it ({reason}); check the ARPA file (`asr lm ppl "
                         "LM TEXT` reads it and names a bad line) or build it again") from None


class FlashlightDecoder:
    """Flashlight CTC beam search behind our decoder interface (built once, reused per call).

    Args:
        tokenizer: the model's :class:`CharTokenizer` (blank id 0, " " the word separator).
        lm_path: ARPA (or KenLM binary) word LM; None decodes without an LM.
        lexicon: words the search may output. Default: with an LM, the LM's unigrams except
            <s>, </s>, <unk>; without one, None (lexicon-free). Words with characters outside
            the tokenizer are skipped (counted in the log). Lexicon words the LM does not know
            are scored as its <unk>.
        beam_size: hypotheses kept per frame. 50: torchaudio's default; the search is C++, so a
            wide beam is affordable (10 is ~4x faster and often nearly as accurate).
        beam_size_token: only the frame's this many likeliest tokens may extend a hypothesis;
            None = all V. Pruning to 10 cost accuracy with an LM (a lexicon word's next letter
            can be unlikely on its own), for a speed-up only without one.
        beam_threshold: drop hypotheses scoring more than this below the frame's best. 50 (as
            torchaudio): loose enough that ``beam_size`` is what prunes, as in our own beam.
        lm_weight: α on the natural-log LM probability (see module doc). 0.5, with
            ``word_score`` 1.0: pyctcdecode's defaults for character CTC models. Tune both on
            a dev set.
        word_score: β, added per output word (offsets the LM's per-word cost, which otherwise
            favours deletions). None: 1.0 with an LM, 0 without.
        unk_score: score of a letter string outside the lexicon, output as <unk>. -inf (the
            default): never; the output is then always a sequence of lexicon words.
        sil_score: added on every frame that reads the separator. 0: the CTC posteriors
            already price separators.
        log_add: True merges hypotheses that reach the same search state by adding their
            probabilities, summing over alignments as CTC and our prefix beam search do. With
            False (flashlight's default) they are merged by max; then, without an LM, the
            search returns just the greedy path. With an LM both gave the same WER in our tests.
        nbest: hypotheses the search keeps per utterance for :meth:`nbest` (at most).

    Lexicon mode (any LM, or an explicit lexicon) can only output lexicon words: a word
    outside it is replaced by the best-scoring sequence of lexicon words.
    """

    def __init__(
        self,
        tokenizer: CharTokenizer,
        lm_path: str | Path | None = None,
        lexicon: list[str] | None = None,
        beam_size: int = 50,
        beam_size_token: int | None = None,
        beam_threshold: float = 50.0,
        lm_weight: float = 0.5,
        word_score: float | None = None,
        unk_score: float = float("-inf"),
        sil_score: float = 0.0,
        log_add: bool = True,
        nbest: int = 1,
    ):
        try:
            import flashlight.lib.text.decoder  # noqa: F401  (torchaudio hides this ImportError)
            from torchaudio.models.decoder import ctc_decoder
        except (ImportError, RuntimeError) as err:
            raise ImportError("the flashlight decoder needs flashlight-text (and kenlm for an LM): "
                              "pip install flashlight-text kenlm") from err
        if " " not in tokenizer.vocab or SEP in tokenizer.vocab:
            raise ValueError(f"the vocabulary needs the word separator ' ' and no {SEP!r}")
        if lm_path is not None and not Path(lm_path).is_file():
            raise FileNotFoundError(f"language model {lm_path} not found: pass an ARPA word LM (build "
                                    "one with `asr lm build TEXT --out lm.arpa` or KenLM's `lmplz`), "
                                    "or decode without --lm")
        if lexicon is None and lm_path is not None:
            lexicon = [w for w in arpa_unigrams(lm_path) if w not in _LM_SPECIAL]
        self.sep_id = tokenizer.vocab.index(" ")
        self.lexicon_mode = lexicon is not None
        tokens = [SEP if t == " " else t for t in tokenizer.vocab]
        opts = dict(tokens=tokens, lm=None if lm_path is None else str(lm_path), nbest=nbest,
                    beam_size=beam_size, beam_size_token=beam_size_token, beam_threshold=beam_threshold,
                    lm_weight=lm_weight * math.log(10), sil_score=sil_score, log_add=log_add,
                    blank_token=tokenizer.vocab[0], sil_token=SEP)
        if not self.lexicon_mode:
            self._decoder = _load(lm_path, ctc_decoder, lexicon=None, **opts)
            return
        spellings = self._spell(tokenizer, lexicon)
        if word_score is None:
            word_score = 1.0 if lm_path is not None else 0.0
        with tempfile.TemporaryDirectory() as tmp:  # ctc_decoder reads the lexicon at once
            path = Path(tmp) / "lexicon.txt"
            path.write_text("".join(f"{w} {s}\n" for w, s in spellings.items()), encoding="utf-8")
            self._decoder = _load(lm_path, ctc_decoder, lexicon=str(path), word_score=word_score,
                                  unk_score=unk_score, **opts)

    @staticmethod
    def _spell(tokenizer: CharTokenizer, words: list[str]) -> dict[str, str]:
        """word -> flashlight spelling ("h e l l o |", or its pieces "he llo |"), for the words
        the tokenizer can spell."""
        spellings = {}
        for word in dict.fromkeys(words):
            tokens = tokenizer.encode(word)
            if tokens and tokenizer.decode(tokens) == word:
                spellings[word] = " ".join(tokenizer.vocab[t] for t in tokens) + f" {SEP}"
        tokenizer.oov.clear()
        skipped = len(dict.fromkeys(words)) - len(spellings)
        if skipped:
            log.warning("flashlight lexicon: skipped %d of %d words with characters outside the "
                        "tokenizer", skipped, skipped + len(spellings))
        if not spellings:
            raise ValueError("flashlight lexicon: no word can be spelled with the tokenizer")
        return spellings

    def _search(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list:
        """torchaudio's n-best ``CTCHypothesis`` lists, one per utterance."""
        emissions = log_probs.detach().to("cpu", torch.float32)  # (B, T, V)
        lengths = lengths.detach().to("cpu", torch.int64)  # (B,)
        if self.lexicon_mode:  # one more frame, "|" for sure: closes the last word (module doc)
            B, T, V = emissions.shape
            closing = emissions.new_full((V,), _CLOSED)
            closing[self.sep_id] = 0.0
            emissions = torch.cat([emissions, emissions.new_zeros(B, 1, V)], dim=1)  # (B, T + 1, V)
            emissions[torch.arange(B), lengths] = closing
            lengths = lengths + 1
        return self._decoder(emissions.contiguous(), lengths)

    def _convert(self, hyp, length: int) -> tuple[list[int], list[int]]:
        """Our ``(token_ids, frames)`` from a hypothesis: separators only between words."""
        ids, frames = [], []
        # hyp.tokens has repeats merged and blanks dropped, but keeps separators (and the
        # search's start and end states, both "|"). hyp.timesteps indexes the search path,
        # whose step 0 is the start state: frame = timestep - 1.
        for tok, step in zip(hyp.tokens.tolist(), hyp.timesteps.tolist(), strict=True):
            frame = step - 1
            if not 0 <= frame < length or (tok == self.sep_id and (not ids or ids[-1] == self.sep_id)):
                continue
            ids.append(tok)
            frames.append(frame)
        if ids and ids[-1] == self.sep_id:
            ids.pop()
            frames.pop()
        return ids, frames

    def decode_with_frames(
        self, log_probs: torch.Tensor, lengths: torch.Tensor
    ) -> list[tuple[list[int], list[int]]]:
        """Best ``(token_ids, start_frames)`` per utterance, like ``greedy_decode_with_frames``.

        ``log_probs`` is (B, T, V) with blank id 0 (any device, any float dtype), ``lengths``
        (B,). A token's frame is the first frame of its run in the best alignment.
        """
        hyps = self._search(log_probs, lengths)
        return [self._convert(h[0], n) if h else ([], [])
                for h, n in zip(hyps, lengths.tolist(), strict=True)]

    def nbest(
        self, log_probs: torch.Tensor, lengths: torch.Tensor, n: int | None = None
    ) -> list[list[tuple[list[int], float]]]:
        """Up to ``n`` (at most, and by default, the ``nbest`` it was built with) distinct
        ``(token_ids, score)`` per utterance, best first.

        The score is flashlight's: acoustic log-prob (best alignment; merged ones summed with
        ``log_add``) + α · ln P_LM (with </s>) + β per word.
        """
        out = []
        for hyps, length in zip(self._search(log_probs, lengths), lengths.tolist(), strict=True):
            seen: dict[tuple[int, ...], float] = {}
            for h in hyps:
                seen.setdefault(tuple(self._convert(h, length)[0]), h.score)
            out.append([(list(ids), score) for ids, score in seen.items()][:n])
        return out

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
        """Best token ids per utterance; (B, T, V) log-probs, (B,) lengths."""
        return [ids for ids, _ in self.decode_with_frames(log_probs, lengths)]
