import random

import kenlm
import pytest
import torch

from asr.lm import NgramLM, build_arpa, read_arpa
from asr.lm import ngram as ngram_module

_NOUNS = ("dog cat bird king queen farmer child horse river city house field servant prophet stone tree "
          "door road ship sword sheep goat camel lamb wolf lion bread wine water oil gold silver cloak "
          "tent well gate wall tower mountain valley desert sea island garden vineyard temple altar "
          "scroll letter song voice fire cloud star moon sun wind rain harvest").split()
_VERBS = ("saw loved found took gave followed heard built left called carried blessed sent met "
          "remembered watched feared praised sold bought").split()
_ADJS = "old young great small good wise dark holy bright poor tall quiet strange golden".split()
_PREPS = "in on by near under from with".split()


def _sentences(n: int, seed: int) -> list[str]:
    """A small random grammar with Zipf-like word choice: repeated and rare n-grams alike."""
    rng = random.Random(seed)

    def pick(words):
        return rng.choices(words, weights=[1 / (i + 1) for i in range(len(words))])[0]

    def phrase():
        return " ".join(["the"] + [pick(_ADJS)] * (rng.random() < 0.4) + [pick(_NOUNS)])

    out = []
    for _ in range(n):
        words = [phrase(), pick(_VERBS), phrase()]
        if rng.random() < 0.5:
            words += [pick(_PREPS), phrase()]
        if rng.random() < 0.2:
            words = ["and", *words]
        out.append(" ".join(words).capitalize() + rng.choice([".", "!", ""]))
    return out


TRAIN = _sentences(400, seed=1)
HELD_OUT = _sentences(40, seed=2) + ["The zebra saw the old quantum king", "Dog dog dog the the",
                                     "the river king gave", "Zebra"]


@pytest.fixture(scope="module")
def lms(tmp_path_factory):
    """{name: (path, summary)}: a 3-gram, and a 4-gram pruned with minimum counts 0 2 2 3."""
    folder = tmp_path_factory.mktemp("lm")
    return {name: (folder / f"{name}.arpa", build_arpa(TRAIN, order, folder / f"{name}.arpa", prune))
            for name, order, prune in [("tri", 3, None), ("four", 4, [0, 2, 2, 3])]}


def test_build_summary_and_pruning(lms):
    tri, four = lms["tri"][1], lms["four"][1]
    assert tri["sentences"] == 400 and tri["pruned"] == [0, 0, 0]
    for d in tri["discounts"]:  # estimated from the counts, not the fallback
        assert d != [0.5, 1.0, 1.5] and all(0 < dk < k for k, dk in enumerate(d, 1))
    assert four["pruned"][1] > 0 and four["pruned"][3] > 0
    assert four["ngrams"][:3] != tri["ngrams"]
    arpa = read_arpa(lms["four"][0])
    assert [len(g) for g in arpa.ngrams] == four["ngrams"]
    assert "the" in arpa.words and "The" not in arpa.words  # normalised text
    for k in range(2, 5):  # every n-gram's prefix and suffix is in the model
        lower = {tuple(g) for g in arpa.ngrams[k - 2].tolist()}
        assert all(tuple(g[:-1]) in lower and tuple(g[1:]) in lower for g in arpa.ngrams[k - 1].tolist())


@pytest.mark.parametrize("name", ["tri", "four"])
def test_matches_kenlm(lms, name):
    path = lms[name][0]
    model, lm = kenlm.Model(str(path)), NgramLM.from_arpa(path, cache=False)
    assert model.order == lm.order
    sentences = [line.lower().strip(".!") for line in HELD_OUT]
    assert any(w not in lm.word_ids for s in sentences for w in s.split())
    for s in sentences:
        for bos, eos in [(True, True), (False, False)]:
            assert lm.sentence_log10(s.split(), bos, eos) == pytest.approx(model.score(s, bos, eos), abs=1e-4)
    theirs = 10 ** (-sum(model.score(s) for s in sentences) / sum(len(s.split()) + 1 for s in sentences))
    assert lm.perplexity(HELD_OUT) == pytest.approx(theirs, rel=1e-4)
    assert lm.perplexity(TRAIN) < lm.perplexity(HELD_OUT)


@pytest.mark.parametrize("name", ["tri", "four"])
def test_normalised(lms, name):
    lm = NgramLM.from_arpa(lms[name][0], cache=False)
    vocab = torch.arange(len(lm.words))
    contexts = [[], ["the"], ["the", "old"], ["saw", "the"], ["old", "the", "dog"], ["zebra", "the"],
                ["king", "king", "king"]]
    for words in contexts:
        context = lm.start_context()
        for w in words:
            context = lm.advance(context, torch.tensor(lm.word_ids.get(w, lm.unk_id)))
        probs = lm.log_prob(context.expand(len(vocab), -1), vocab).double().exp()
        assert probs.sum().item() == pytest.approx(1, abs=1e-4), words
        assert probs[lm.bos_id] < 1e-90 and probs[lm.unk_id] > 0 and probs[lm.eos_id] > 0


