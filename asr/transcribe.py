"""Offline transcription of audio files with a trained model."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from asr.audio import AudioError, load_audio
from asr.decode import Decoder
from asr.model import CTCModel
from asr.text import CharTokenizer


@torch.inference_mode()
def transcribe_files(model: CTCModel, tokenizer: CharTokenizer, paths: list[str],
                     decoder: Decoder) -> Iterator[tuple[str, str | None, str | None]]:
    """Yield (path, text, error) per file; a bad file yields its error and the rest go on."""
    device = next(model.parameters()).device
    for path in paths:
        try:
            wave = load_audio(path, model.config.sample_rate)  # (S,)
        except AudioError as err:
            yield path, None, str(err)
            continue
        waves = wave.unsqueeze(0).to(device)  # (1, S)
        lengths = torch.tensor([wave.shape[0]])  # on the CPU, like the fused RNN wants
        try:
            with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
                log_probs, frames = model(waves, lengths)  # (1, T, V)
        except torch.OutOfMemoryError:
            yield path, None, (f"{path}: out of memory for {len(wave) / model.config.sample_rate:.0f} s "
                               "of audio; split the file or use --device cpu")
            continue
        yield path, tokenizer.decode(decoder(log_probs.float(), frames)[0]), None
