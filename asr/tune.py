"""LM weight search: the alpha (LM weight), beta (word bonus) and, for decoders that have one
(our beam search), the penalty for words outside the LM's vocabulary with the lowest dev WER."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable

import torch

from asr.decode import Decoder, build_decoder, get_spec
from asr.inference import decode_log_probs
from asr.score import score
from asr.text import CharTokenizer, normalize

log = logging.getLogger("asr.tune")

ALPHAS = [0.0, 0.25, 0.5, 0.75, 1.0, 1.5]
BETAS = [-1.0, 0.0, 1.0, 2.0, 3.0]
OOV_PENALTIES = [-5.0, -10.0, -20.0]
WEIGHTS = {"alpha": ALPHAS, "beta": BETAS, "oov_penalty": OOV_PENALTIES}  # default values tried


def weight_values(decoder: str, **given: list[float] | None) -> dict[str, list[float]]:
    """The values to try of each of WEIGHTS that `decoder` has: `given[name]`, else the default."""
    return {k: given.get(k) or v for k, v in WEIGHTS.items() if k in get_spec(decoder).option_names}


def weight_grid(**values: list[float]) -> list[dict[str, float]]:
    """Every combination: weight_grid(alpha=[0, 1], beta=[2]) -> [{alpha: 0, beta: 2}, ...]."""
    return [dict(zip(values, combo, strict=True)) for combo in itertools.product(*values.values())]


def reweighted(name: str, tokenizer: CharTokenizer, **options) -> Callable[..., Decoder]:
    """`decoder_for(**weights)` for `tune_lm`: decoder `name` with `options` and the weights.
    Built once, here (a bad option fails before any decoding); a decoder whose weights are
    settable (see the registry) is reweighted in place, others are rebuilt per call."""
    decoder, settable = build_decoder(name, tokenizer, **options), get_spec(name).settable

    def decoder_for(**weights) -> Decoder:
        if not set(weights) <= set(settable):
            return build_decoder(name, tokenizer, **options, **weights)
        for key, value in weights.items():
            setattr(decoder, key, value)
        return decoder

    return decoder_for


def tune_lm(log_probs: dict[str, torch.Tensor], refs: dict[str, str], tokenizer: CharTokenizer,
            decoder_for: Callable[..., Decoder], grid: list[dict[str, float]]) -> list[dict]:
    """WER of `decoder_for(**weights)` for every weights in `grid` on stored dev log-probs;
    rows (the weights, "wer", "cer") best first."""
    rows = []
    for weights in grid:
        hyps = decode_log_probs(log_probs, decoder_for(**weights), tokenizer)
        report = score(refs, hyps, normalize)
        rows.append({**weights, "wer": report.wer, "cer": report.cer})
        log.info("%s: WER %.2f%% CER %.2f%%", " ".join(f"{k} {v:g}" for k, v in weights.items()),
                 100 * report.wer, 100 * report.cer)
    return sorted(rows, key=lambda r: (r["wer"], r["cer"]))
