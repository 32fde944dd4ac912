"""Property-based tests (hypothesis): the text normalisers, the tokenizers' round trips, the LM
builder's normalisation and the scorer's error counts hold for any input, not just examples."""

import re
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from asr.lm import EOS, NgramLM, build_arpa
from asr.score import score
from asr.text import NORMALIZERS, CharTokenizer, normalize
from asr.tokenizers import train_tokenizer

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CHAR_VOCAB = set(CharTokenizer().vocab[1:])  # " ", "'", a-z
LETTERS = "abcdefghijklmnopqrstuvwxyz"

# ---------------------------------------------------------------------------------------------
# Text normalisers

# any code point but surrogates: emoji, controls, other scripts, combining marks, digits of all kinds
ANY_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=60)
# Latin text as English transcripts hold it: ASCII, accented letters that decompose, digits of any
# script, punctuation, spaces, controls and emoji (letters like ß, æ, ø do not decompose: not here)
LATIN_TEXT = st.text(st.one_of(
    st.characters(codec="ascii"), st.sampled_from("éèêëàâäçñõöüÿÉÀÇÑÖÜíóú’‘`ʼ“”–—…"),
    st.characters(categories=["Nd", "P", "Zs", "Cc"]),
    st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF)), max_size=60)
EDGE_CASES = ["", " ", "\x00\x1f\t\n", "!!!", "'''", "1,2", "2nd 3rd", "😀😀", "_", "٣.٥", "x'", "'x'",
              "9" * 5000, "1" * 40 + "th", "1,000,000,000,000,000,000"]


def _well_formed(out: str) -> None:
    """Single spaces between words, none at either end, nothing but word characters and '."""
    assert out == out.strip() and "  " not in out
    assert all(c in " '" or c.isalnum() for c in out), out


@pytest.mark.parametrize("name", sorted(NORMALIZERS))
@pytest.mark.parametrize("text", EDGE_CASES)
def test_normalisers_edge_cases(name, text):
    out = NORMALIZERS[name](text)
    assert NORMALIZERS[name](out) == out
    assert out == out.strip() and "  " not in out


def test_long_numbers_are_read_digit_by_digit():
    assert normalize("9" * 5000) == " ".join(["nine"] * 5000)  # int() refuses over 4300 digits
    assert normalize("1" * 16 + "th") == "one " * 15 + "first"
    assert normalize("1,000,000,000,000") == "one trillion"


@SETTINGS
@given(ANY_TEXT)
def test_english_normaliser_any_unicode(text):
    out = normalize(text)
    assert normalize(out) == out
    _well_formed(out)
    assert not any(c.isdecimal() or c.isupper() for c in out), out  # numbers spelled, lower case
    assert all(re.fullmatch(r"[a-z]'[a-z]", out[i - 1:i + 2]) for i, c in enumerate(out) if c == "'"), out
    assert all(c in CHAR_VOCAB or not c.isascii() for c in out)  # other scripts' letters: tokenizer OOV


@SETTINGS
@given(LATIN_TEXT)
def test_english_normaliser_output_is_in_the_character_vocabulary(text):
    out = normalize(text)
    assert set(out) <= CHAR_VOCAB, out
    assert normalize(out) == out


@SETTINGS
@given(ANY_TEXT)
def test_basic_normaliser(text):
    out = NORMALIZERS["basic"](text)
    assert NORMALIZERS["basic"](out) == out
    _well_formed(out)
    assert not any(c.isupper() for c in out), out


@SETTINGS
@given(ANY_TEXT)
def test_none_normaliser_only_collapses_whitespace(text):
    out = NORMALIZERS["none"](text)
    assert NORMALIZERS["none"](out) == out
    assert out == out.strip() and "  " not in out
    assert out.split() == text.split()


# ---------------------------------------------------------------------------------------------
# Tokenizers

TRAIN_TEXT = ["the quick brown fox jumps over the lazy dog", "pack my box with five dozen liquor jugs",
              "how vexingly quick daft zebras jump", "sphinx of black quartz judge my vow",
              "don't stop we're here and it's fine", "the cat sat on the mat with the other cat"] * 3
TOKENIZERS = {"chars": train_tokenizer("chars", TRAIN_TEXT),
              **{kind: train_tokenizer("sentencepiece", TRAIN_TEXT, vocab_size=40, piece_type=kind)
                 for kind in ("unigram", "bpe")}}

