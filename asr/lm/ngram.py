"""An ARPA n-gram LM held as sorted tensors, for bulk queries on the CPU or a GPU."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from asr.atomic import atomic_path
from asr.lm.arpa import BOS, EOS, UNK, Arpa, read_arpa
from asr.text import normalize

log = logging.getLogger(__name__)

LN10 = math.log(10)
_CACHE_VERSION = 1


class NgramLM:
    """Per order k = 1..N, the k-grams as sorted int64 keys sum_i id_i * base**(k-1-i) (oldest
    word first, base = len(words) + 1) with natural-log probabilities and backoffs (float32).
    Word ids are the 1-grams' positions in the ARPA file; `pad_id` = len(words) is in no table."""

    def __init__(self, words: list[str], keys: list[torch.Tensor], log_probs: list[torch.Tensor],
                 backoffs: list[torch.Tensor]):
        self.order = len(keys)
        self.words = list(words)
        self.word_ids = {w: i for i, w in enumerate(self.words)}
        missing = [w for w in (BOS, EOS, UNK) if w not in self.word_ids]
        if missing:
            raise ValueError(f"the LM has no {', '.join(missing)}")
        self.bos_id, self.eos_id, self.unk_id = (self.word_ids[w] for w in (BOS, EOS, UNK))
        self.pad_id = len(self.words)
        self.base = len(self.words) + 1
        if self.base ** self.order >= 2**62:
            raise ValueError(f"{len(self.words)} words ** order {self.order} do not fit int64 keys")
        self.keys = keys  # per order: (n_k,) int64, ascending
        self.log_probs = log_probs  # per order: (n_k,) float32, natural log
        self.backoffs = backoffs  # per order: (n_k,) float32, natural log (0 for the top order)

    @classmethod
    def from_tables(cls, arpa: Arpa) -> NgramLM:
        """The tensors of a parsed ARPA file; a missing <unk> gets log10 -100, as kenlm does."""
        words, ngrams, probs, backoffs = arpa.words, arpa.ngrams, arpa.log10_probs, arpa.log10_backoffs
        if UNK not in words:
            log.warning("the LM has no %s; giving it log10 probability -100 as kenlm does", UNK)
            words, ngrams = words + [UNK], [np.append(ngrams[0], [[len(words)]], 0), *ngrams[1:]]
            probs = [np.append(probs[0], -100.0), *probs[1:]]
            backoffs = [np.append(backoffs[0], 0.0), *backoffs[1:]]
        base = len(words) + 1
        if base ** len(ngrams) >= 2**62:
            raise ValueError(f"{len(words)} words ** order {len(ngrams)} do not fit int64 keys")
        keys, log_probs, log_backoffs = [], [], []
        for k, ids in enumerate(ngrams, 1):
            key = ids @ (base ** np.arange(k - 1, -1, -1, dtype=np.int64))  # (n_k,)
            order = np.argsort(key, kind="stable")
            key = key[order]
            if (key[1:] == key[:-1]).any():
                raise ValueError(f"duplicate {k}-gram in the LM")
            keys.append(torch.from_numpy(key))
            log_probs.append(torch.from_numpy((probs[k - 1][order] * LN10).astype(np.float32)))
            log_backoffs.append(torch.from_numpy((backoffs[k - 1][order] * LN10).astype(np.float32)))
        return cls(words, keys, log_probs, log_backoffs)

    @classmethod
    def from_arpa(cls, path: str | Path, cache: bool = True) -> NgramLM:
        """Read an ARPA file, or its cache `PATH.pt` if that was made from the file as it is now
        (same size and mtime); a fresh read rewrites the cache."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: LM not found; build one with `asr lm build TEXT "
                                    f"--out {path}`, or decode without --lm")
        cache_path = path.with_name(path.name + ".pt")
        stamp = [path.stat().st_size, path.stat().st_mtime_ns]
        if cache and cache_path.exists():
            try:
                state = torch.load(cache_path, map_location="cpu", weights_only=True)
                if state.get("version") == _CACHE_VERSION and state.get("source") == stamp:
                    return cls(state["words"], state["keys"], state["log_probs"], state["backoffs"])
                log.info("%s is stale; re-reading %s", cache_path, path)
            except Exception as err:  # a damaged cache is rebuilt, never fatal
                log.warning("ignoring unreadable LM cache %s: %s", cache_path, err)
        lm = cls.from_tables(read_arpa(path))
        if cache and stamp == [path.stat().st_size, path.stat().st_mtime_ns]:  # unchanged while read
            state = {"version": _CACHE_VERSION, "source": stamp, "words": lm.words, "keys": lm.keys,
                     "log_probs": lm.log_probs, "backoffs": lm.backoffs}
            try:
                with atomic_path(cache_path) as tmp:
                    torch.save(state, tmp)
            except OSError as err:
                log.warning("could not write the LM cache %s: %s", cache_path, err)
        return lm

    @property
    def device(self) -> torch.device:
        return self.keys[0].device

    def to(self, device: str | torch.device) -> NgramLM:
        """Move the tables to `device` (in place); returns self."""
        for tables in (self.keys, self.log_probs, self.backoffs):
            tables[:] = [t.to(device) for t in tables]
        return self

    def _lookup(self, k: int, key: torch.Tensor, table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(found, value in `table` or 0) for each key (...) among the k-grams."""
        keys = self.keys[k - 1]  # (n_k,)
        if len(keys) == 0:  # every k-gram pruned
            return torch.zeros_like(key, dtype=torch.bool), torch.zeros(key.shape, device=key.device)
        index = torch.searchsorted(keys, key).clamp_(max=len(keys) - 1)  # (...)
        found = keys[index] == key
        return found, torch.where(found, table[index], 0.0)

    def log_prob(self, context: torch.Tensor, word: torch.Tensor) -> torch.Tensor:
        """Natural-log P(word | context) with ARPA backoff: context (..., order-1) word ids, oldest
        first, left-padded with pad_id; word (...) ids (unk_id for unknown words) -> (...) float32."""
        logp = self.log_probs[0][word]  # (...) 1-gram keys are the word ids
        ngram_key, context_key = word, torch.zeros_like(word)  # (...) last k-gram, last k-1 words
        for k in range(2, self.order + 1):
            older = context[..., -(k - 1)]  # (...) the word k-1 places before `word`
            ngram_key = ngram_key + older * self.base ** (k - 1)
            context_key = context_key + older * self.base ** (k - 2)
            _, backoff = self._lookup(k - 1, context_key, self.backoffs[k - 2])  # 0 for no context
            found, prob = self._lookup(k, ngram_key, self.log_probs[k - 1])
            logp = torch.where(found, prob, logp + backoff)
        return logp

    def start_context(self, shape: int | tuple[int, ...] = ()) -> torch.Tensor:
        """(*shape, order-1) contexts [pad, ..., pad, <s>]: the start of a sentence."""
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        context = torch.full((*shape, self.order - 1), self.pad_id, dtype=torch.long, device=self.device)
        if self.order > 1:
            context[..., -1] = self.bos_id
        return context

    def advance(self, context: torch.Tensor, word: torch.Tensor) -> torch.Tensor:
        """context (..., order-1), word (...) -> the context after `word`: shifted left by one."""
        if self.order == 1:
            return context
        return torch.cat([context[..., 1:], word.unsqueeze(-1)], dim=-1)

    def ids(self, words: list[str]) -> list[int]:
        return [self.word_ids.get(w, self.unk_id) for w in words]

    def sentence_log10(self, words: list[str], bos: bool = True, eos: bool = True) -> float:
        """log10 P(words [</s>] | <s> or nothing), like kenlm's Model.score; OOVs score as <unk>."""
        ids = torch.tensor(self.ids(words) + ([self.eos_id] if eos else []), device=self.device)  # (T,)
        start = self.start_context() if bos else torch.full_like(self.start_context(), self.pad_id)
        history = torch.cat([start, ids])  # (order-1 + T,)
        positions = torch.arange(len(ids), device=self.device)[:, None] + torch.arange(self.order - 1,
                                                                                      device=self.device)
        return self.log_prob(history[positions], ids).double().sum().item() / LN10  # contexts (T, order-1)

    def evaluate(self, lines: Iterable[str], normalizer: Callable[[str], str] | None = normalize) -> dict:
        """Corpus totals over the non-empty lines, scored with </s> as kenlm does: sentences, words,
        oovs, log10 (the sum) and perplexity = 10 ** (-log10 / (words + sentences))."""
        sentences = n_words = oovs = 0
        total = 0.0
        for line in lines:
            words = (normalizer(line) if normalizer else line).split()
            if words:
                sentences += 1
                n_words += len(words)
                oovs += sum(w not in self.word_ids for w in words)
                total += self.sentence_log10(words)
        if not sentences:
            raise ValueError("no sentences to score")
        return {"sentences": sentences, "words": n_words, "oovs": oovs, "log10": total,
                "perplexity": 10 ** (-total / (n_words + sentences))}

    def perplexity(self, lines: Iterable[str], normalizer: Callable[[str], str] | None = normalize) -> float:
        """Corpus perplexity over the non-empty lines, </s> included, OOVs as <unk> (kenlm's)."""
        return self.evaluate(lines, normalizer)["perplexity"]
