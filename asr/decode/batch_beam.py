"""CTC prefix beam search with word n-gram shallow fusion, on CPU or GPU.

A prefix carries two acoustic log-scores, `pb` (its alignments ending in blank) and `pnb`
(ending in its last token), and a fusion score; prefixes are ranked by

    logaddexp(pb, pnb) + alpha * log P_lm(words) + beta * words + oov_penalty * oov_words
        + look-ahead of the partial word

Lexicon-free: tokens are characters or word pieces (any unit set with a word-separator token); a
word is scored by the LM when the separator (or the utterance end) completes it, and a
partial word that stops being the prefix of any LM word pays `oov_penalty` at once. Until
it ends, a partial word carries a look-ahead, alpha * the best unigram log-prob of the LM
words it starts (of <unk> once off the lexicon), which its real LM score then replaces.
Identical prefixes reached two ways are merged (their scores summed). Hypotheses with the
same LM state (context words, partial word, last token) gain the same from any continuation
(up to how their mass splits between pb and pnb), so only the best of them is kept
(`recombine`).

Pruning: per frame only the `top_k` best non-blank tokens with log-prob >= `token_min_logp`
extend a prefix; runs of frames with P(blank) > `blank_skip` collapse into one frame
(blank only), which is exact up to the dropped non-blank mass; hypotheses more than
`beam_threshold` below the frame's best are dropped.

Two engines run this search. The tensor engine (here) extends every utterance of a batch
at once with tensor operations, so it runs vectorised on the GPU; identical prefixes are
found through a hash of the label sequence, and only the `preselect * beam` best
extensions go on to the lexicon and merge checks (None: all of them, exact search). The
compiled engine (`beam_search.cpp`, used on the CPU) runs the same search per utterance
without pre-selection; with `preselect=None` both give the same n-best lists (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from asr.decode.greedy import BLANK
from asr.decode.native import NativeBeamSearch, load_engine

NEG_INF = float("-inf")
ENGINES = ("auto", "torch", "native")  # auto: the compiled engine on CPU when it builds


# Prefix hashes: two independent 31-bit polynomial hashes (mod primes), packed into one
# int64, so a collision between two different token sequences has odds near 2^-62.
# (A single hash with a power-of-two base collided in practice on repetitive digit strings.)
P1, A1 = 2_147_483_647, 1_103_515_245
P2, A2 = 2_147_483_629, 2_042_371_387
HALF = 2**31
ROW_SALT = 6_700_417 * 1_000_003  # separates the rows of a batch in one sorted table
MAX_ROWS = 512  # utterances searched together: hash + row * ROW_SALT stays inside int64


def hash_extend(h: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
    """Hash of a token sequence extended by `token` (h = 0: the empty sequence)."""
    high = (h // HALF * A1 + token + 1) % P1
    low = (h % HALF * A2 + token + 1) % P2
    return high * HALF + low


def hash_tokens(tokens: list[int]) -> int:
    high = low = 0
    for token in tokens:
        high, low = (high * A1 + token + 1) % P1, (low * A2 + token + 1) % P2
    return high * HALF + low


def lm_state(context: torch.Tensor, word: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """Hash of what a hypothesis's future scores depend on: LM context (..., n-1), partial
    word (...) hash (-1: off the lexicon, where every word ends as <unk>) and last token."""
    h = hash_extend(hash_extend(hash_extend(torch.zeros_like(word), word // HALF), word % HALF), last)
    for i in range(context.shape[-1]):
        h = hash_extend(h, context[..., i])
    return h


def best_per_state(states: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
    """(B, N) mask of the best-scoring entry of each distinct state (the first on ties)."""
    keys, order = states.flatten().sort()  # (B*N,) equal states side by side
    starts = torch.cat([keys.new_ones(1, dtype=torch.bool), keys[1:] != keys[:-1]])
    group = torch.empty_like(order).scatter_(0, order, starts.cumsum(0) - 1)  # state number
    flat = score.flatten()
    best = flat.new_full(flat.shape, NEG_INF).scatter_reduce(0, group, flat, "amax")
    index = torch.arange(len(flat), device=flat.device)
    tied = torch.where(flat == best[group], index, len(flat))
    first = torch.full_like(best, len(flat), dtype=torch.long).scatter_reduce(0, group, tied, "amin")
    return (first[group] == index).view_as(score)


def _take(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """table (B, K, D) rows picked by index (B, M) -> (B, M, D)."""
    return table.gather(1, index[..., None].expand(-1, -1, table.shape[-1]))


@dataclass
class Beams:
    """The hypotheses, (B, K) each: acoustic scores, fusion score and the prefix's state."""

    pb: torch.Tensor  # float
    pnb: torch.Tensor  # float
    fusion: torch.Tensor  # float: alpha * LM + beta * words + OOV penalties so far
    prefix: torch.Tensor  # int64 hash of the whole label sequence
    last: torch.Tensor  # int64 last token, -1 for the empty prefix
    word: torch.Tensor  # int64 hash of the partial word (0: none)
    in_lexicon: torch.Tensor  # bool: the partial word is a prefix of some LM word
    end_gain: torch.Tensor  # float: fusion gain of ending the partial word here (0: none)
    ahead: torch.Tensor  # float: the partial word's LM look-ahead, inside `fusion` until it ends
    context: torch.Tensor  # int64 (B, K, order - 1) LM word ids, oldest first
    end_context: torch.Tensor  # int64 (B, K, order - 1) the context once the word ends

    def total(self) -> torch.Tensor:
        return torch.logaddexp(self.pb, self.pnb) + self.fusion  # (B, K)

    def take(self, index: torch.Tensor) -> Beams:
        """Gather hypotheses along dim 1 with `index` (B, K')."""
        flat = (f.gather(1, index) for f in (self.pb, self.pnb, self.fusion, self.prefix,
                                              self.last, self.word, self.in_lexicon, self.end_gain,
                                              self.ahead))
        return Beams(*flat, _take(self.context, index), _take(self.end_context, index))