_RUN = st.text(LETTERS, min_size=1, max_size=8)
WORD = st.one_of(_RUN, st.builds(lambda a, b: f"{a}'{b}", _RUN, _RUN))
NORMALISED = st.lists(WORD, max_size=8).map(" ".join)  # normalised text over the training alphabet
NOISY = st.text(LETTERS + "'  \téжß1€", max_size=40)  # with characters no tokenizer knows


def _check_ids(tokenizer, ids: list[int]) -> None:
    assert all(0 < i < len(tokenizer) for i in ids)  # in range, never the blank
    assert all(tokenizer.vocab[i] != "<unk>" for i in ids)  # nor sentencepiece's unknown piece


@pytest.mark.parametrize("kind", sorted(TOKENIZERS))
@SETTINGS
@given(text=NORMALISED)
def test_tokenizer_round_trip_and_pieces_within_words(kind, text):
    tokenizer = TOKENIZERS[kind]
    assert normalize(text) == text  # the generated text is normalised: what training sees
    ids = tokenizer.encode(text)
    _check_ids(tokenizer, ids)
    assert tokenizer.decode(ids) == text
    assert not tokenizer.oov
    space = tokenizer.vocab.index(" ")
    pieces = [tokenizer.vocab[i] for i in ids]
    assert all(" " not in p and "\u2581" not in p for i, p in zip(ids, pieces) if i != space)
    words = "".join(" " if i == space else p for i, p in zip(ids, pieces))
    assert words == text  # separators exactly between words, so no piece spans two


@pytest.mark.parametrize("kind", sorted(TOKENIZERS))
@SETTINGS
@given(text=NOISY)
def test_tokenizer_skips_and_counts_unknown_characters(kind, text):
    tokenizer = TOKENIZERS[kind]
    tokenizer.oov.clear()
    known = set(LETTERS + "'")
    ids = tokenizer.encode(text)
    _check_ids(tokenizer, ids)
    kept = " ".join(w for w in ("".join(c for c in word if c in known) for word in text.split()) if w)
    assert tokenizer.decode(ids) == kept
    assert sum(tokenizer.oov.values()) == sum(not c.isspace() and c not in known for c in text)


# ---------------------------------------------------------------------------------------------
# LM builder

LM_WORDS = ["a", "b", "c", "d", "e"]


@st.composite
def lm_setups(draw):
    """(sentences, order, prune): a few short sentences over LM_WORDS, some empty."""
    sentences = draw(st.lists(st.lists(st.sampled_from(LM_WORDS), max_size=6).map(" ".join),
                              min_size=1, max_size=8))
    assume(any(sentences))
    order = draw(st.integers(2, 3))
    prune = draw(st.none() | st.lists(st.integers(0, 3), min_size=1, max_size=order).map(
        lambda p: [min(p[0], 1), *p[1:]]))
    return sentences, order, prune


def test_lm_needs_order_two():
    with tempfile.TemporaryDirectory() as folder, pytest.raises(ValueError, match="at least 2"):
        build_arpa(["a b"], 1, Path(folder) / "lm.arpa")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lm_setups())
def test_lm_every_context_is_normalised(setup):
    """P(w | context) over every word (</s> and <unk> included) sums to 1 for every context of
    known words, <s>, unknown ones and padding, with backoff where the n-gram is missing."""
    sentences, order, prune = setup
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "lm.arpa"
        build_arpa(sentences, order, path, prune)
        lm = NgramLM.from_arpa(path, cache=False)
    assert lm.order == order and set(lm.words) >= {w for s in sentences for w in s.split()} | {EOS}
    history = torch.tensor(range(lm.pad_id + 1))  # every word, then the padding
    contexts = torch.cartesian_prod(*[history] * (order - 1)).reshape(-1, order - 1)  # (C, order-1)
    vocab = torch.arange(len(lm.words))  # (V,)
    logp = lm.log_prob(contexts[:, None, :].expand(-1, len(vocab), -1), vocab.expand(len(contexts), -1))
    probs = logp.double().exp()  # (C, V)
    assert torch.allclose(probs.sum(1), torch.ones(len(contexts), dtype=torch.float64), atol=2e-5)
    assert (probs[:, lm.bos_id] < 1e-90).all()
    others = torch.arange(len(vocab)) != lm.bos_id
    assert (probs[:, others] > 0).all()


# ---------------------------------------------------------------------------------------------
# Scoring

SCORE_WORDS = ["a", "b", "c", "the", "cat"]


def _min_cost(ref: list, hyp: list, sub: int = 1, ins_del: int = 1) -> int:
    """Cheapest alignment of `ref` with `hyp`, substitutions costing `sub`, insertions and
    deletions `ins_del`: with 1, 1 the Levenshtein distance."""
    row = [ins_del * j for j in range(len(hyp) + 1)]
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], ins_del * i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(prev + (0 if r == h else sub), row[j] + ins_del, row[j - 1] + ins_del)
    return row[-1]


