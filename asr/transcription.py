"""Transcribing audio of any length: segments cut at pauses, decoded in length-sorted
batches through `asr.inference.run_model`, stitched back with word times and confidences.

`transcribe(recognizer, audio)` returns whisper's result shape:
{"text", "segments": [{"id", "start", "end", "text", "words": [{"word", "start", "end",
"probability"}]}], "language", "duration"} plus "unrecognized": [{"start", "end"}], the
speech segments that produced no words (nothing is dropped silently).

Word times come from the CTC path: the decoded tokens are force-aligned to the segment's
log-probs (torchaudio's `forced_align` + `merge_tokens`), whichever decoder produced them;
a word runs from its first token's first frame to its last token's last frame, and its
probability is the mean of its tokens' (each the mean frame probability of its span).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as AF

from asr.audio import AudioError
from asr.inference import model_device, run_model
from asr.segment import FRAME_SECONDS, SegmentOptions, get_vad, plan_segments, read_segments, speech_frames

log = logging.getLogger(__name__)
MIN_REPORTED_SECONDS = 0.1  # shorter speech without words is not listed as unrecognized


@dataclass
class Recognizer:
    """What transcription needs: an acoustic model (CTCModel, quantized, or ONNX Runtime),
    its tokenizer and a decoder."""

    model: object
    tokenizer: object
    decoder: object
    language: str = "en"

    @property
    def sample_rate(self) -> int:
        return self.model.config.sample_rate

    @property
    def frame_seconds(self) -> float:
        """Seconds per output frame: 10 ms feature frames, subsampled."""
        return 0.01 * self.model.config.subsampling_factor


def load_recognizer(path: str | Path, *, decoder: str = "auto", engine: str = "torch",
                    quantize: str | None = None, device: str = "auto", threads: int | None = None,
                    no_lm: bool = False, **decoder_options) -> Recognizer:
    """A Recognizer for the model at `path` (an `asr export` folder or a checkpoint): engine
    "torch" or "onnx", `quantize` None or "int8", the decoder by name with its options
    (None: the ones `asr tune-lm` saved in the model, else the registry's defaults)."""
    from asr.decode import build_decoder
    from asr.decoding import decoder_settings
    from asr.engines import load_for_inference
    from asr.inference import pick_device

    if engine == "onnx" or quantize:
        device = "cpu" if device == "auto" else device
    model, tokenizer, state = load_for_inference(path, engine, quantize, pick_device(device), threads)
    name, options = decoder_settings(decoder, state, path, no_lm=no_lm, **decoder_options)
    if name != "greedy":
        log.info("decoding: %s, %s", name, ", ".join(f"{k} {v}" for k, v in options.items()))
    return Recognizer(model, tokenizer, build_decoder(name, tokenizer, **options),
                      state.get("language", "en"))


@dataclass(frozen=True)
class TranscribeOptions:
    max_segment_seconds: float = 30.0  # longest piece decoded at once
    vad: str = "energy"  # energy, silero or auto
    batch_seconds: float | None = None  # padded audio per forward batch; None: 60 on CPU, 300 on GPU
    pool_seconds: float = 300.0  # audio gathered, then sorted by length into batches


@dataclass
class _File:
    """A file in flight: its segments' results arrive in any order."""

    key: object
    duration: float
    pending: int
    pieces: dict = field(default_factory=dict)  # segment index -> (start s, end s, words)
    error: str | None = None


def transcribe(recognizer: Recognizer | str | Path, audio, **options) -> dict:
    """Transcribe one file (a path) or a mono float waveform at the model's rate (an array)
    with a Recognizer, or with the model at a path (loaded with load_recognizer's defaults).

    Options are TranscribeOptions' fields. Raises AudioError for unreadable audio."""
    if isinstance(recognizer, (str, Path)):
        recognizer = load_recognizer(recognizer)
    _, result = next(transcribe_many(recognizer, [("audio", audio)], **options))
    if isinstance(result, str):
        raise AudioError(result)
    return result


def transcribe_many(recognizer: Recognizer, items: Iterable[tuple[object, object]],
                    **options) -> Iterator[tuple[object, dict | str]]:
    """For (key, audio) items yield (key, result) when a file is done, or (key, error
    message) when it failed; files finish in about the order given, all segments of
    several files decoded together in length-sorted batches."""
    opts = TranscribeOptions(**options)
    if opts.batch_seconds is None:  # smaller batches stay in the CPU's caches; a GPU wants big ones
        gpu = model_device(recognizer.model).type == "cuda"
        opts = dataclasses.replace(opts, batch_seconds=300.0 if gpu else 60.0)
    vad = get_vad(opts.vad)
    segment_options = SegmentOptions(max_seconds=opts.max_segment_seconds)
    files: dict[int, _File] = {}
    pool: list[tuple[int, int, float, np.ndarray]] = []  # (file, segment, start s, samples)
    pooled = 0
    for number, (key, audio) in enumerate(items):
        try:
            speech, levels, duration = speech_frames(audio, vad, recognizer.sample_rate)
            segments = plan_segments(speech, levels, segment_options,
                                     stride=recognizer.model.config.subsampling_factor)
            files[number] = _File(key, duration, len(segments))
            for index, samples in enumerate(read_segments(audio, segments, recognizer.sample_rate)):
                pool.append((number, index, segments[index][0] * FRAME_SECONDS, samples))
                pooled += len(samples)
                if pooled >= opts.pool_seconds * recognizer.sample_rate:  # long files: decode as read
                    _decode_pool(recognizer, pool, files, opts)
                    pool, pooled = [], 0
        except AudioError as err:
            pool = [p for p in pool if p[0] != number]
            files[number] = _File(key, 0.0, 0, error=str(err))
        yield from _finished(files, recognizer.language)
    _decode_pool(recognizer, pool, files, opts)
    yield from _finished(files, recognizer.language)


def _finished(files: dict[int, _File], language: str) -> Iterator[tuple[object, dict | str]]:
    for number in [n for n, f in files.items() if f.error or f.pending == 0]:
        file = files.pop(number)
        yield file.key, file.error or _result(file, language)


def _decode_pool(recognizer: Recognizer, pool: list, files: dict[int, _File],
                 opts: TranscribeOptions) -> None:
    """Decode every pooled segment; record each result with its file."""
    lengths = torch.tensor([len(samples) for *_, samples in pool])
    frames = recognizer.model.output_lengths(lengths)
    for (number, index, start, samples), n in zip(pool, frames.tolist()):
        if n == 0:  # too short for one output frame: no words
            files[number].pieces[index] = (start, start + len(samples) / recognizer.sample_rate, [])
            files[number].pending -= 1
    decodable = sorted((p for p, n in zip(pool, frames.tolist()) if n > 0),
                       key=lambda p: len(p[3]), reverse=True)
    for ids, log_probs, out_frames in run_model(recognizer.model, _batches(decodable, recognizer, opts)):
        tokens = recognizer.decoder(log_probs, out_frames)
        for (number, index, start), lp, n, toks in zip(ids, log_probs.cpu(), out_frames.tolist(), tokens):
            words = word_timings(lp[:n], toks, recognizer.tokenizer, recognizer.frame_seconds, start)
            end = start + n * recognizer.frame_seconds
            files[number].pieces[index] = (start, end, words)
            files[number].pending -= 1


def _batches(pool: list, recognizer: Recognizer, opts: TranscribeOptions) -> Iterator[dict]:
    """Longest-first batches whose padded audio stays under opts.batch_seconds."""
    budget = opts.batch_seconds * recognizer.sample_rate
    batch: list = []
    for item in pool:
        if batch and len(batch[0][3]) * (len(batch) + 1) > budget:
            yield _collate(batch)
            batch = []
        batch.append(item)
    if batch:
        yield _collate(batch)


def _collate(batch: list) -> dict:
    waves = [torch.from_numpy(samples) for *_, samples in batch]
    return {"ids": [(number, index, start) for number, index, start, _ in batch],
            "waves": torch.nn.utils.rnn.pad_sequence(waves, batch_first=True),  # (B, S)
            "wave_lens": torch.tensor([len(w) for w in waves])}  # (B,)


def word_timings(log_probs: torch.Tensor, tokens: list[int], tokenizer, frame_seconds: float,
                 offset: float = 0.0) -> list[dict]:
    """Words of `tokens` with times (seconds, + `offset`) and probabilities from forced
    alignment to `log_probs` (T, V)."""
    if not tokens:
        return []
    targets = torch.tensor([tokens], dtype=torch.int32)  # (1, L)
    try:
        path, scores = AF.forced_align(log_probs.unsqueeze(0).float(), targets, blank=0)  # (1, T) each
    except RuntimeError:  # an infeasible path (more tokens than frames allow): spread evenly
        spans = [(t, i * len(log_probs) // len(tokens), (i + 1) * len(log_probs) // len(tokens), 0.0)
                 for i, t in enumerate(tokens)]
    else:
        spans = [(s.token, s.start, s.end, s.score) for s in AF.merge_tokens(path[0], scores[0].exp())]
    separator = tokenizer.vocab.index(" ")
    words, current = [], []
    for span in [*spans, (separator, 0, 0, 0.0)]:
        if span[0] != separator:
            current.append(span)
        elif current:
            words.append({"word": tokenizer.decode([s[0] for s in current]),
                          "start": round(offset + current[0][1] * frame_seconds, 3),
                          "end": round(offset + current[-1][2] * frame_seconds, 3),
                          "probability": round(float(np.mean([s[3] for s in current])), 3)})
            current = []
    return words


def _result(file: _File, language: str) -> dict:
    segments, unrecognized = [], []
    for index in sorted(file.pieces):
        start, end, words = file.pieces[index]
        if words:
            segments.append({"id": len(segments), "start": words[0]["start"], "end": words[-1]["end"],
                             "text": " ".join(w["word"] for w in words), "words": words})
        elif end - start >= MIN_REPORTED_SECONDS:
            unrecognized.append({"start": round(start, 3), "end": round(min(end, file.duration), 3)})
    return {"text": " ".join(s["text"] for s in segments), "segments": segments, "language": language,
            "duration": round(file.duration, 3), "unrecognized": unrecognized}
