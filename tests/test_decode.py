import itertools
import math
from collections import defaultdict

import pytest
import torch

from asr.decode import BeamSearchDecoder, build_decoder, greedy_decode, greedy_decode_with_frames


def beam_search_nbest(log_probs, lengths, **opts):
    return BeamSearchDecoder(**opts).nbest(log_probs, lengths)


def prefix_beam_search(log_probs, lengths, **opts):
    return BeamSearchDecoder(**opts)(log_probs, lengths)

ENGINES = ["torch", "native"]  # the tensor engine (GPU and CPU) and the compiled CPU engine
EXACT = dict(top_k=100, token_min_logp=float("-inf"), blank_skip=None, preselect=None)  # no pruning


def _path_log_probs(path: list[int], V: int, p: float = 0.7) -> torch.Tensor:
    """(1, T, V) log-probs whose best path is ``path``."""
    probs = torch.full((len(path), V), (1 - p) / (V - 1))
    probs[torch.arange(len(path)), torch.tensor(path)] = p
    return probs.log()[None]


def _peaked(B: int, T: int, V: int, seed: int) -> torch.Tensor:
    """(B, T, V) log-probs peaked on one token a frame (blank 60% of the time)."""
    g = torch.Generator().manual_seed(seed)
    peak = torch.randint(1, V, (B, T), generator=g)
    peak[torch.rand(B, T, generator=g) < 0.6] = 0
    logits = torch.randn(B, T, V, generator=g)
    strength = 6 + 10 * torch.rand(B, T, generator=g)  # blank prob up to ~1 - 1e-6
    logits.scatter_add_(2, peak[..., None], strength[..., None])
    return logits.log_softmax(-1)


def _brute_force(probs: torch.Tensor) -> dict[tuple[int, ...], float]:
    """Exact log P(prefix) of a (T, V) posteriorgram, summing over every alignment."""
    T, V = probs.shape
    total: dict[tuple[int, ...], float] = defaultdict(float)
    for path in itertools.product(range(V), repeat=T):
        prefix = tuple(s for i, s in enumerate(path) if s != 0 and (i == 0 or path[i - 1] != s))
        total[prefix] += math.prod(probs[t, s].item() for t, s in enumerate(path))
    return {prefix: math.log(p) for prefix, p in total.items()}


def test_greedy_merges_repeats_and_drops_blanks():
    lp = _path_log_probs([1, 1, 0, 1, 2, 2, 0, 0, 3], V=4)
    assert greedy_decode(lp, torch.tensor([9])) == [[1, 1, 2, 3]]
    assert greedy_decode_with_frames(lp, torch.tensor([9])) == [([1, 1, 2, 3], [0, 3, 4, 8])]


def test_greedy_ignores_padding_frames():
    lp = _path_log_probs([1, 1, 0, 1, 2, 2, 0, 0, 3], V=4)
    batch = torch.cat([lp, lp, lp])  # (3, 9, 4)
    assert greedy_decode_with_frames(batch, torch.tensor([9, 5, 0])) == [
        ([1, 1, 2, 3], [0, 3, 4, 8]),
        ([1, 1, 2], [0, 3, 4]),
        ([], []),
    ]


@pytest.mark.parametrize("engine", ENGINES)
def test_beam_1_matches_greedy_on_peaked(engine):
    lp = _peaked(8, 50, 6, seed=0)
    lengths = torch.full((8,), 50)
    assert prefix_beam_search(lp, lengths, beam_size=1, engine=engine) == greedy_decode(lp, lengths)


@pytest.mark.parametrize("engine", ENGINES)
def test_beam_beats_greedy_on_textbook_case(engine):
    # P("") = 0.36 is the single best path, but P("a") = 0.64 over three alignments.
    lp = torch.tensor([[[0.6, 0.4], [0.6, 0.4]]]).log()
    assert greedy_decode(lp, torch.tensor([2])) == [[]]
    assert prefix_beam_search(lp, torch.tensor([2]), engine=engine) == [[1]]


@pytest.mark.parametrize("engine", ENGINES)
def test_beam_finds_exact_best_prefix(engine):
    greedy_wrong = 0
    for seed in range(6):
        g = torch.Generator().manual_seed(seed)
        lp = (torch.randn(1, 6, 3, generator=g)).log_softmax(-1)
        exact = _brute_force(lp[0].exp())
        best = max(exact, key=exact.get)
        (tokens, score), *_ = beam_search_nbest(lp, torch.tensor([6]), beam_size=64, **EXACT,
                                                engine=engine)[0]
        assert tuple(tokens) == best
        assert score == pytest.approx(exact[best], abs=1e-4)
        greedy_wrong += greedy_decode(lp, torch.tensor([6]))[0] != list(best)
    assert greedy_wrong > 0  # the seeds include cases where the best path misleads