@st.composite
def transcripts(draw):
    """(refs, hyps): a few utterances over SCORE_WORDS; hypotheses near or far from their
    references, some missing, maybe one extra id."""
    words = st.lists(st.sampled_from(SCORE_WORDS), max_size=8)
    refs, hyps = {}, {}
    for n in range(draw(st.integers(1, 5))):
        uid = f"s{n % 2}-u{n}"
        ref = draw(words)
        refs[uid] = " ".join(ref)
        how = draw(st.sampled_from(["same", "edited", "random", "missing"]))
        if how == "same":
            hyps[uid] = refs[uid]
        elif how == "edited":
            keep = draw(st.lists(st.booleans(), min_size=len(ref), max_size=len(ref)))
            hyps[uid] = " ".join([w for w, k in zip(ref, keep) if k] + draw(words)[:2])
        elif how == "random":
            hyps[uid] = " ".join(draw(words))
    if draw(st.booleans()):
        hyps["extra"] = "stray words"
    return refs, hyps


@SETTINGS
@given(transcripts())
def test_score_counts(pair):
    refs, hyps = pair
    if not any(r.split() for r in refs.values()):
        with pytest.raises(ValueError, match="no reference words"):
            score(refs, hyps)
        return
    r = score(refs, hyps)
    assert r.ref_words == sum(len(t.split()) for t in refs.values())
    assert r.hits + r.substitutions + r.deletions == r.ref_words
    assert min(r.substitutions, r.deletions, r.insertions, r.hits) >= 0
    assert r.errors == sum(u.errors for u in r.utterances)
    assert r.wer == pytest.approx(r.errors / r.ref_words) and r.wer >= 0 and r.cer >= 0
    assert r.missing == [i for i in refs if i not in hyps] and r.extra == ["extra"] * ("extra" in hyps)
    char_cost = 0
    for u in r.utterances:
        ref, hyp = refs[u.id].split(), hyps.get(u.id, "").split()
        assert (u.ref_words, u.hyp_words) == (ref, hyp)
        hits = int(u.counts[0])
        assert hits + u.substitutions + u.deletions == len(ref)
        assert hits + u.substitutions + u.insertions == len(hyp)
        assert u.insertions + u.deletions + u.substitutions == u.errors
        assert u.errors >= _min_cost(ref, hyp)  # never fewer errors than the minimum edit distance
        # sclite's alignment is the cheapest with its costs: substitution 4, insertion/deletion 3
        assert 4 * u.substitutions + 3 * (u.deletions + u.insertions) == _min_cost(ref, hyp, 4, 3)
        marks = u.marks.split()  # the report's S/D/I marks are the counted errors
        assert [marks.count(m) for m in "SDI"] == [u.substitutions, u.deletions, u.insertions]
        char_cost += _min_cost(" ".join(ref), " ".join(hyp), 4, 3)
    assert r.char_hits + r.char_substitutions + r.char_deletions == r.ref_chars
    assert 4 * r.char_substitutions + 3 * (r.char_deletions + r.char_insertions) == char_cost


@SETTINGS
@given(transcripts())
def test_score_identical_texts_have_no_errors(pair):
    refs, _ = pair
    assume(any(r.split() for r in refs.values()))
    r = score(refs, dict(refs))
    assert (r.errors, r.wer, r.cer, r.sentence_errors) == (0, 0, 0, 0)
    assert r.hits == r.ref_words and r.char_hits == r.ref_chars


@pytest.mark.parametrize("name", sorted(NORMALIZERS))
@settings(max_examples=100, deadline=None)
@given(refs=st.lists(ANY_TEXT, min_size=1, max_size=3), hyps=st.lists(ANY_TEXT, min_size=1, max_size=3))
def test_score_any_unicode_with_each_normaliser(name, refs, hyps):
    """Arbitrary text scores or, when no reference word survives normalisation, says so."""
    norm = NORMALIZERS[name]
    refs, hyps = ({f"u{i}": t for i, t in enumerate(side)} for side in (refs, hyps))
    if not any(norm(t) for t in refs.values()):
        with pytest.raises(ValueError, match="no reference words"):
            score(refs, hyps, norm)
        return
    r = score(refs, hyps, norm)
    assert r.ref_words == sum(len(norm(t).split()) for t in refs.values())
    assert r.hits + r.substitutions + r.deletions == r.ref_words and r.wer >= 0
    assert score(refs, refs, norm).errors == 0
