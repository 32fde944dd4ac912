"""Our batched beam search with word n-gram shallow fusion."""

import itertools
import math

import pytest
import torch

from asr.decode import BeamSearchDecoder, greedy_decode_with_frames
from asr.lm import NgramLM, build_arpa
from asr.text import CharTokenizer

TOK = CharTokenizer()
ENGINES = ["torch", "native"]  # the tensor engine (GPU and CPU) and the compiled CPU engine
TEXT = ["the red cat sat", "a red hat", "the red dog ran", "my red car", "the cat ran"] * 4


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    path = tmp_path_factory.mktemp("lm") / "2gram.arpa"
    build_arpa(TEXT, 2, path)
    return NgramLM.from_arpa(path)


def _spell(segments: list[dict[str, float]], V: int = len(TOK)) -> torch.Tensor:
    """(1, T, V) log-probs: per segment a frame with the given character probabilities
    (the rest split over the other tokens), then a blank frame."""
    frames = []
    for probs in segments:
        frame = torch.full((V,), 1e-4)
        for ch, p in probs.items():
            frame[TOK.encode(ch)[0] if ch != "_" else 0] = p
        frames += [frame / frame.sum(), torch.full((V,), 1e-4).index_fill(0, torch.tensor([0]), 1.0)]
    return torch.stack([f / f.sum() for f in frames]).log()[None]


def _words(text: str) -> list[dict[str, float]]:
    return [{ch: 0.98} for ch in text]


# "the r?d cat": the vowel is 60/40 acoustically for "a" over "e"
AMBIGUOUS = _words("the r") + [{"a": 0.58, "e": 0.40}] + _words("d cat")


def _text(ids: list[int]) -> str:
    return TOK.decode(ids)


@pytest.mark.parametrize("engine", ENGINES)
def test_lm_overrules_weak_acoustics_only_with_weight(lm, engine):
    lp = _spell(AMBIGUOUS)
    lengths = torch.tensor([lp.shape[1]])
    acoustic = BeamSearchDecoder(beam_size=8, lm=lm, tokenizer=TOK, engine=engine, alpha=0.0, beta=0.0,
                                 oov_penalty=0.0)
    fused = BeamSearchDecoder(beam_size=8, lm=lm, tokenizer=TOK, engine=engine, alpha=1.0, beta=0.0)
    assert _text(acoustic(lp, lengths)[0]) == "the rad cat"
    assert _text(fused(lp, lengths)[0]) == "the red cat"
    acoustic.alpha = 1.0  # new weights take effect (asr tune-lm reuses one decoder)
    assert _text(acoustic(lp, lengths)[0]) == "the red cat"


def _ctc_log_prob(lp: torch.Tensor, labels: list[int]) -> float:
    """log P(labels | lp (T, V)) by the CTC forward algorithm (reference, float64)."""
    ext = [0]
    for label in labels:
        ext += [label, 0]
    alpha = torch.full((len(ext),), -math.inf, dtype=torch.float64)
    lp = lp.double()
    alpha[0] = lp[0, 0]
    if len(ext) > 1:
        alpha[1] = lp[0, ext[1]]
    for t in range(1, len(lp)):
        prev = alpha.clone()
        for s in range(len(ext)):
            terms = [prev[s]] + ([prev[s - 1]] if s >= 1 else [])
            if s >= 2 and ext[s] != 0 and ext[s] != ext[s - 2]:
                terms.append(prev[s - 2])
            alpha[s] = torch.logsumexp(torch.stack(terms), 0) + lp[t, ext[s]]
    return float(torch.logsumexp(alpha[-2:], 0)) if len(ext) > 1 else float(alpha[0])


@pytest.mark.parametrize("engine", ENGINES)
def test_fused_scores_are_ctc_plus_weighted_lm(lm, engine):
    """Every n-best score equals log P_ctc + alpha * ln P_lm(words, </s>) + beta * words
    (+ the OOV penalty per out-of-vocabulary word), all computed independently here."""
    alpha, beta, oov = 0.7, 1.5, -3.0
    lp = _spell(_words("a r") + [{"e": 0.5, "a": 0.3, "o": 0.19}] + _words("d h") +
                [{"a": 0.6, "u": 0.39}] + _words("t"))
    decoder = BeamSearchDecoder(beam_size=16, top_k=28, token_min_logp=-1e9, blank_skip=None,
                                preselect=None, lm=lm, tokenizer=TOK, engine=engine, alpha=alpha, beta=beta,
                                oov_penalty=oov)
    nbest = decoder.nbest(lp, torch.tensor([lp.shape[1]]))[0]
    assert _text(nbest[0][0]) == "a red hat"
    for ids, score in nbest[:6]:
        words = _text(ids).split()
        lm_ln = lm.sentence_log10(words) * math.log(10)
        oovs = sum(w not in lm.word_ids for w in words)
        expected = _ctc_log_prob(lp[0], ids) + alpha * lm_ln + beta * len(words) + oov * oovs
        assert score == pytest.approx(expected, abs=1e-3), _text(ids)


@pytest.mark.parametrize("engine", ENGINES)
def test_batch_with_lm_equals_one_by_one(lm, engine):
    utterances = [_spell(AMBIGUOUS), _spell(_words("my red car")), _spell(_words("a cat"))]
    T = max(u.shape[1] for u in utterances)
    batch = torch.cat([torch.nn.functional.pad(u, (0, 0, 0, T - u.shape[1])) for u in utterances])
    lengths = torch.tensor([u.shape[1] for u in utterances])
    decoder = BeamSearchDecoder(beam_size=6, lm=lm, tokenizer=TOK, engine=engine, alpha=0.8, beta=1.0)
    alone = [decoder(u, torch.tensor([u.shape[1]]))[0] for u in utterances]
    assert decoder(batch, lengths) == alone


