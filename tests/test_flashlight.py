import logging
import math
import sys

import pytest
import torch

from asr.decode import greedy_decode, greedy_decode_with_frames
from asr.text import CharTokenizer

pytest.importorskip("flashlight.lib.text.decoder")
kenlm = pytest.importorskip("kenlm")
from asr.decode.flashlight import FlashlightDecoder, arpa_unigrams  # noqa: E402

TOK = CharTokenizer()
V = len(TOK)

# log10 probabilities; "the red" is far likelier than "the rad"; "bat" is not a word of the LM,
# "b4" is one the tokenizer cannot spell.
UNIGRAMS = [("-1.0", "<unk>", "0"), ("-99", "<s>", "-0.5"), ("-1.0", "</s>", "0"),
            ("-1.0", "the", "-0.3"), ("-1.5", "cat", "-0.3"), ("-1.2", "red", "-0.3"),
            ("-2.5", "rad", "-0.3"), ("-2.0", "dog", "-0.3"), ("-3.0", "b4", "-0.3")]
BIGRAMS = [("-0.2", "<s> the"), ("-0.3", "the cat"), ("-0.4", "the red"), ("-0.3", "red cat"),
           ("-0.3", "rad cat"), ("-0.2", "cat </s>"), ("-0.5", "the dog")]


@pytest.fixture(scope="module")
def arpa(tmp_path_factory):
    lines = ["\\data\\", f"ngram 1={len(UNIGRAMS)}", f"ngram 2={len(BIGRAMS)}", "", "\\1-grams:"]
    lines += ["\t".join(u) for u in UNIGRAMS] + ["", "\\2-grams:"] + ["\t".join(b) for b in BIGRAMS]
    path = tmp_path_factory.mktemp("lm") / "lm.arpa"
    path.write_text("\n".join(lines + ["", "\\end\\", ""]))
    model = kenlm.Model(str(path))  # a valid ARPA file, with the preference the tests rely on
    assert model.order == 2 and model.score("the red cat") > model.score("the rad cat") + 2
    return str(path)


def _log_probs(units, noise: float = 0.0, seed: int = 0, peak: float = 12.0) -> torch.Tensor:
    """(T, V) log-probs: per unit two frames peaked on it, then a blank frame.

    A unit is a character or a ``{char: logit}`` dict (several peaks: a near tie)."""
    rows = []
    for unit in units:
        row = torch.zeros(V)
        for ch, logit in (unit if isinstance(unit, dict) else {unit: peak}).items():
            row[TOK.encode(ch)[0]] = logit
        blank = torch.zeros(V)
        blank[0] = peak
        rows += [row, row, blank]
    logits = torch.stack(rows)  # (T, V)
    logits += noise * torch.randn(logits.shape, generator=torch.Generator().manual_seed(seed))
    return logits.log_softmax(-1)


def _decode_text(decoder, lp: torch.Tensor) -> str:
    return TOK.decode(decoder(lp[None], torch.tensor([lp.shape[0]]))[0])


def test_no_lm_matches_greedy():
    lp = _log_probs("the cat", noise=1.0)[None]  # (1, T, V)
    lengths = torch.tensor([lp.shape[1]])
    decoder = FlashlightDecoder(TOK, beam_size=10)
    assert decoder(lp, lengths) == greedy_decode(lp, lengths) == [TOK.encode("the cat")]
    assert decoder(lp.double(), lengths) == decoder(lp.half(), lengths) == decoder(lp, lengths)
    assert decoder.decode_with_frames(lp, lengths) == greedy_decode_with_frames(lp, lengths)


def test_separators_only_between_words():
    lp = _log_probs("  the  cat ")[None]  # greedy keeps leading, doubled and trailing separators
    lengths = torch.tensor([lp.shape[1]])
    assert greedy_decode(lp, lengths)[0] != TOK.encode("the cat")
    assert FlashlightDecoder(TOK)(lp, lengths) == [TOK.encode("the cat")]


