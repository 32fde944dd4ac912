"""A named alternative to compare against: CMU PocketSphinx with its default US English model.

PyPI `pocketsphinx` (5.x) ships a continuous-density HMM acoustic model (`en-us`), the CMU
pronouncing dictionary and a trigram LM (`en-us.lm.bin`); `Decoder()` with no arguments
loads them. Each utterance is read as `asr decode` reads it (`asr.audio.load_audio`: any
format soundfile reads, any rate, resampled to 16 kHz mono), converted to 16-bit PCM and
decoded as one whole utterance (`process_raw(..., full_utt=True)`: cepstral mean
normalisation over the whole utterance, no endpointing).
"""

from __future__ import annotations

import logging
import multiprocessing
from contextlib import nullcontext
from pathlib import Path

from tqdm import tqdm

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # the rate of pocketsphinx's en-us model


def make_decoder():
    """pocketsphinx's default English decoder, logging only errors."""
    try:
        from pocketsphinx import Decoder
    except ImportError:
        raise ImportError("pocketsphinx is not installed; `pip install pocketsphinx` "
                          "(5.x, it ships the US English model)") from None
    return Decoder(loglevel="ERROR")  # loglevel only quiets its stderr; the model is the default


def decode_wave(decoder, wave) -> str:
    """The decoder's best hypothesis for one whole utterance of 16 kHz float samples."""
    from asr.audio import to_pcm16

    decoder.start_utt()
    decoder.process_raw(to_pcm16(wave).astype("<i2").tobytes(), no_search=False, full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    return hyp.hypstr if hyp is not None else ""


_decoder = None  # one per worker process


def _decode_entry(entry: dict) -> tuple[str, str | None]:
    """(id, hypothesis), or (id, None) when the audio cannot be read (logged)."""
    from asr.audio import AudioError, load_audio

    global _decoder
    _decoder = _decoder or make_decoder()
    try:
        wave = load_audio(entry["audio_filepath"], SAMPLE_RATE)
    except AudioError as err:
        log.warning("skipping %s: %s", entry["id"], err)
        return entry["id"], None
    return entry["id"], decode_wave(_decoder, wave)


def decode_manifest(manifest: str | Path | list[dict], jobs: int = 1) -> dict[str, str]:
    """{id: text} for a JSONL manifest (a path, or its rows as read by asr.data.read_manifest),
    decoded by `jobs` processes (pocketsphinx decodes at a few times real time per core).

    Unreadable audio is logged and left out, as `asr decode` leaves it out: scoring counts
    its words as deletions.
    """
    from asr.data import read_manifest

    global _decoder
    entries = read_manifest(manifest) if isinstance(manifest, (str, Path)) else manifest
    _decoder = _decoder or make_decoder()  # a missing package fails here, once, with its message
    with multiprocessing.get_context("spawn").Pool(jobs) if jobs > 1 else nullcontext() as pool:
        results = pool.imap(_decode_entry, entries, chunksize=4) if pool else map(_decode_entry, entries)
        hyps = dict(tqdm(results, total=len(entries), desc="pocketsphinx", unit="utt", disable=None))
    return {utt_id: text for utt_id, text in hyps.items() if text is not None}
