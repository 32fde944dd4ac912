"""The decoder registry: every decoder behind one interface, and everyone reading its names."""

import argparse
import importlib.util
import subprocess
import sys

import pytest
import torch

from asr import benchmark, cli
from asr.decode import registry
from asr.decoding import decoder_settings
from asr.lm import build_arpa
from asr.text import CharTokenizer
from asr.tune import reweighted, weight_values

TOK = CharTokenizer()
TEXTS = ["the cat sat", "a dog", "cat"]
FLASHLIGHT = all(importlib.util.find_spec(m) is not None for m in ("flashlight", "kenlm"))


def _available(name: str) -> bool:
    return name != "flashlight" or FLASHLIGHT


def _batch(noise: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, V) log-probs of TEXTS (two frames peaked on each character, then a blank) with
    noise and junk padding, and (B,) lengths."""
    g = torch.Generator().manual_seed(0)
    rows = []
    for text in TEXTS:
        peaks = [c for ch in TOK.encode(text) for c in (ch, ch, 0)]
        logits = torch.zeros(len(peaks), len(TOK))
        logits[torch.arange(len(peaks)), torch.tensor(peaks)] = 10.0
        rows.append(logits + noise * torch.randn(logits.shape, generator=g))
    lengths = torch.tensor([len(r) for r in rows])
    batch = torch.randn(len(rows), int(lengths.max()), len(TOK), generator=g)  # junk padding
    for b, r in enumerate(rows):
        batch[b, : len(r)] = r
    return batch.log_softmax(-1), lengths


@pytest.fixture(scope="module")
def arpa(tmp_path_factory):
    path = tmp_path_factory.mktemp("lm") / "lm.arpa"
    build_arpa(["the cat sat", "a dog sat", "the dog", "a cat"], 2, path)
    return str(path)


CASES = [(name, lm) for name, spec in registry.DECODERS.items() for lm in [False, True][:1 + spec.uses_lm]]


@pytest.mark.parametrize(("name", "with_lm"), CASES)
def test_every_decoder_follows_the_interface(name, with_lm, arpa):
    if not _available(name):
        pytest.skip(f"{name} needs packages that are not installed")
    spec = registry.get_spec(name)
    decoder = registry.build_decoder(name, TOK, **({"lm": arpa} if with_lm else {}))
    lp, lengths = _batch()
    tokens = decoder(lp, lengths)
    assert len(tokens) == len(TEXTS) and any(tokens)
    with_frames = decoder.decode_with_frames(lp, lengths)
    assert [t for t, _ in with_frames] == tokens
    for (ids, frames), length in zip(with_frames, lengths.tolist(), strict=True):
        assert len(frames) == len(ids)
        assert all(0 <= f < length for f in frames)
        assert all(a < b for a, b in zip(frames, frames[1:]))  # strictly increasing
    # capabilities are what the object provides
    assert callable(getattr(decoder, "nbest", None)) == spec.nbest
    assert callable(getattr(decoder, "decode_with_frames", None)) == spec.frames
    if spec.nbest:
        nbest = decoder.nbest(lp, lengths)
        assert [hyps[0][0] for hyps in nbest] == tokens  # best first
        assert all(len(hyps) >= 1 and all(isinstance(s, float) for _, s in hyps) for hyps in nbest)
    assert spec.uses_lm == ("lm" in spec.option_names)
    assert all(hasattr(decoder, name) and name in spec.option_names for name in spec.settable)


def test_unknown_name_or_option_is_one_line_listing_the_choices():
    with pytest.raises(ValueError) as err:
        registry.build_decoder("viterbi")
    assert "\n" not in str(err.value)
    assert all(name in str(err.value) for name in registry.names())
    with pytest.raises(ValueError) as err:
        registry.build_decoder("beam", beam_width=4)
    assert "\n" not in str(err.value) and "beam_width" in str(err.value)
    assert all(o in str(err.value) for o in registry.get_spec("beam").option_names)
    with pytest.raises(ValueError, match="greedy decoder has no option beam_size; its options: none"):
        registry.build_decoder("greedy", beam_size=4)


def _choices(add, dest: str) -> tuple[list, argparse.ArgumentParser]:
    """The choices of option `dest` of the one command `add` adds, and that command's parser."""
    parser = argparse.ArgumentParser()
    add(parser.add_subparsers())
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    [command] = sub.choices.values()
    return next(a for a in command._actions if a.dest == dest).choices, command


def test_the_commands_take_their_choices_from_the_registry():
    choices, decode = _choices(cli._add_decode, "decoder")
    assert choices == ["auto", *registry.names()]
    flags = {s for a in decode._actions for s in a.option_strings}
    assert {o.flag for o in registry.all_options()} <= flags
    assert _choices(cli._add_tune_lm, "decoder")[0] == registry.names(uses_lm=True)
    assert _choices(benchmark.add_parser, "decoders")[0] == ["auto", *registry.names()]


def test_given_options_win_over_saved_ones_then_defaults(tmp_path):
    state = {"decoding": {"lm": "lm.arpa", "beam": {"alpha": 0.8, "beta": -1.0, "tuned_on": "dev"}}}
    ckpt = tmp_path / "best.pt"
    name, options = decoder_settings("auto", state, ckpt, beta=2.0, beam_size=None)
    assert name == "beam"
    assert options == {"beam_size": 10, "lm": str(tmp_path / "lm.arpa"), "alpha": 0.8, "beta": 2.0,
                       "oov_penalty": registry.OOV_PENALTY.default}
    assert decoder_settings("auto", state, ckpt, no_lm=True, beam_size=4) == ("greedy", {})
    assert decoder_settings("auto", {}, ckpt, lm="x.arpa") == ("greedy", {})  # no tuned weights
    name, options = decoder_settings("flashlight", state, ckpt, lm="other.arpa")
    assert options == {"beam_size": 10, "lm": "other.arpa", "alpha": 0.5, "beta": 1.0}


def test_tune_lm_grid_and_reweighting_follow_the_registry(arpa):
    assert list(weight_values("beam")) == ["alpha", "beta", "oov_penalty"]
    assert weight_values("flashlight", alpha=[1.0]) == {"alpha": [1.0], "beta": [-1.0, 0.0, 1.0, 2.0, 3.0]}
    decoder_for = reweighted("beam", TOK, lm=arpa, beam_size=4)
    decoder = decoder_for(alpha=1.5, beta=0.0, oov_penalty=-7.0)
    assert decoder is decoder_for(alpha=0.0, beta=2.0, oov_penalty=-5.0)  # one LM load
    assert (decoder.alpha, decoder.beta, decoder.oov_penalty) == (0.0, 2.0, -5.0)
    if FLASHLIGHT:
        decoder_for = reweighted("flashlight", TOK, lm=arpa, beam_size=4)
        assert decoder_for(alpha=1.0, beta=0.0) is not decoder_for(alpha=1.0, beta=0.0)


def test_the_registry_loads_without_torch():  # the CLI builds its parsers from it and starts fast
    code = "import sys, asr.decode.registry; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
