"""`asr export-data kaldi MANIFEST DIR`: a manifest as a Kaldi data directory.

Writes DIR/wav.scp, text, utt2spk, spk2utt and, when rows need them, segments, each sorted by
key in C byte order as Kaldi's utils/validate_data_dir.sh expects, each atomically. A row
imported by `asr prepare kaldi` (it has a "kaldi" entry) gets its original wav.scp line and
segment back, so an import then export reproduces the source files; another row gets
`id /absolute/path` (WAV) or `id ffmpeg ... |` (other formats: Kaldi reads WAV only).
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from asr.atomic import write_text


def _wav_value(audio: str) -> str:
    """wav.scp's value for an audio file: its absolute path, or an ffmpeg pipe for non-WAV."""
    path = os.path.abspath(audio)
    if path.lower().endswith(".wav"):
        return path
    return f"ffmpeg -nostdin -v error -i {shlex.quote(path)} -f wav - |"


def _table(entries: dict[str, str]) -> str:
    """`key value` lines sorted by key; Python's code point order is UTF-8's byte order (LC_ALL=C)."""
    return "".join(f"{key} {entries[key]}\n" if entries[key] else f"{key}\n" for key in sorted(entries))


def kaldi_tables(rows: list[dict], source: str = "manifest") -> dict[str, str]:
    """{file name: contents} of the Kaldi data directory of manifest rows."""
    wav, text, utt2spk, segments = {}, {}, {}, {}
    for row in rows:
        utt, spk, kaldi = str(row["id"]), str(row["speaker"]), row.get("kaldi") or {}
        for what, value in (("id", utt), ("speaker", spk)):
            if not value or any(c.isspace() for c in value):
                raise ValueError(f"{source}: {what} {value!r} is empty or holds whitespace, which Kaldi "
                                 "ids cannot; rename it")
        if utt in text:
            raise ValueError(f"{source}: id {utt} is given twice; keep one row per id")
        if "\n" in row["text"] or "\r" in row["text"]:
            raise ValueError(f"{source}: the text of {utt} holds a line break; remove it")
        rec = kaldi.get("recording") or utt
        value = kaldi.get("wav") or _wav_value(row["audio_filepath"])
        if wav.setdefault(rec, value) != value:
            raise ValueError(f"{source}: recording {rec} has two audio sources ({wav[rec]!r} and "
                             f"{value!r}); give each recording one id")
        text[utt], utt2spk[utt] = row["text"], spk
        segments[utt] = (rec, kaldi.get("start"), kaldi.get("end"), row["duration"])
    spk2utt: dict[str, list[str]] = {}
    for utt in sorted(utt2spk):
        spk2utt.setdefault(utt2spk[utt], []).append(utt)
    tables = {"wav.scp": _table(wav), "text": _table(text), "utt2spk": _table(utt2spk),
              "spk2utt": _table({spk: " ".join(utts) for spk, utts in spk2utt.items()})}
    if any(start is not None or utt != rec for utt, (rec, start, _, _) in segments.items()):
        tables["segments"] = _table({
            utt: f"{rec} {'0' if start is None else start} {duration if end is None else end}"
            for utt, (rec, start, end, duration) in segments.items()})
    return tables


def export_kaldi(manifest: str | Path, out_dir: str | Path) -> list[Path]:
    """Write the Kaldi data directory of `manifest` into `out_dir`; returns the files written.

    A `segments` left there by an earlier export is removed when these rows need none.
    """
    from asr.data import read_manifest

    rows = read_manifest(manifest)
    if not rows:
        raise ValueError(f"{manifest}: the manifest holds no utterances; export a non-empty one")
    tables = kaldi_tables(rows, str(manifest))
    out_dir = Path(out_dir)
    for name, contents in tables.items():
        write_text(out_dir / name, contents)
    if "segments" not in tables:
        (out_dir / "segments").unlink(missing_ok=True)
    return [out_dir / name for name in tables]


def add_parser(sub) -> None:
    """Add the `export-data` command to an argparse subparsers object."""
    p = sub.add_parser("export-data", help="write a manifest as another toolkit's data folder "
                                           "(kaldi: wav.scp, text, utt2spk, spk2utt, segments)")
    p.add_argument("format", choices=["kaldi"], help="the folder's format")
    p.add_argument("manifest", help="a JSONL manifest, e.g. data/train.jsonl")
    p.add_argument("out_dir", metavar="DIR", help="the folder to write, e.g. kaldi/data/train")


def run(args) -> int:
    """Export the manifest and print the files written."""
    for path in export_kaldi(args.manifest, args.out_dir):
        print(path)
    return 0
