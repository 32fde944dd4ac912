"""Your own recordings: a folder of audio files, each beside a same-named .txt transcript.

`asr prepare folder DIR --out OUT` finds every audio file under DIR (recursively; any
extension asr.audio reads) with a transcript of the same name (`a/b.wav` + `a/b.txt`) and
writes OUT/<name>.jsonl (`--name`, default all): id = the path below DIR without its
extension (`a/b`), speaker = the parent folder's name (`a`), text = the transcript as
written, on one line (training normalises it). Audio stays where it is; the manifest names
it relative to OUT. Audio without a transcript and transcripts without audio are counted,
named (the first few) and left out; so is every unreadable file, each named with its reason.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from asr.atomic import write_text
from asr.audio import AUDIO_EXTENSIONS, AudioError, audio_duration

log = logging.getLogger(__name__)

_VERSION = 1
SHOWN = 5  # skipped files named in the log, per kind


def relative_audio_path(audio: Path, out_dir: Path) -> str:
    """`audio` as a manifest in `out_dir` stores it (as asr.data.write_manifest does): relative
    when inside `out_dir`, else absolute (symlinked folders resolved, the file's own name kept)."""
    audio, out_dir = audio.parent.resolve() / audio.name, out_dir.resolve()
    return str(audio.relative_to(out_dir)) if audio.is_relative_to(out_dir) else str(audio)


def is_prepared(marker: Path, params: dict, outputs: list[Path]) -> bool:
    """True when `marker` records exactly `params` and `outputs` exist."""
    return (marker.is_file() and json.loads(marker.read_text()) == params
            and all(p.is_file() for p in outputs))


def mark_prepared(marker: Path, params: dict) -> None:
    write_text(marker, json.dumps(params, indent=1, sort_keys=True) + "\n")


def log_skipped(source: Path, what: str, names: list[str], shown: int = SHOWN, sep: str = ", ") -> None:
    """Warn about left-out files: how many, and the first `shown` by name."""
    if names:
        more = f" and {len(names) - shown} more" if len(names) > shown else ""
        log.warning("%s: %d %s, left out: %s%s", source, len(names), what, sep.join(names[:shown]), more)


def _fingerprint(files: list[Path], source: Path) -> str:
    """A digest of the files' names, sizes and times: a changed, added or removed file redoes."""
    digest = hashlib.sha1()
    for f in files:
        stat = f.stat()
        digest.update(f"{f.relative_to(source)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def prepare_folder(out_dir: str | Path, source: str | Path, split: str = "all",
                   speaker_from: str = "folder") -> dict[str, Path]:
    """Write `out_dir/<split>.jsonl` from the audio files and .txt transcripts under `source`
    (see the module docstring). Idempotent: returns at once when the same files were prepared
    with the same options. Returns {split: manifest path}."""
    from asr.data import write_jsonl

    source, out_dir = Path(source), Path(out_dir)
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: no such folder; give the folder holding the audio and .txt files")
    if speaker_from not in ("folder", "none"):
        raise ValueError(f"speaker_from {speaker_from!r}: choose folder or none")
    files = sorted(p for p in source.rglob("*") if p.is_file()
                   and (p.suffix.lower() in AUDIO_EXTENSIONS or p.suffix.lower() == ".txt"))
    manifest, marker = out_dir / f"{split}.jsonl", out_dir / f".{split}.completed"
    params = {"corpus": "folder", "version": _VERSION, "source": str(source.resolve()),
              "speaker_from": speaker_from, "files": _fingerprint(files, source)}
    if is_prepared(marker, params, [manifest]):
        log.info("%s: already prepared from %s, skipping", manifest, source)
        return {split: manifest}

    audio: dict[Path, list[Path]] = {}
    texts: dict[Path, Path] = {}
    for f in files:
        if f.suffix.lower() == ".txt":
            texts[f.with_suffix("")] = f
        else:
            audio.setdefault(f.with_suffix(""), []).append(f)
    rel = {p: p.relative_to(source).as_posix() for p in [*files, *audio]}
    log_skipped(source, "audio files without a .txt transcript",
                [rel[f] for stem, fs in audio.items() if stem not in texts for f in fs])
    log_skipped(source, "transcripts without an audio file",
                [rel[t] for stem, t in texts.items() if stem not in audio])
    log_skipped(source, "transcripts with several audio files of the same name (rename them)",
                [rel[texts[stem]] for stem, fs in audio.items() if stem in texts and len(fs) > 1])
    pairs = {stem: fs[0] for stem, fs in audio.items() if stem in texts and len(fs) == 1}
    rows, unreadable = [], []
    for stem, wav in pairs.items():
        try:
            duration = audio_duration(wav)
        except AudioError as err:
            unreadable.append(str(err))
            continue
        try:
            text = " ".join(texts[stem].read_text(encoding="utf-8-sig").split())
        except UnicodeDecodeError as err:
            unreadable.append(f"{texts[stem]}: not UTF-8 ({err.reason}); save it as UTF-8")
            continue
        if duration <= 0:
            unreadable.append(f"{wav}: no samples")
            continue
        rows.append({"id": rel[stem], "audio_filepath": relative_audio_path(wav, out_dir),
                     "duration": round(duration, 3), "text": text,
                     "speaker": wav.parent.name if speaker_from == "folder" else "unknown"})
    log_skipped(source, "unreadable files", unreadable, shown=len(unreadable), sep="; ")
    if not rows:
        raise ValueError(f"{source}: no audio file with a same-named .txt transcript beside it; "
                         "put each transcript next to its audio (a.wav + a.txt)")
    write_jsonl(manifest, rows)
    mark_prepared(marker, params)
    log.info("%s: %d utterances, %.2f h, %d speakers", manifest, len(rows),
             sum(r["duration"] for r in rows) / 3600, len({r["speaker"] for r in rows}))
    return {split: manifest}


def add_arguments(parser) -> None:
    """`asr prepare folder` options; dest names are prepare_folder's keywords."""
    parser.add_argument("source", metavar="DIR",
                        help="folder of audio files with same-named .txt transcripts (searched recursively)")
    parser.add_argument("--name", dest="split", metavar="NAME", default="all",
                        help="the manifest's name: OUT/NAME.jsonl (default all)")
    parser.add_argument("--speaker-from", default="folder", choices=["folder", "none"],
                        help="speaker = the audio file's folder name (default), or none (unknown)")
