"""Mozilla Common Voice: a downloaded release (one language) as manifests.

`asr prepare commonvoice --out data --data-root DIR` reads the release folder DIR (the one
holding `validated.tsv`, `train.tsv`, `dev.tsv`, `test.tsv` and `clips/*.mp3`) and writes
`out/<split>.jsonl` for each of `--splits` (default train dev test) and `out/lm_train.txt`,
the train split's sentences (LM text that never saw dev or test). Per row: id = the clip's
name without extension, speaker = client_id, text = the sentence as written (training
normalises it), duration from the clip's header; audio stays in DIR/clips (absolute paths,
or relative when the clips are inside `out`). Older (`sentence`) and newer (`sentence_id`
and `sentence`) headers both work. Rows whose clip is missing or unreadable are skipped and
listed in `out/skipped.jsonl`.
"""

from __future__ import annotations

import csv
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import soundfile

from asr.atomic import write_text
from asr.corpora.folder import is_prepared, log_skipped, mark_prepared

log = logging.getLogger(__name__)

_VERSION = 1
REQUIRED = ("client_id", "path", "sentence")
METADATA = ("age", "gender", "accents", "accent", "locale")  # kept per row when given


def read_tsv(path: Path) -> list[dict]:
    """The rows of a Common Voice tsv (no quoting: sentences may hold quote marks)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; --data-root must be the release folder holding "
                                "<split>.tsv and clips/ (e.g. cv-corpus-17.0/en)")
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: no column {', '.join(missing)}; expected a Common Voice tsv "
                             f"with the header {' '.join(REQUIRED)} ...")
        return list(reader)


def clip_duration(clip: Path) -> float | str:
    """Seconds of audio in `clip`, or why it cannot be used."""
    if not clip.is_file():
        return "missing"
    try:
        info = soundfile.info(str(clip))
    except (soundfile.LibsndfileError, RuntimeError, TypeError):  # its message says "does not exist"
        return "unreadable: soundfile cannot decode it (corrupt, truncated or not audio)"
    if info.frames <= 0 or info.samplerate <= 0:
        return "no samples"
    return info.frames / info.samplerate


def _votes(row: dict, path: Path) -> int:
    try:
        return int(row.get("up_votes") or 0)
    except ValueError:
        raise ValueError(f"{path}: up_votes {row['up_votes']!r} of {row['path']} is not a number; "
                         "fix the row or run without --min-votes") from None


def _split_rows(data_root: Path, split: str, min_votes: int, jobs: int) -> tuple[list[dict], list[dict]]:
    """(manifest rows, skipped rows) of DIR/<split>.tsv."""
    tsv = data_root / f"{split}.tsv"
    rows = read_tsv(tsv)
    if min_votes:
        kept = [r for r in rows if _votes(r, tsv) >= min_votes]
        log.info("%s: %d of %d rows have at least %d up-votes", tsv, len(kept), len(rows), min_votes)
        rows = kept
    clips = [data_root / "clips" / r["path"] for r in rows]
    with ThreadPoolExecutor(jobs) as pool:  # soundfile releases the GIL while it reads
        durations = list(pool.map(clip_duration, clips))
    out, skipped = [], []
    for row, clip, duration in zip(rows, clips, durations):
        text = " ".join((row["sentence"] or "").split())
        reason = duration if isinstance(duration, str) else None if text else "empty sentence"
        if reason:
            skipped.append({"split": split, "id": clip.stem, "audio_filepath": str(clip), "reason": reason})
            continue
        out.append({"id": clip.stem, "audio_filepath": str(clip), "duration": round(duration, 3),
                    "text": text, "speaker": row["client_id"] or "unknown",
                    **{k: row[k] for k in METADATA if row.get(k)}})
    log_skipped(tsv, "rows with a missing or unreadable clip or no sentence (see skipped.jsonl)",
                [f"{s['id']} ({s['reason']})" for s in skipped])
    return out, skipped


def prepare_commonvoice(out_dir: str | Path, data_root: str | Path,
                        splits: tuple[str, ...] | list[str] = ("train", "dev", "test"),
                        min_votes: int = 0, jobs: int | None = None) -> dict[str, Path]:
    """Write `out_dir/<split>.jsonl` per split, `lm_train.txt` (with train) and `skipped.jsonl`
    (see the module docstring). Idempotent: `out_dir/.completed` records the options and the tsv
    sizes; a rerun with the same ones returns at once. Returns {split: manifest path}."""
    from asr.data import write_jsonl, write_manifest

    data_root, out_dir = Path(data_root).resolve(), Path(out_dir)
    if not (data_root / "clips").is_dir():
        raise FileNotFoundError(f"{data_root / 'clips'}: not found; --data-root must be the release "
                                "folder holding <split>.tsv and clips/ (e.g. cv-corpus-17.0/en)")
    splits = list(dict.fromkeys(splits))
    tsvs = {s: data_root / f"{s}.tsv" for s in splits}
    params = {"corpus": "commonvoice", "version": _VERSION, "data_root": str(data_root),
              "splits": splits, "min_votes": min_votes,
              "tsv_sizes": {s: p.stat().st_size if p.is_file() else None for s, p in tsvs.items()}}
    manifests = {s: out_dir / f"{s}.jsonl" for s in splits}
    lm_text, skipped_file = out_dir / "lm_train.txt", out_dir / "skipped.jsonl"
    marker = out_dir / ".completed"
    outputs = [*manifests.values(), skipped_file] + ([lm_text] if "train" in splits else [])
    if is_prepared(marker, params, outputs):
        log.info("%s: already prepared from %s with these options, skipping", out_dir, data_root)
        return manifests

    marker.unlink(missing_ok=True)
    jobs = jobs or min(8, os.cpu_count() or 1)
    rows, skipped, seen = {}, [], {}
    for split in splits:
        rows[split], split_skipped = _split_rows(data_root, split, min_votes, jobs)
        skipped += split_skipped
        if not rows[split]:
            raise ValueError(f"{tsvs[split]}: no usable clip (see {skipped_file}); check that "
                             f"{data_root / 'clips'} holds the clips the tsv names")
        for row in rows[split]:
            if row["id"] in seen:
                raise ValueError(f"{tsvs[split]}: clip {row['id']} is also in {tsvs[seen[row['id']]]}; "
                                 "each clip must be in one split once (use the release's own tsv files)")
            seen[row["id"]] = split
    out_dir.mkdir(parents=True, exist_ok=True)
    for split in splits:
        write_manifest(manifests[split], rows[split])
        log.info("%s: %d utterances, %.2f h, %d speakers -> %s", split, len(rows[split]),
                 sum(r["duration"] for r in rows[split]) / 3600,
                 len({r["speaker"] for r in rows[split]}), manifests[split])
    write_jsonl(skipped_file, skipped)
    if "train" in splits:
        write_text(lm_text, "".join(r["text"] + "\n" for r in rows["train"]))
    mark_prepared(marker, params)
    return manifests


def add_arguments(parser) -> None:
    """Options of `asr prepare commonvoice`; dest names are prepare_commonvoice's keywords."""
    parser.add_argument("--data-root", required=True, metavar="DIR",
                        help="the release's language folder: <split>.tsv files and clips/")
    parser.add_argument("--splits", nargs="+", default=["train", "dev", "test"], metavar="SPLIT",
                        help="tsv files to read, DIR/SPLIT.tsv (default train dev test); "
                             "lm_train.txt comes from train only")
    parser.add_argument("--min-votes", type=int, default=0,
                        help="keep rows with at least this many up_votes (default 0: all rows)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="clips read at once (default: min(8, CPUs))")
