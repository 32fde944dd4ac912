"""LM weight search: the alpha (LM weight) and beta (word bonus) with the lowest dev WER."""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from asr.decode import Decoder
from asr.inference import decode_log_probs
from asr.score import score
from asr.text import CharTokenizer, normalize

log = logging.getLogger("asr.tune")

ALPHAS = [0.0, 0.25, 0.5, 0.75, 1.0, 1.5]
BETAS = [-1.0, 0.0, 1.0, 2.0, 3.0]


def tune_lm(log_probs: dict[str, torch.Tensor], refs: dict[str, str], tokenizer: CharTokenizer,
            decoder_for: Callable[[float, float], Decoder], alphas: list[float] = ALPHAS,
            betas: list[float] = BETAS) -> list[dict]:
    """WER of every (alpha, beta) on stored dev log-probs; rows best first."""
    rows = []
    for alpha in alphas:
        for beta in betas:
            hyps = decode_log_probs(log_probs, decoder_for(alpha, beta), tokenizer)
            report = score(refs, hyps, normalize)
            rows.append({"alpha": alpha, "beta": beta, "wer": report.wer, "cer": report.cer})
            log.info("alpha %.2f beta %.2f: WER %.2f%% CER %.2f%%", alpha, beta,
                     100 * report.wer, 100 * report.cer)
    return sorted(rows, key=lambda r: (r["wer"], r["cer"]))