@pytest.mark.parametrize("engine", ENGINES)
def test_blank_skip_keeps_blank_between_repeats(engine):
    lp = torch.tensor([[[0.1, 0.9], [0.9999, 0.0001], [0.1, 0.9]]]).log()
    (tokens, score), *_ = beam_search_nbest(lp, torch.tensor([3]), blank_skip=0.999, engine=engine)[0]
    assert tokens == [1, 1]
    assert score == pytest.approx(math.log(0.9 * 0.9999 * 0.9), abs=1e-6)  # only "a _ a"


@pytest.mark.parametrize("engine", ENGINES)
def test_blank_skip_matches_no_skip(engine):
    lp = _peaked(8, 120, 10, seed=1)
    lengths = torch.tensor([120, 120, 100, 90, 80, 70, 60, 50])
    assert (lp[..., 0] > math.log(0.999)).sum() > 100  # skipping really happens
    skip = beam_search_nbest(lp, lengths, blank_skip=0.999, engine=engine)
    full = beam_search_nbest(lp, lengths, blank_skip=None, engine=engine)
    for a, b in zip(skip, full, strict=True):
        assert a[0][0] == b[0][0]
        assert a[0][1] == pytest.approx(b[0][1], abs=1e-2)


@pytest.mark.parametrize("name", ["greedy", "beam"])
def test_batch_equals_one_by_one(name):
    decode = build_decoder(name)
    lp = _peaked(4, 60, 8, seed=2)
    lengths = torch.tensor([60, 33, 1, 0])
    alone = [decode(lp[i : i + 1, :n], torch.tensor([n]))[0] for i, n in enumerate(lengths)]
    assert decode(lp, lengths) == alone


def test_build_decoder_binds_options_and_rejects_bad_ones():
    lp = _peaked(2, 30, 5, seed=3)
    lengths = torch.tensor([30, 20])
    assert build_decoder("beam", beam_size=1)(lp, lengths) == greedy_decode(lp, lengths)
    with pytest.raises(ValueError, match="unknown decoder"):
        build_decoder("viterbi")
    with pytest.raises(ValueError, match="no option beam_width"):
        build_decoder("beam", beam_width=4)


@pytest.mark.parametrize("engine", ENGINES)
def test_wider_beam_never_loses_the_best_prefix_and_nbest_is_distinct(engine):
    """Beam 50 keeps everything beam 10 keeps on these inputs; n-best prefixes are unique
    (a hash collision would merge two different prefixes and break both)."""
    lp = _peaked(64, 120, 29, seed=7)
    lengths = torch.randint(40, 121, (64,), generator=torch.Generator().manual_seed(7))
    narrow = beam_search_nbest(lp, lengths, beam_size=10, engine=engine)
    wide = beam_search_nbest(lp, lengths, beam_size=50, engine=engine)
    for n, w in zip(narrow, wide, strict=True):
        assert w[0][1] >= n[0][1] - 1e-4
        assert len({tuple(tokens) for tokens, _ in w}) == len(w)


def test_compiled_engine_builds_into_the_cache_and_falls_back_without_a_compiler(tmp_path, monkeypatch):
    from asr import native as build
    from asr.decode import native

    def forget_builds():
        native.load_engine.cache_clear()
        build.load_library.cache_clear()

    lp = _peaked(3, 40, 6, seed=4)
    lengths = torch.tensor([40, 25, 10])
    expected = prefix_beam_search(lp, lengths, engine="torch")
    monkeypatch.setenv("ASR_CACHE", str(tmp_path / "built"))
    forget_builds()
    try:
        assert native.load_engine() is not None
        assert len(list((tmp_path / "built").glob("beam_search-*.so"))) == 1
        assert prefix_beam_search(lp, lengths, engine="native") == expected

        monkeypatch.setenv("ASR_CACHE", str(tmp_path / "empty"))
        monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
        forget_builds()
        assert native.load_engine() is None
        assert prefix_beam_search(lp, lengths) == expected  # auto: the tensor engine
        with pytest.raises(RuntimeError, match="could not be built"):
            prefix_beam_search(lp, lengths, engine="native")
    finally:
        forget_builds()
