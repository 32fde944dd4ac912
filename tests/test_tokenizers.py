"""Sentencepiece pieces behind the tokenizer interface, and every consumer of tokens handling them:
both beam-search engines with an LM, the flashlight lexicon, word timestamps, training."""

import json

import pytest
import torch

from asr.decode import BeamSearchDecoder, greedy_decode
from asr.lm import NgramLM, build_arpa
from asr.text import CharTokenizer
from asr.tokenizers import SentencePieceTokenizer, tokenizer_from_dict, train_tokenizer
from asr.transcription import word_timings

TEXTS = ["the cat sat on the mat", "a dog ran to the park", "she reads a good book",
         "we eat bread and jam", "open the red door", "my fish can swim", "the sun is hot today",
         "he has a big hat", "put the cup down", "birds sing at dawn"] * 5


@pytest.fixture(scope="module", params=["unigram", "bpe"])
def pieces(request) -> SentencePieceTokenizer:
    return train_tokenizer("sentencepiece", TEXTS, vocab_size=40, piece_type=request.param)


def _spoken(tokenizer, text: str, frames_per_token: int = 3) -> torch.Tensor:
    """(1, T, V) log-probs that say `text`: each token on one frame, then blanks."""
    tokens = tokenizer.encode(text)
    lp = torch.full((len(tokens) * frames_per_token, len(tokenizer)), -12.0)
    lp[:, 0] = -0.01
    for i, token in enumerate(tokens):
        lp[i * frames_per_token, token], lp[i * frames_per_token, 0] = -0.01, -12.0
    return lp.log_softmax(-1)[None]


def test_pieces_round_trip_never_span_words_and_reload(pieces):
    assert pieces.vocab[:2] == ["<blank>", " "] and len(pieces) > len(CharTokenizer())
    for text in set(TEXTS):
        ids = pieces.encode(text)
        assert pieces.decode(ids) == text
        assert all(" " not in pieces.vocab[i] for i in ids if i != 1)
        assert ids.count(1) == len(text.split()) - 1
    assert any(len(pieces.vocab[i]) > 1 for text in TEXTS for i in pieces.encode(text))  # real pieces
    again = tokenizer_from_dict(json.loads(json.dumps(pieces.to_dict())))
    assert [again.encode(t) for t in TEXTS] == [pieces.encode(t) for t in TEXTS]
    assert pieces.decode(pieces.encode("the café")) == "the caf" and pieces.oov["é"] == 1
    pieces.oov.clear()


@pytest.mark.parametrize("engine", ["torch", "native"])
def test_beam_search_with_an_lm_reads_pieces(pieces, engine, tmp_path):
    build_arpa(TEXTS, 2, tmp_path / "lm.arpa")
    lm = NgramLM.from_arpa(tmp_path / "lm.arpa", cache=False)
    text = "the cat sat on the mat"
    lp = _spoken(pieces, text)
    lengths = torch.tensor([lp.shape[1]])
    decoder = BeamSearchDecoder(beam_size=8, lm=lm, tokenizer=pieces, engine=engine, alpha=0.5, beta=0.5)
    assert len(decoder.spellings) == len(lm.words) - 3  # every LM word but <s>, </s>, <unk>
    assert pieces.decode(decoder(lp, lengths)[0]) == text
    # the LM pulls an acoustically ambiguous word to the sentence it knows
    lp[0, 3 * len(pieces.encode("the cat sat on the")):, :] = lp[0, -1].clone()
    lp[0, -6, pieces.encode("hat")[0]] = lp[0, -6, pieces.encode("mat")[0]] = -0.7
    assert pieces.decode(decoder(lp, lengths)[0]).split()[:5] == text.split()[:5]


def test_flashlight_lexicon_spells_words_in_pieces(pieces, tmp_path):
    pytest.importorskip("flashlight.lib.text.decoder")
    from asr.decode.flashlight import FlashlightDecoder

    build_arpa(TEXTS, 2, tmp_path / "lm.arpa")
    decoder = FlashlightDecoder(pieces, lm_path=tmp_path / "lm.arpa", beam_size=8)
    text = "she reads a good book"
    lp = _spoken(pieces, text)
    assert pieces.decode(decoder(lp, torch.tensor([lp.shape[1]]))[0]) == text


def test_word_times_group_pieces_into_words(pieces):
    text = "birds sing at dawn"
    lp = _spoken(pieces, text)
    tokens = greedy_decode(lp, torch.tensor([lp.shape[1]]))[0]
    words = word_timings(lp[0], tokens, pieces, frame_seconds=0.04)
    assert [w["word"] for w in words] == text.split()
    starts = [3 * i for i, t in enumerate(pieces.encode(text)) if i == 0 or pieces.encode(text)[i - 1] == 1]
    assert [w["start"] for w in words] == [round(s * 0.04, 3) for s in starts]


def test_training_learns_pieces_and_stores_them_in_the_model(noise_corpus, tmp_path):
    from asr.checkpoint import load_model
    from asr.cli import main

    manifest = noise_corpus("train", 12)
    assert main(["train", "--train", str(manifest), "--dev", str(manifest),
                 "--exp-dir", str(tmp_path / "exp"), "--size", "tiny", "--epochs", "1",
                 "--max-batch-seconds", "8", "--num-workers", "0",
                 "--tokenizer", "sentencepiece", "--vocab-size", "8", "--subsampling-factor", "4"]) == 0
    model, tokenizer = load_model(tmp_path / "exp" / "best.pt")
    assert isinstance(tokenizer, SentencePieceTokenizer)
    assert model.config.vocab_size == len(tokenizer) and model.config.subsampling_factor == 4
    texts = [json.loads(line)["text"] for line in manifest.read_text().splitlines()]
    assert all(tokenizer.decode(tokenizer.encode(t)) == t for t in texts)