def spell_words(lm, tokenizer) -> dict[int, list[int]]:
    """LM word id -> its tokens, for the LM's words the tokenizer can spell (special words and
    words with characters it lacks left out)."""
    spellings = {}
    for word_id, word in enumerate(lm.words):
        tokens = tokenizer.encode(word) if word not in ("<s>", "</s>", "<unk>") else []
        if tokens and tokenizer.decode(tokens) == word:
            spellings[word_id] = tokens
    tokenizer.oov.clear()  # unspellable LM words are not the training text's problem
    return spellings


class WordLexicon:
    """The LM's words as tensors of hashes: whole words (-> LM id) and all word prefixes."""

    def __init__(self, spellings: dict[int, list[int]], unigram: torch.Tensor, unk_id: int):
        hashes, ids, best = [], [], {}  # best: prefix hash -> max unigram log-prob below it
        unigram = unigram.tolist()
        for word_id, tokens in spellings.items():
            hashes.append(hash_tokens(tokens))
            ids.append(word_id)
            for n in range(1, len(tokens) + 1):
                prefix = hash_tokens(tokens[:n])
                best[prefix] = max(best.get(prefix, NEG_INF), unigram[word_id])
        order = sorted(range(len(hashes)), key=hashes.__getitem__)
        self.hashes = torch.tensor([hashes[i] for i in order], dtype=torch.long)  # (W,) sorted
        self.ids = torch.tensor([ids[i] for i in order], dtype=torch.long)  # (W,)
        self.prefixes = torch.tensor(sorted(best), dtype=torch.long)  # (P,) sorted
        self.best_unigram = torch.tensor([best[h] for h in sorted(best)])  # (P,) float
        self.unk_id, self.unk_unigram = unk_id, unigram[unk_id]

    def to(self, device) -> WordLexicon:
        for name in ("hashes", "ids", "prefixes", "best_unigram"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    @staticmethod
    def _find(table: torch.Tensor, query: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pos = torch.searchsorted(table, query).clamp_max(len(table) - 1)
        return pos, table[pos] == query

    def word_ids(self, word_hash: torch.Tensor) -> torch.Tensor:
        pos, found = self._find(self.hashes, word_hash)
        return torch.where(found, self.ids[pos], self.unk_id)

    def prefix_best(self, word_hash: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(is the prefix of an LM word, the best unigram log-prob of those words) per hash."""
        pos, found = self._find(self.prefixes, word_hash)
        return found, self.best_unigram[pos]


def collapse_blank_runs(log_probs: torch.Tensor, lengths: torch.Tensor, blank_skip: float | None):
    """Merge each run of frames with P(blank) > blank_skip into one blank-only frame.

    Returns log-probs (B, T', V), new lengths (B,) and, per kept frame, the index of the
    original frame it starts at (B, T'), for timestamps.
    """
    B, T, V = log_probs.shape
    frames = torch.arange(T, device=log_probs.device)
    valid = frames < lengths.to(log_probs.device)[:, None]  # (B, T)
    if blank_skip is None:
        return log_probs, lengths, frames.expand(B, T)
    skip = (log_probs[..., BLANK] > torch.log(torch.tensor(blank_skip))) & valid  # (B, T)
    run_start = skip & ~torch.cat([skip.new_zeros(B, 1), skip[:, :-1]], dim=1)
    keep = valid & (~skip | run_start)  # (B, T) frames that survive
    slot = keep.cumsum(1) - 1  # (B, T) index of the kept frame each frame folds into
    new_lengths = keep.sum(1)  # (B,)
    T2 = max(int(new_lengths.max()), 1)
    out = log_probs.new_full((B, T2 + 1, V), NEG_INF)  # slot T2 collects dropped frames
    target = torch.where(keep, slot, T2)  # (B, T)
    out.scatter_(1, target[..., None].expand(B, T, V), log_probs)
    blank_sum = log_probs.new_zeros(B, T2 + 1)  # summed blank log-prob of each run
    run_slot = torch.where(skip, slot, T2)
    blank_sum.scatter_add_(1, run_slot, torch.where(skip, log_probs[..., BLANK], 0.0))
    is_run = torch.zeros(B, T2 + 1, dtype=torch.bool, device=log_probs.device)
    is_run.scatter_(1, run_slot, skip)
    out[..., BLANK] = torch.where(is_run, blank_sum, out[..., BLANK])
    out[..., BLANK + 1:] = out[..., BLANK + 1:].masked_fill(is_run[..., None], NEG_INF)
    start_frame = torch.zeros(B, T2 + 1, dtype=torch.long, device=log_probs.device)
    start_frame.scatter_(1, target, frames.expand(B, T).contiguous())  # one kept frame per slot
    return out[:, :T2], new_lengths.cpu(), start_frame[:, :T2]


class BeamSearchDecoder:
    """CTC prefix beam search over a batch, optionally fused with a word n-gram LM.

    `lm` is an `asr.lm.NgramLM` (natural-log `log_prob(context, word)`); `tokenizer` spells
    its words and names the word separator. Call it like any decoder:
    `(log_probs (B, T, V), lengths (B,)) -> list of B token-id lists`. `engine`: "auto" (the
    compiled engine for CPU tensors when it builds, else the tensor engine), "torch" or
    "native" (the compiled one; an error if it cannot be built).
    """

    def __init__(self, beam_size: int = 10, top_k: int = 10, token_min_logp: float = -10.0,
                 blank_skip: float | None = 0.999, lm=None, tokenizer=None, alpha: float = 0.5,
                 beta: float = 1.0, oov_penalty: float = -5.0, separator: str = " ",
                 preselect: int | None = 2, engine: str = "auto", lookahead: bool = True,
                 recombine: bool = True, beam_threshold: float = 12.0):
        if beam_size < 1 or top_k < 1:
            raise ValueError(f"beam_size and top_k must be >= 1, got {beam_size} and {top_k}")
        if lm is not None and tokenizer is None:
            raise ValueError("an LM needs the tokenizer that spells its words")
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; choose from {ENGINES}")
        self.beam_size, self.top_k, self.preselect = beam_size, top_k, preselect
        self.token_min_logp, self.blank_skip = token_min_logp, blank_skip
        self.lm, self.alpha, self.beta, self.oov_penalty = lm, alpha, beta, oov_penalty
        self.spellings = spell_words(lm, tokenizer) if lm is not None else {}
        self.lexicon = (WordLexicon(self.spellings, lm.log_probs[0].cpu(), lm.unk_id)
                        if lm is not None else None)
        self.separator = tokenizer.vocab.index(separator) if tokenizer is not None else -1
        self.engine, self.lookahead, self.recombine = engine, lookahead, recombine
        self.beam_threshold = beam_threshold
        self._native = None

    def _native_engine(self):
        """The compiled CPU engine for this decoder's current settings, or None: torch engine."""
        if self.engine == "torch":
            return None
        settings = (self.beam_size, self.top_k, self.token_min_logp, self.blank_skip, self.alpha,
                    self.beta, self.oov_penalty, self.lookahead, self.recombine, self.beam_threshold)
        if self._native is None or self._native_settings != settings:  # e.g. asr tune-lm's grid
            lib = load_engine()
            if lib is None:
                if self.engine == "native":
                    raise RuntimeError("engine='native' asked for, but the compiled beam search "
                                       "could not be built (see the warning above)")
                self.engine = "torch"
                return None
            self._native = NativeBeamSearch(lib, self.beam_size, self.top_k, self.token_min_logp,
                                            self.blank_skip, self.lm, self.spellings, self.alpha,
                                            self.beta, self.oov_penalty, self.separator, self.lookahead,
                                            self.recombine, self.beam_threshold)
            self._native_settings = settings
        return self._native

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
        return [hyps[0][0] for hyps in self.nbest(log_probs, lengths, n=1)]

    def decode_with_frames(self, log_probs: torch.Tensor,
                           lengths: torch.Tensor) -> list[tuple[list[int], list[int]]]:
        """Best hypothesis per utterance as (token ids, frame where each token starts)."""
        return [(tokens, frames) for (tokens, frames, _), in
                self._search(log_probs, lengths, n=1)]

    def nbest(self, log_probs: torch.Tensor, lengths: torch.Tensor,
              n: int | None = None) -> list[list[tuple[list[int], float]]]:
        """Up to `n` (default beam_size) (token ids, score) per utterance, best first."""
        return [[(tokens, score) for tokens, _, score in hyps]
                for hyps in self._search(log_probs, lengths, n or self.beam_size)]

    def _to_device(self, device: torch.device) -> None:
        if self.lm is not None and self.lexicon.hashes.device != device:
            self.lm = self.lm.to(device)
            self.lexicon = self.lexicon.to(device)

    def _initial(self, B: int, device: torch.device) -> Beams:
        K = self.beam_size
        pb = torch.full((B, K), NEG_INF, device=device)
        pb[:, 0] = 0.0  # slot 0: the empty prefix; the others start empty (-inf)
        long = dict(dtype=torch.long, device=device)
        context = (self.lm.start_context((B, K)).to(device) if self.lm is not None
                   else torch.zeros(B, K, 0, **long))
        return Beams(pb=pb, pnb=torch.full_like(pb, NEG_INF), fusion=torch.zeros_like(pb),
                     prefix=-torch.arange(K, **long).expand(B, K).contiguous(),  # distinct dummies
                     last=torch.full((B, K), -1, **long), word=torch.zeros(B, K, **long),
                     in_lexicon=torch.ones(B, K, dtype=torch.bool, device=device),
                     end_gain=torch.zeros_like(pb), ahead=torch.zeros_like(pb), context=context,
                     end_context=context)

    def _set_word_end(self, beams: Beams, changed: torch.Tensor) -> None:
        """Recompute end_gain/end_context (LM queries) for the hypotheses whose partial word
        `changed` (B, K) on this frame; the others keep theirs. Every hypothesis is queried
        and the unchanged ones masked out, so a GPU never waits on the host."""
        has_word = beams.word != 0  # (B, K)
        word_id = self.lexicon.word_ids(beams.word)
        gain = self.alpha * self.lm.log_prob(beams.context, word_id) + self.beta
        beams.end_gain = torch.where(changed & has_word, gain, torch.where(changed, 0.0, beams.end_gain))
        end_context = torch.where(has_word[..., None], self.lm.advance(beams.context, word_id), beams.context)
        beams.end_context = torch.where(changed[..., None], end_context, beams.end_context)

    def _step(self, beams: Beams, blank_lp: torch.Tensor, frame_lp: torch.Tensor,
              cand_tok: torch.Tensor, cand_lp: torch.Tensor):
        """One frame: blank (B,), all log-probs (B, V), candidates (B, k) tokens and log-probs.

        Returns the new beams and, per new hypothesis, the slot it came from and the token it
        emitted on this frame (-1: none) on its most probable way here."""
        B, K = beams.pb.shape
        k = cand_tok.shape[1]
        acoustic = torch.logaddexp(beams.pb, beams.pnb)  # (B, K)
        # stay on the prefix: emit blank, or repeat the last token
        repeat_lp = frame_lp.gather(1, beams.last.clamp_min(0)).masked_fill(beams.last < 0, NEG_INF)
        stay_pb = acoustic + blank_lp[:, None]  # (B, K)
        stay_pnb = beams.pnb + repeat_lp
        # extend by a candidate token; repeating the last token needs a blank in between
        tok = cand_tok[:, None, :].expand(B, K, k)  # (B, K, k)
        ext_pnb = torch.where(tok == beams.last[..., None], beams.pb[..., None],
                              acoustic[..., None]) + cand_lp[:, None, :]
        ext_score = ext_pnb + beams.fusion[..., None]
        is_sep = tok == self.separator
        if self.lm is not None:
            ext_score = ext_score + torch.where(is_sep, (beams.end_gain - beams.ahead)[..., None], 0.0)
        ext_score, ext_pnb = ext_score.reshape(B, K * k), ext_pnb.reshape(B, K * k)
        # only the best `preselect * K` extensions go on to the costlier checks below
        if self.preselect and self.preselect * K < K * k:
            ext_score, chosen = ext_score.topk(self.preselect * K, dim=1)  # (B, M)
            ext_pnb = ext_pnb.gather(1, chosen)
        else:
            chosen = torch.arange(K * k, device=tok.device).expand(B, K * k)
        ext_parent, ext_tok = chosen // k, cand_tok.gather(1, chosen % k)  # (B, M)
        if self.lm is not None:  # a partial word that leaves the lexicon pays the OOV penalty
            ext_sep = ext_tok == self.separator
            ext_word = torch.where(ext_sep, 0, hash_extend(beams.word.gather(1, ext_parent), ext_tok))
            parent_in_lex = beams.in_lexicon.gather(1, ext_parent)
            is_prefix, best_unigram = self.lexicon.prefix_best(ext_word)
            ext_in_lex = ext_sep | (parent_in_lex & is_prefix)
            ext_score = ext_score + (parent_in_lex & ~ext_in_lex) * self.oov_penalty
            ext_ahead = torch.zeros_like(ext_score)
            if self.lookahead:  # the new partial word's look-ahead replaces the parent's
                unigram = torch.where(ext_in_lex, best_unigram, self.lexicon.unk_unigram)
                ext_ahead = torch.where(ext_sep, 0.0, self.alpha * unigram)
                parent_ahead = beams.ahead.gather(1, ext_parent)
                ext_score = ext_score + torch.where(ext_sep, 0.0, ext_ahead - parent_ahead)
        # an extension equal to a prefix already in the beam (A + c == B) merges into B's stay
        # (one flat sorted table for the batch: row r's hashes are offset by r * ROW_SALT)
        M = ext_tok.shape[1]
        row_offset = torch.arange(B, device=tok.device)[:, None] * ROW_SALT  # (B, 1)
        ext_prefix = hash_extend(beams.prefix.gather(1, ext_parent), ext_tok)  # (B, M)
        stay_sorted, stay_order = (beams.prefix + row_offset).flatten().sort()  # (B*K,)
        pos = torch.searchsorted(stay_sorted, (ext_prefix + row_offset).flatten()).clamp_max(B * K - 1)
        match = (stay_sorted[pos] == (ext_prefix + row_offset).flatten()).view(B, M)
        target = torch.where(match, stay_order[pos].view(B, M) % K, K)  # column K: no match
        merged = torch.full((B, K + 1), NEG_INF, device=tok.device)
        merged.scatter_(1, target, torch.where(match, ext_pnb, NEG_INF))  # one ext per stay
        merged_from = torch.zeros(B, K + 1, dtype=torch.long, device=tok.device)
        merged_from.scatter_(1, target, ext_parent)
        # a stay that got most of its mass from this frame's extension: its token starts here
        relabel = merged[:, :K] > torch.logaddexp(stay_pb, stay_pnb)  # (B, K)
        stay_pnb = torch.logaddexp(stay_pnb, merged[:, :K])
        score = torch.cat([torch.logaddexp(stay_pb, stay_pnb) + beams.fusion,
                           ext_score.masked_fill(match, NEG_INF)], dim=1)  # (B, K + M)
        if self.lm is not None and self.recombine:
            ext_context = torch.where(ext_sep[..., None], _take(beams.end_context, ext_parent),
                                      _take(beams.context, ext_parent))  # (B, M, n-1)
            states = torch.cat([
                lm_state(beams.context, torch.where(beams.in_lexicon, beams.word, -1), beams.last),
                lm_state(ext_context, torch.where(ext_in_lex, ext_word, -1), ext_tok)], dim=1)
            score = score.masked_fill(~best_per_state(states + row_offset, score), NEG_INF)
        if self.beam_threshold < float("inf"):
            score = score.masked_fill(score < score.amax(1, keepdim=True) - self.beam_threshold, NEG_INF)
        best = score.topk(K, dim=1).indices  # (B, K) over K stays, then M extensions

        is_ext = best >= K
        ext_index = (best - K).clamp_min(0)
        parent = torch.where(is_ext, ext_parent.gather(1, ext_index), best)  # (B, K)
        token = torch.where(is_ext, ext_tok.gather(1, ext_index), -1)
        old = beams.take(parent)
        pb = torch.where(is_ext, NEG_INF, stay_pb.gather(1, parent))
        pnb = torch.where(is_ext, ext_pnb.gather(1, ext_index), stay_pnb.gather(1, parent))
        new_score = score.gather(1, best)
        fusion = new_score - torch.logaddexp(pb, pnb)
        fusion = torch.where(torch.isfinite(fusion), fusion, old.fusion)
        prefix = torch.where(is_ext, ext_prefix.gather(1, ext_index), old.prefix)
        relabel = ~is_ext & relabel.gather(1, parent)
        back = torch.where(relabel, merged_from.gather(1, parent), parent)  # back-pointer
        token = torch.where(relabel, old.last, token)
        # slots left empty (-inf: pruned or too few candidates) hold no mass, and get distinct
        # negative hashes, never equal to a real prefix
        empty = torch.isinf(new_score)
        pb, pnb = pb.masked_fill(empty, NEG_INF), pnb.masked_fill(empty, NEG_INF)
        prefix = torch.where(empty, -1 - torch.arange(K, device=tok.device), prefix)
        new = Beams(pb=pb, pnb=pnb, fusion=fusion, prefix=prefix,
                    last=torch.where(is_ext, token, old.last), word=old.word,
                    in_lexicon=old.in_lexicon, end_gain=old.end_gain, ahead=old.ahead, context=old.context,
                    end_context=old.end_context)
        if self.lm is not None:
            new.word = torch.where(is_ext, ext_word.gather(1, ext_index), old.word)
            new.in_lexicon = torch.where(is_ext, ext_in_lex.gather(1, ext_index), old.in_lexicon)
            new.ahead = torch.where(is_ext, ext_ahead.gather(1, ext_index), old.ahead)
            sep = is_ext & (token == self.separator)
            new.context = torch.where(sep[..., None], old.end_context, old.context)
            self._set_word_end(new, is_ext)
        return new, back, token

    @torch.inference_mode()
    def _search(self, log_probs: torch.Tensor, lengths: torch.Tensor, n: int):
        """Per utterance, up to n (tokens, start frames, score), best first."""
        if len(log_probs) > MAX_ROWS:  # row offsets of the prefix hashes must fit in int64
            return [hyp for i in range(0, len(log_probs), MAX_ROWS)
                    for hyp in self._search(log_probs[i:i + MAX_ROWS], lengths[i:i + MAX_ROWS], n)]
        log_probs = log_probs.float()
        device = log_probs.device
        native = self._native_engine() if device.type == "cpu" else None
        if native is not None:
            hyps = native.search(log_probs.numpy(), lengths.cpu().numpy(), min(n, self.beam_size),
                                 torch.get_num_threads())
            return [row or [([], [], NEG_INF)] for row in hyps]
        self._to_device(device)
        lp, lengths, start_frame = collapse_blank_runs(log_probs, lengths.cpu(), self.blank_skip)
        B, T, V = lp.shape
        valid = torch.arange(T)[None, :] < lengths[:, None]  # (B, T)
        valid = valid.to(device)
        k = min(self.top_k, V - 1)
        cand_lp, cand_tok = lp[..., 1:].topk(k, dim=-1)  # (B, T, k)
        cand_tok += 1
        cand_lp = cand_lp.masked_fill((cand_lp < self.token_min_logp) | ~valid[..., None], NEG_INF)
        blank_lp = torch.where(valid, lp[..., BLANK], 0.0)  # past the end: certain blank
        frame_lp = lp.masked_fill(~valid[..., None], NEG_INF)

        # per frame, only as many candidates as some utterance has (one host sync per batch)
        live = torch.isfinite(cand_lp)  # (B, T, k)
        widths = live.sum(-1).amax(0).clamp_min(1).tolist()  # (T,)
        beams = self._initial(B, device)
        parents, emitted = [], []
        for t in range(T):
            width = widths[t]
            beams, parent, token = self._step(beams, blank_lp[:, t], frame_lp[:, t],
                                              cand_tok[:, t, :width], cand_lp[:, t, :width])
            parents.append(parent)
            emitted.append(token)
        final = beams.total()
        if self.lm is not None:
            eos = torch.full_like(beams.word, self.lm.eos_id)
            eos_lp = self.lm.log_prob(beams.end_context, eos)
            final = final + beams.end_gain - beams.ahead + self.alpha * eos_lp
        scores, order = final.topk(min(n, self.beam_size), dim=1)  # (B, n)
        return self._backtrack(order, scores, parents, emitted, start_frame)

    @staticmethod
    def _backtrack(slot, scores, parents, emitted, start_frame):
        """Follow the back-pointers from the final slots (B, n) to the first frame."""
        tokens = []
        for t in range(len(parents) - 1, -1, -1):
            tokens.append(emitted[t].gather(1, slot))  # (B, n)
            slot = parents[t].gather(1, slot)
        if not tokens:
            return [[([], [], float(s)) for s in row] for row in scores.tolist()]
        path = torch.stack(tokens[::-1], dim=-1).cpu().numpy()  # (B, n, T)
        starts = start_frame.cpu().numpy()  # (B, T)
        results = []
        for b, row in enumerate(scores.tolist()):
            hyps = []
            for i, score in enumerate(row):
                if score == NEG_INF:
                    continue
                emit = path[b, i] >= 0
                hyps.append((path[b, i][emit].tolist(), starts[b][emit].tolist(), score))
            results.append(hyps or [([], [], NEG_INF)])
        return results