def test_log_prob_batched(lms):
    """A (batch, time) grid gives the numbers of one-at-a-time queries; pad never matches."""
    lm = NgramLM.from_arpa(lms["tri"][0], cache=False)
    words = torch.randint(0, len(lm.words), (5, 7), generator=torch.Generator().manual_seed(0))
    context = lm.start_context(5)  # (5, 2)
    assert context.shape == (5, 2) and (context[:, 0] == lm.pad_id).all()
    for t in range(7):
        batched = lm.log_prob(context, words[:, t])
        single = torch.stack([lm.log_prob(context[b], words[b, t]) for b in range(5)])
        assert torch.equal(batched, single)
        context = lm.advance(context, words[:, t])
    assert all(lm.pad_id not in k for k in (set(t.tolist()) for t in lm.keys[1:]))


def test_flashlight_kenlm(lms):
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import create_word_dict

    path = lms["tri"][0]
    model = kenlm.Model(str(path))
    words = ["<unk>", "the", "old", "king", "saw", "zebra", "dog"]  # zebra is not in the LM
    dictionary = create_word_dict({w: [list(w)] for w in words})
    fl, lm = KenLM(str(path), dictionary), NgramLM.from_arpa(path, cache=False)
    for sentence in (["the", "old", "king", "saw", "the", "dog"], ["the", "zebra", "saw"]):
        state, total = fl.start(False), 0.0
        for w in sentence:
            state, score = fl.score(state, dictionary.get_index(w))
            total += score
        state, score = fl.finish(state)
        assert total + score == pytest.approx(model.score(" ".join(sentence)), abs=1e-4)
        assert total + score == pytest.approx(lm.sentence_log10(sentence), abs=1e-4)


def test_cache(lms, tmp_path, monkeypatch):
    path = tmp_path / "lm.arpa"
    path.write_text(lms["tri"][0].read_text())
    first = NgramLM.from_arpa(path)
    assert (tmp_path / "lm.arpa.pt").exists()
    with monkeypatch.context() as m:
        m.setattr(ngram_module, "read_arpa", lambda p: pytest.fail("the cache was not used"))
        cached = NgramLM.from_arpa(path)
    assert cached.words == first.words
    for name in ("keys", "log_probs", "backoffs"):
        pairs = zip(getattr(first, name), getattr(cached, name), strict=True)
        assert all(torch.equal(a, b) for a, b in pairs)
    build_arpa(TRAIN[:200], 3, path)  # a different model in the same place
    changed = NgramLM.from_arpa(path)
    assert [len(k) for k in changed.keys] != [len(k) for k in first.keys]
    assert [len(k) for k in NgramLM.from_arpa(path).keys] == [len(k) for k in changed.keys]


def test_too_small_text(tmp_path):
    with pytest.raises(ValueError, match="too small for a 4-gram"):
        build_arpa(["hello", "", "Hi!"], 4, tmp_path / "lm.arpa")
    with pytest.raises(ValueError, match="too small"):
        build_arpa(["", " . "], 2, tmp_path / "lm.arpa")
    assert not (tmp_path / "lm.arpa").exists()
    with pytest.raises(ValueError, match="unigrams are never pruned"):
        build_arpa(TRAIN, 3, tmp_path / "lm.arpa", prune=[2, 2])


def test_tiny_text_falls_back_to_fixed_discounts(tmp_path, caplog):
    summary = build_arpa(["a b c", "a b d"], 3, tmp_path / "lm.arpa")
    assert summary["discounts"][2] == [0.5, 1.0, 1.5] and "using" in caplog.text
    lm = NgramLM.from_arpa(tmp_path / "lm.arpa", cache=False)
    model = kenlm.Model(str(tmp_path / "lm.arpa"))
    assert lm.sentence_log10(["a", "b", "e"]) == pytest.approx(model.score("a b e"), abs=1e-4)


GOOD = "\\data\\\nngram 1=3\nngram 2=1\n\n\\1-grams:\n-1.0\t<s>\t-0.5\n-0.5\t</s>\n-0.5\t<unk>\n\n" \
       "\\2-grams:\n-0.2\t<s> </s>\n\n\\end\\\n"


@pytest.mark.parametrize("old, new, line", [
    ("ngram 2=1", "ngram 2=x", 3),
    ("-0.5\t</s>", "-0.5", 7),
    ("-0.5\t<unk>", "oops\t<unk>", 8),
    ("<s> </s>", "<s> zebra", 11),
    ("ngram 2=1", "ngram 2=2", 10),
    ("\\2-grams:", "\\3-grams:", 10),
    ("\\end\\\n", "", 11),
])
def test_malformed_arpa(tmp_path, old, new, line):
    path = tmp_path / "bad.arpa"
    path.write_text(GOOD)
    assert NgramLM.from_arpa(path, cache=False).sentence_log10([]) == pytest.approx(-0.2)
    path.write_text(GOOD.replace(old, new))
    with pytest.raises(ValueError, match=f"{path}:{line}: "):
        NgramLM.from_arpa(path)
    assert not (tmp_path / "bad.arpa.pt").exists()