def test_lm_breaks_an_acoustic_tie(arpa):
    lp = _log_probs(["t", "h", "e", " ", "r", {"a": 12.3, "e": 12.0}, "d", " ", "c", "a", "t"])
    assert TOK.decode(greedy_decode(lp[None], torch.tensor([lp.shape[0]]))[0]) == "the rad cat"
    assert _decode_text(FlashlightDecoder(TOK, arpa, lm_weight=0.0), lp) == "the rad cat"
    assert _decode_text(FlashlightDecoder(TOK, arpa, lm_weight=0.5), lp) == "the red cat"


def test_last_word_and_score_with_lm(arpa):
    # Our models emit no separator after the last word, and flashlight only closes a word on one;
    # with confident blanks (a "|" there costs ~60 > beam_threshold) the last word would be lost.
    lp = _log_probs("the cat", peak=60.0)[None]  # (1, T, V)
    lengths = torch.tensor([lp.shape[1]])
    decoder = FlashlightDecoder(TOK, arpa, lm_weight=0.5, word_score=1.0, log_add=False)
    assert decoder.decode_with_frames(lp, lengths) == greedy_decode_with_frames(lp, lengths)
    # score = best alignment's acoustic log-prob + 0.5 * natural-log LM prob (</s> included) + 1 per word
    [[(ids, score)]] = decoder.nbest(lp, lengths)
    expected = lp.max(-1).values.sum().item() + 0.5 * math.log(10) * kenlm.Model(arpa).score("the cat") + 2
    assert ids == TOK.encode("the cat") and score == pytest.approx(expected, abs=1e-3)


def test_lm_mode_outputs_lexicon_words_only(arpa, caplog):
    lp = _log_probs("the bat")
    assert _decode_text(FlashlightDecoder(TOK), lp) == "the bat"  # lexicon-free: any spelling
    with caplog.at_level(logging.WARNING):
        decoder = FlashlightDecoder(TOK, arpa)  # lexicon: the LM's words, "bat" is not one
    assert "skipped 1 of 6 words" in caplog.text  # "b4"
    words = _decode_text(decoder, lp).split()
    assert words and "bat" not in words and set(words) <= {"the", "cat", "red", "rad", "dog"}
    # An explicit lexicon decides what can be output; the LM scores "bat" as its <unk>.
    assert _decode_text(FlashlightDecoder(TOK, arpa, lexicon=["the", "cat", "bat"]), lp) == "the bat"


@pytest.mark.parametrize("with_lm", [False, True])
def test_batch_equals_one_by_one(arpa, with_lm):
    utts = [_log_probs(text, noise=2.0, seed=i) for i, text in enumerate(["the cat", "a red dog", "cat"])]
    T = max(u.shape[0] for u in utts)
    batch = torch.randn(len(utts), T, V).log_softmax(-1)  # (B, T, V): padding is junk
    for b, u in enumerate(utts):
        batch[b, : u.shape[0]] = u
    lengths = torch.tensor([u.shape[0] for u in utts])
    decoder = FlashlightDecoder(TOK, arpa if with_lm else None, beam_size=10)
    alone = [decoder.decode_with_frames(u[None], torch.tensor([u.shape[0]]))[0] for u in utts]
    assert decoder.decode_with_frames(batch, lengths) == alone
    assert [ids for ids, _ in alone] != [[]] * 3
    scores = [decoder.nbest(u[None], torch.tensor([u.shape[0]]))[0] for u in utts]
    assert decoder.nbest(batch, lengths) == scores  # the padding was never searched


def test_arpa_unigrams(arpa):
    assert arpa_unigrams(arpa) == [w for _, w, _ in UNIGRAMS]


def test_missing_lm_names_file_and_fix(tmp_path):
    missing = tmp_path / "nope.arpa"
    with pytest.raises(FileNotFoundError, match="nope.arpa.*lmplz.*without --lm"):
        FlashlightDecoder(TOK, missing)


def test_missing_flashlight_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "flashlight.lib.text.decoder", None)  # import -> ImportError
    with pytest.raises(ImportError, match="pip install flashlight-text"):
        FlashlightDecoder(TOK)
