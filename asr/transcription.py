"""Offline transcription of audio files with a trained model."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from asr.audio import AudioError, load_audio
from asr.decode import Decoder, greedy_decode, greedy_decode_with_frames
from asr.model import CTCModel
from asr.text import CharTokenizer


@dataclass
class Transcript:
    path: str
    text: str | None = None
    words: list[dict] | None = None  # [{"word", "start", "end"}] in seconds, on request
    error: str | None = None  # the file failed: why, and what to do


def word_times(tokens: list[int], frames: list[int], tokenizer: CharTokenizer,
               frame_seconds: float) -> list[dict]:
    """Words with start/end times from decoded tokens and the frame each token starts on:
    a word runs from its first token's frame to the end of its last token's frame."""
    separator = tokenizer.encode(" ")[0]
    words, current, start, end = [], [], 0, 0
    for token, frame in [*zip(tokens, frames), (separator, -1)]:
        if token != separator:
            start = frame if not current else start
            current.append(token)
            end = frame + 1
        elif current:
            words.append({"word": tokenizer.decode(current), "start": round(start * frame_seconds, 3),
                          "end": round(end * frame_seconds, 3)})
            current = []
    return words


def _decode_with_frames(decoder: Decoder, log_probs: torch.Tensor, frames: torch.Tensor):
    if decoder is greedy_decode:
        return greedy_decode_with_frames(log_probs, frames)
    if not hasattr(decoder, "decode_with_frames"):
        raise ValueError("this decoder gives no timestamps; use --decoder greedy or beam")
    return decoder.decode_with_frames(log_probs, frames)


@torch.inference_mode()
def transcribe_files(model: CTCModel, tokenizer: CharTokenizer, paths: list[str],
                     decoder: Decoder, timestamps: bool = False) -> Iterator[Transcript]:
    """Yield a Transcript per file; a bad file yields its error and the rest go on."""
    device = next(model.parameters()).device
    frame_seconds = model.fbank.hop_length / model.config.sample_rate * \
        model.config.subsampling_factor
    for path in paths:
        try:
            wave = load_audio(path, model.config.sample_rate)  # (S,)
        except AudioError as err:
            yield Transcript(path, error=str(err))
            continue
        waves = wave.unsqueeze(0).to(device)  # (1, S)
        lengths = torch.tensor([wave.shape[0]])  # on the CPU, like the fused RNN wants
        try:
            with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
                log_probs, frames = model(waves, lengths)  # (1, T, V)
        except torch.OutOfMemoryError:
            yield Transcript(path, error=f"{path}: out of memory for "
                             f"{len(wave) / model.config.sample_rate:.0f} s of audio; split the file "
                             "or use --device cpu")
            continue
        if timestamps:
            tokens, token_frames = _decode_with_frames(decoder, log_probs.float(), frames)[0]
            yield Transcript(path, tokenizer.decode(tokens),
                             word_times(tokens, token_frames, tokenizer, frame_seconds))
        else:
            yield Transcript(path, tokenizer.decode(decoder(log_probs.float(), frames)[0]))
