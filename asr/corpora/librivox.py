"""Real read speech: the LibriVox and card-game recordings of Debian's pocketsphinx-testdata.

`/usr/share/pocketsphinx/test/data/librivox/` holds five utterances of one reader of *Sense
and Sensibility* (chapter 1, public domain, 16 kHz mono 16-bit) and a `transcription` file
of `<s> words </s> (id)` lines; `cards/` holds five short phrases naming playing cards
("eight of spades four of clubs seven of hearts", 16 kHz) and `cards.transcription` in the
same format. These are tiny (25 s and 10 s), but they are people, not a synthesiser.

The manifests point at the installed wav files (absolute paths, nothing is copied):
`test.jsonl` is the LibriVox reading, `cards.jsonl` the card phrases (a small-vocabulary
task kept apart so it does not dilute the read-speech WER).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import soundfile

from asr.text import normalize
from asr.transcripts import speaker_of

log = logging.getLogger(__name__)

DATA_DIR = "/usr/share/pocketsphinx/test/data"
SAMPLE_RATE = 16000
_INSTALL = "install Debian's pocketsphinx-testdata (apt-get install pocketsphinx-testdata)"
_LINE = re.compile(r"^(?:<s>)?\s*(.*?)\s*(?:</s>)?\s*\(([^()\s]+)\)\s*$")
# set name -> (folder, transcription file, id prefix: cards ids are bare numbers)
SETS = {"test": ("librivox", "transcription", ""), "cards": ("cards", "cards.transcription", "cards-")}


def read_transcription(path: Path) -> dict[str, str]:
    """{file id: words} from sphinx `<s> words </s> (id)` lines."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; {_INSTALL}, or pass --data-dir")
    texts = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            match = _LINE.match(line)
            if not match:
                raise ValueError(f"{path}:{n}: not a `<s> words </s> (id)` line; reinstall "
                                 "pocketsphinx-testdata or fix the line")
            texts[match.group(2)] = match.group(1)
    return texts


def _rows(data_dir: Path, folder: str, transcription: str, prefix: str) -> list[dict]:
    """Manifest rows of one folder, checked: every transcript has a 16 kHz mono wav."""
    rows = []
    for file_id, words in read_transcription(data_dir / folder / transcription).items():
        wav = data_dir / folder / f"{file_id}.wav"
        if not wav.is_file():
            raise FileNotFoundError(f"{wav}: not found (named in {transcription}); {_INSTALL}")
        info = soundfile.info(str(wav))
        if info.samplerate != SAMPLE_RATE or info.channels != 1:
            raise ValueError(f"{wav}: {info.samplerate} Hz, {info.channels} channels, expected "
                             f"{SAMPLE_RATE} Hz mono; reinstall pocketsphinx-testdata")
        utt_id = prefix + file_id
        rows.append({"id": utt_id, "audio_filepath": str(wav.resolve()),
                     "duration": round(info.frames / info.samplerate, 3), "text": normalize(words),
                     "speaker": speaker_of(utt_id), "engine": "human"})
    if not rows:
        raise ValueError(f"{data_dir / folder / transcription}: no utterances; {_INSTALL}")
    return rows


def prepare_librivox(out_dir: str | Path, data_dir: str | Path = DATA_DIR,
                     cards: bool = True) -> dict[str, Path]:
    """Write `out_dir/test.jsonl` (the LibriVox reading) and, with `cards`, `out_dir/cards.jsonl`.

    Audio paths are absolute paths to the installed files in `data_dir`. Idempotent: a rerun
    writes the same manifests (atomically). Returns set name -> manifest path.
    """
    from asr.data import write_manifest

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{data_dir}: not found; {_INSTALL}, or pass --data-dir")
    manifests = {}
    for name, (folder, transcription, prefix) in SETS.items():
        if name == "cards" and not cards:
            continue
        rows = _rows(data_dir, folder, transcription, prefix)
        out_dir.mkdir(parents=True, exist_ok=True)
        manifests[name] = out_dir / f"{name}.jsonl"
        write_manifest(manifests[name], rows)
        log.info("%s: %d utterances, %.1f s -> %s", name, len(rows),
                 sum(r["duration"] for r in rows), manifests[name])
    return manifests


def add_arguments(parser) -> None:
    """Options of `asr prepare librivox`; dest names are prepare_librivox's keywords."""
    import argparse

    parser.add_argument("--data-dir", default=DATA_DIR,
                        help=f"pocketsphinx-testdata's data folder (default {DATA_DIR})")
    parser.add_argument("--cards", action=argparse.BooleanOptionalAction, default=True,
                        help="also write cards.jsonl, five card-game phrases (default: yes)")
