"""The decoders by name: each one's factory, options and capabilities, declared once, here.

Every decoder is called as ``decoder(log_probs (B, T, V), lengths (B,)) -> B token-id lists``
(blank id 0; repeats merged, blanks removed) and gives ``decode_with_frames`` (each token with
the frame it starts on; all of ours do, see `frames`); those with the n-best capability also
give ``nbest``. The CLI, `asr benchmark`, `asr tune-lm` and scripts/bench_decode.py take names,
options and choices from here: a new decoder is its own module plus one entry in DECODERS.
No torch at import time (the CLI builds its parsers from this module and starts fast).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch


class Decoder(Protocol):
    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]: ...

    def decode_with_frames(self, log_probs: torch.Tensor,
                           lengths: torch.Tensor) -> list[tuple[list[int], list[int]]]: ...


class NBestDecoder(Decoder, Protocol):
    def nbest(self, log_probs: torch.Tensor, lengths: torch.Tensor,
              n: int | None = None) -> list[list[tuple[list[int], float]]]: ...


@dataclass(frozen=True)
class Option:
    """A decoder setting: `--NAME` on the command line, a keyword of `build_decoder`."""

    name: str
    type: type
    default: Any
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class DecoderSpec:
    """A decoder: `factory(tokenizer, **options)` builds it, every option given.

    uses_lm: it takes a word LM (option "lm"); nbest: it gives `nbest`; frames: it gives
    `decode_with_frames` (all of ours do); settable: options that can be changed on a built
    decoder by setting the attribute of that name (`asr tune-lm` then reweighs one decoder
    instead of building one per weight)."""

    name: str
    help: str
    factory: Callable[..., Decoder]
    options: tuple[Option, ...] = ()
    uses_lm: bool = False
    nbest: bool = False
    frames: bool = True
    settable: tuple[str, ...] = ()

    @property
    def option_names(self) -> list[str]:
        return [o.name for o in self.options]


BEAM_SIZE = Option("beam_size", int, 10, "hypotheses kept per frame")
LM = Option("lm", str, None, "word n-gram LM (ARPA file)")
ALPHA = Option("alpha", float, 0.5, "LM weight")
BETA = Option("beta", float, 1.0, "word insertion bonus")
OOV_PENALTY = Option("oov_penalty", float, -5.0, "score of a word outside the LM's vocabulary")


def _greedy(tokenizer) -> Decoder:
    from asr.decode.greedy import GreedyDecoder

    return GreedyDecoder()


def _beam(tokenizer, beam_size, lm, alpha, beta, oov_penalty) -> Decoder:
    from asr.decode.batch_beam import BeamSearchDecoder
    from asr.lm import NgramLM

    return BeamSearchDecoder(beam_size=beam_size, lm=NgramLM.from_arpa(lm) if lm else None,
                             tokenizer=tokenizer, alpha=alpha, beta=beta, oov_penalty=oov_penalty)


def _flashlight(tokenizer, beam_size, lm, alpha, beta) -> Decoder:
    from asr.decode.flashlight import FlashlightDecoder

    return FlashlightDecoder(tokenizer, lm_path=lm, beam_size=beam_size, lm_weight=alpha,
                             word_score=beta)


DECODERS: dict[str, DecoderSpec] = {spec.name: spec for spec in [
    DecoderSpec("greedy", "best path (the likeliest token per frame)", _greedy),
    DecoderSpec("beam", "our prefix beam search, with an optional word n-gram LM (CPU or GPU)", _beam,
                (BEAM_SIZE, LM, ALPHA, BETA, OOV_PENALTY), uses_lm=True, nbest=True,
                settable=("alpha", "beta", "oov_penalty")),
    DecoderSpec("flashlight", "torchaudio's flashlight beam search with KenLM (flashlight-text)",
                _flashlight, (BEAM_SIZE, LM, ALPHA, BETA), uses_lm=True, nbest=True),
]}


def names(uses_lm: bool | None = None) -> list[str]:
    """The registered decoders' names (only those that use an LM, or only those that do not)."""
    return [n for n, spec in DECODERS.items() if uses_lm is None or spec.uses_lm == uses_lm]


def get_spec(name: str) -> DecoderSpec:
    if name not in DECODERS:
        raise ValueError(f"unknown decoder {name!r}; choose from {', '.join(DECODERS)}")
    return DECODERS[name]


def all_options() -> list[Option]:
    """Every decoder's options, each name once (in the order first declared)."""
    options: dict[str, Option] = {}
    for spec in DECODERS.values():
        for option in spec.options:
            options.setdefault(option.name, option)
    return list(options.values())


def resolve_options(name: str, saved: dict | None = None, **given) -> dict[str, Any]:
    """All options of decoder `name`: those `given` (None: not given) win over `saved` (e.g. the
    weights `asr tune-lm` stored; other keys are ignored), then the defaults."""
    spec = get_spec(name)
    unknown = [k for k in given if k not in spec.option_names]
    if unknown:
        raise ValueError(f"the {name} decoder has no option {', '.join(unknown)}; its options: "
                         f"{', '.join(spec.option_names) or 'none'}")
    saved = saved or {}
    return {o.name: given[o.name] if given.get(o.name) is not None else saved.get(o.name, o.default)
            for o in spec.options}


def build_decoder(name: str, tokenizer=None, saved: dict | None = None, **given) -> Decoder:
    """Decoder `name` with its options resolved as in `resolve_options`; `tokenizer` (the
    model's CharTokenizer) spells an LM's words."""
    return get_spec(name).factory(tokenizer, **resolve_options(name, saved, **given))
