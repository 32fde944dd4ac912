import pytest

from asr.text import CharTokenizer, normalize, number_to_words, ordinal_words


@pytest.mark.parametrize("raw, expected", [
    ("Hello,   World!", "hello world"),
    ("It's 5 o'clock.", "it's five o'clock"),
    ("\u2018Quoted\u2019 words and \u201cdouble\u201d", "quoted words and double"),
    ("well-known: 3.5% of 1,200", "well known three point five percent of one thousand two hundred"),
    ("the 21st and 2nd", "the twenty first and second"),
    ("Caf\u00e9 na\u00efve", "cafe naive"),
    ("rock & roll", "rock and roll"),
    ("the 1990s at 3pm", "the one thousand nine hundred ninety s at three pm"),
    ("  \n\t ", ""),
])
def test_normalize(raw, expected):
    assert normalize(raw) == expected


def test_normalize_is_idempotent():
    text = "In 1984, Dr. O'Brien paid $3,000 for 42 items (twice)!"
    once = normalize(text)
    assert normalize(once) == once


@pytest.mark.parametrize("n, words", [
    (0, "zero"), (13, "thirteen"), (40, "forty"), (99, "ninety nine"), (100, "one hundred"),
    (101, "one hundred one"), (2024, "two thousand twenty four"),
    (1_000_000, "one million"), (3_000_017, "three million seventeen"),
])
def test_number_to_words(n, words):
    assert number_to_words(n) == words


def test_ordinals():
    assert [ordinal_words(n) for n in (1, 3, 5, 12, 20, 42, 100)] == [
        "first", "third", "fifth", "twelfth", "twentieth", "forty second", "one hundredth"]


def test_tokenizer_round_trip_and_blank():
    tok = CharTokenizer()
    text = "don't stop believing"
    ids = tok.encode(text)
    assert 0 not in ids
    assert tok.decode(ids) == text
    assert tok.vocab[0] == "<blank>" and tok.blank_id == 0
    assert CharTokenizer.from_dict(tok.to_dict()).vocab == tok.vocab


def test_tokenizer_counts_out_of_vocabulary(caplog):
    tok = CharTokenizer()
    assert tok.decode(tok.encode("a\u00e7b\u00e7")) == "ab"
    assert tok.oov == {"\u00e7": 2}
    tok.report_oov("train.jsonl")
    assert "train.jsonl: skipped 2 out-of-vocabulary characters" in caplog.text
    assert not tok.oov
