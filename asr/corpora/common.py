"""What every synthetic corpus shares: held-out voices, parallel synthesis to 16 kHz wav
files, JSONL manifests and the `.completed` marker that makes a prepare step idempotent."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import random
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio
from tqdm import tqdm

from asr import tts
from asr.audio import save_audio
from asr.data import write_manifest

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # the rate the corpora are written at
MARKER = ".completed"
# espeak-ng starts and stops speaking at the first and last sample, and its pauses are
# digital zeros. Recordings never are: each utterance gets 50-250 ms of silence at both
# ends and a -70 dBFS (RMS) white noise floor, drawn from a generator seeded by its id.
MARGIN_SECONDS = (0.05, 0.25)
NOISE_DBFS = -70.0


@dataclass(frozen=True)
class Utterance:
    id: str
    text: str  # the transcript: normalised words
    speech: str  # what the synthesiser is given: the same words, maybe with punctuation
    voice: tts.Voice | tts.EngineVoice


def split_voices(seed: int, n_voices: dict[str, int],
                 heldout_variants: int = 8) -> dict[str, list[tts.Voice]]:
    """Draw `n_voices[split]` voices per split such that every split but "train" has
    `heldout_variants` voice variants (timbres) of its own that no other split uses:
    held-out speakers are new people, not a known voice at a new rate or accent."""
    variants = tts.english_variants()
    random.Random(seed).shuffle(variants)
    heldout = [split for split in n_voices if split != "train"]
    if len(variants) <= heldout_variants * len(heldout):
        raise ValueError(f"{len(variants)} variants cannot give {heldout_variants} to each of "
                         f"{heldout} and leave some for training; lower heldout_variants")
    own = {split: variants[i * heldout_variants:(i + 1) * heldout_variants]
           for i, split in enumerate(heldout)}
    own["train"] = variants[heldout_variants * len(heldout):]
    return {split: tts.english_voices(seed + i, n, variants=own[split])
            for i, (split, n) in enumerate(n_voices.items())}


def is_completed(out_dir: Path, params: dict, outputs: list[Path]) -> bool:
    """True when `out_dir` was prepared with exactly `params` and `outputs` exist."""
    marker = out_dir / MARKER
    return (marker.is_file() and json.loads(marker.read_text()) == params
            and all(p.is_file() for p in outputs))


def mark_completed(out_dir: Path, params: dict) -> None:
    (out_dir / MARKER).write_text(json.dumps(params, indent=1, sort_keys=True) + "\n")


def start_fresh(out_dir: Path) -> None:
    """Forget an earlier (different or unfinished) preparation of `out_dir`."""
    (out_dir / MARKER).unlink(missing_ok=True)
    shutil.rmtree(out_dir / "wav", ignore_errors=True)  # wav/ only ever holds our files
    out_dir.mkdir(parents=True, exist_ok=True)


_resamplers: dict[int, torchaudio.transforms.Resample] = {}


def _init_worker() -> None:
    torch.set_num_threads(1)  # one process per core; also keeps forked workers safe
    tts.init_worker()


def _to_corpus_rate(wave: np.ndarray, rate: int) -> np.ndarray:
    """Resample to SAMPLE_RATE; the kernel (as torchaudio.functional.resample's) is made
    once per engine rate and process."""
    if rate == SAMPLE_RATE:
        return wave
    if rate not in _resamplers:
        _resamplers[rate] = torchaudio.transforms.Resample(rate, SAMPLE_RATE)
    return _resamplers[rate](torch.from_numpy(wave)).numpy()


def _render(job: tuple[Utterance, str]) -> tuple[str, int, str]:
    """Synthesise one utterance into a 16 kHz int16 wav: (id, samples written, error)."""
    utt, path = job
    try:
        wave = _to_corpus_rate(*tts.speak(utt.speech, utt.voice))
    except (RuntimeError, ValueError) as err:
        return utt.id, 0, str(err)
    rng = np.random.default_rng(zlib.crc32(utt.id.encode()))
    lead, trail = (rng.uniform(*MARGIN_SECONDS, size=2) * SAMPLE_RATE).astype(int)
    wave = np.pad(wave, (lead, trail))
    wave += rng.normal(0.0, 10 ** (NOISE_DBFS / 20), size=len(wave)).astype(np.float32)
    return utt.id, save_audio(path, wave, SAMPLE_RATE), ""


def _speak_split(pool, split: str, utts: list[Utterance], manifest: Path) -> None:
    wav_dir = manifest.parent.resolve() / "wav" / split
    wav_dir.mkdir(parents=True, exist_ok=True)
    work = [(u, str(wav_dir / f"{u.id}.wav")) for u in utts]
    samples, failed = {}, []
    results = pool.imap_unordered(_render, work, chunksize=8)
    for utt_id, n, error in tqdm(results, total=len(work), desc=split, unit="utt", disable=None):
        if error:
            failed.append(f"{utt_id}: {error}")
        else:
            samples[utt_id] = n
    if failed:
        log.warning("%s: %d of %d utterances failed and are left out, e.g. %s",
                    split, len(failed), len(work), failed[0])
    if not samples:
        raise RuntimeError(f"{split}: no utterance could be synthesised: {failed[:3]}")
    rows = [{"id": u.id, "audio_filepath": path,
             "duration": round(samples[u.id] / SAMPLE_RATE, 3),
             "text": u.text, "speaker": u.voice.speaker_id, "engine": u.voice.engine}
            for u, path in work if u.id in samples]
    write_manifest(manifest, rows)
    log.info("%s: %d utterances, %.2f h, %d speakers -> %s", split, len(rows),
             sum(r["duration"] for r in rows) / 3600, len({r["speaker"] for r in rows}),
             manifest)


def synthesize_splits(plan: dict[str, list[Utterance]], out_dir: Path,
                      jobs: int | None = None) -> dict[str, Path]:
    """Speak each split's utterances into `out_dir/wav/<split>/<id>.wav` with `jobs`
    processes (default: one per CPU) and write `out_dir/<split>.jsonl` atomically.
    An utterance that fails is logged and left out; a split where all fail raises
    RuntimeError. Returns split -> manifest path."""
    manifests = {split: out_dir / f"{split}.jsonl" for split in plan}
    with multiprocessing.Pool(jobs or os.cpu_count(), initializer=_init_worker) as pool:
        for split, utts in plan.items():
            _speak_split(pool, split, utts, manifests[split])
    return manifests