@pytest.mark.parametrize("engine", ENGINES)
def test_out_of_vocabulary_words_pay_the_penalty_once(lm, engine):
    lp = _spell(_words("the zebra"))
    lengths = torch.tensor([lp.shape[1]])
    scores = {}
    for penalty in (0.0, -4.0):
        decoder = BeamSearchDecoder(beam_size=4, lm=lm, tokenizer=TOK, engine=engine, alpha=0.5, beta=0.0,
                                    oov_penalty=penalty)
        (ids, score), *_ = decoder.nbest(lp, lengths)[0]
        assert _text(ids) == "the zebra"  # lexicon-free: unseen words can still be spelled
        scores[penalty] = score
    assert scores[-4.0] - scores[0.0] == pytest.approx(-4.0, abs=1e-4)


@pytest.mark.parametrize("engine", ENGINES)
def test_token_frames_match_greedy_on_clear_speech(lm, engine):
    lp = _spell(_words("the cat"))
    lengths = torch.tensor([lp.shape[1]])
    decoder = BeamSearchDecoder(beam_size=4, lm=lm, tokenizer=TOK, engine=engine)
    assert decoder.decode_with_frames(lp, lengths) == greedy_decode_with_frames(lp, lengths)


@pytest.mark.parametrize("engine", ENGINES)
def test_exhaustive_small_problem_finds_the_best_fused_hypothesis(lm, engine):
    """Over all label sequences of a 3-frame, 4-token problem, the best fused score."""
    tokens = [0, TOK.encode("a")[0], TOK.encode(" ")[0], TOK.encode("e")[0]]
    g = torch.Generator().manual_seed(0)
    small = torch.randn(1, 3, 4, generator=g).log_softmax(-1)
    lp = torch.full((1, 3, len(TOK)), -1e4)
    lp[..., tokens] = small
    lp = lp.log_softmax(-1)
    alpha, beta = 0.6, 0.3
    decoder = BeamSearchDecoder(beam_size=64, top_k=28, token_min_logp=-1e9, blank_skip=None,
                                preselect=None, lm=lm, tokenizer=TOK, engine=engine, alpha=alpha, beta=beta,
                                oov_penalty=-2.0)
    (best_ids, best_score), *_ = decoder.nbest(lp, torch.tensor([3]))[0]
    candidates = {()}
    for n in range(1, 4):
        candidates |= set(itertools.product(tokens[1:], repeat=n))
    exact = []
    for labels in candidates:
        words = _text(list(labels)).split()
        raw_words = [w for w in "".join(TOK.vocab[t] for t in labels).split(" ") if w]
        if len(words) != len(raw_words):
            continue
        oov = sum(w not in lm.word_ids for w in words)
        exact.append(_ctc_log_prob(lp[0], list(labels)) + alpha * lm.sentence_log10(words)
                     * math.log(10) + beta * len(words) - 2.0 * oov)
    assert best_score == pytest.approx(max(exact), abs=1e-3)


def _noisy(text: str, g: torch.Generator, V: int = len(TOK)) -> torch.Tensor:
    """(T, V) log-probs spelling `text` unreliably: each character held for 1-3 frames with
    random confusions, then 0-2 blank-ish frames."""
    frames = []
    for ch in text:
        for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
            logits = torch.randn(V, generator=g)
            logits[TOK.encode(ch)[0]] += 4 * float(torch.rand(1, generator=g))
            frames.append(logits)
        for _ in range(int(torch.randint(0, 3, (1,), generator=g))):
            logits = torch.randn(V, generator=g)
            logits[0] += 3 + 6 * float(torch.rand(1, generator=g))
            frames.append(logits)
    return torch.stack(frames).log_softmax(-1)


@pytest.mark.parametrize("with_lm, threshold", [(True, 12.0), (True, 3.0), (False, 12.0)])
def test_compiled_engine_equals_tensor_engine(lm, with_lm, threshold):
    """The compiled CPU engine and the tensor engine (no pre-selection) give the same n-best
    lists, scores and token frames on noisy, LM-ambiguous input (the texts plus unseen words),
    also when a tight beam threshold leaves slots empty."""
    g = torch.Generator().manual_seed(0)
    texts = TEXT[:5] + ["the zebra sat on a red mat", "a cat a dog a hat", "my dog"]
    utterances = [_noisy(text, g) for text in texts]
    lengths = torch.tensor([len(u) for u in utterances])
    batch = torch.nn.utils.rnn.pad_sequence(utterances, batch_first=True)
    opts = dict(beam_size=8, lm=lm if with_lm else None, tokenizer=TOK, alpha=0.8, beta=0.5,
                oov_penalty=-3.0, token_min_logp=-6.0, beam_threshold=threshold)
    results = {}
    for engine in ENGINES:
        decoder = BeamSearchDecoder(engine=engine, preselect=None, **opts)
        results[engine] = decoder._search(batch, lengths, n=8)
    assert len({_text(h[0][0]) for h in results["native"]}) > 4  # varied, non-trivial outputs
    for native, tensor in zip(results["native"], results["torch"], strict=True):
        assert [(t, f) for t, f, _ in native] == [(t, f) for t, f, _ in tensor]
        assert [s for *_, s in native] == pytest.approx([s for *_, s in tensor], abs=1e-3)
