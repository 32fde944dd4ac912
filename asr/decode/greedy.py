"""Greedy (best-path) CTC decoding: argmax per frame, merge repeats, drop blanks."""

from __future__ import annotations

import torch

BLANK = 0


def greedy_decode_with_frames(
    log_probs: torch.Tensor, lengths: torch.Tensor
) -> list[tuple[list[int], list[int]]]:
    """Best path per utterance as ``(token_ids, start_frames)``.

    ``log_probs`` is (B, T, V) with blank id 0, ``lengths`` (B,) valid frames. A token's
    start frame is the first frame of its run in the best path.
    """
    best = log_probs.argmax(dim=-1)  # (B, T)
    B, T = best.shape
    prev = torch.cat([best.new_full((B, 1), BLANK), best[:, :-1]], dim=1)  # (B, T)
    valid = torch.arange(T, device=best.device)[None, :] < lengths.to(best.device)[:, None]
    emit = (best != BLANK) & (best != prev) & valid  # (B, T): first frame of each token run
    emit, best = emit.cpu(), best.cpu()
    counts = emit.sum(dim=1).tolist()  # tokens per utterance
    frames = torch.nonzero(emit)[:, 1]  # (N,) frame index of every emitted token, row-major
    tokens = best[emit]  # (N,)
    return [
        (tok.tolist(), fr.tolist())
        for tok, fr in zip(tokens.split(counts), frames.split(counts), strict=True)
    ]


def greedy_decode(log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
    """Best-path token ids per utterance; (B, T, V) log-probs, (B,) lengths."""
    return [tokens for tokens, _ in greedy_decode_with_frames(log_probs, lengths)]


class GreedyDecoder:
    """Best-path decoding behind the decoder interface (no options, no state)."""

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
        return greedy_decode(log_probs, lengths)

    def decode_with_frames(self, log_probs: torch.Tensor,
                           lengths: torch.Tensor) -> list[tuple[list[int], list[int]]]:
        return greedy_decode_with_frames(log_probs, lengths)
