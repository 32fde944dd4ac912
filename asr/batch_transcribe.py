"""Transcribing many files into an output folder that finishes and resumes.

`--output-dir D` holds each file's outputs (D/<id>.<ext>, ids mirroring the input folders)
and `D/ledger.jsonl`, one row per file: {"id", "audio_filepath", "status", "duration", "text",
"unrecognized" (count), "outputs"}; status is "done", "skipped" (done by an earlier run, its
outputs kept) or "failed" with an "error" that names the file and the fix. A re-run skips
what is done (its outputs present) and retries what failed; `overwrite` redoes all.
Rows are appended to D/.ledger.rank<R>.jsonl as files finish (a crash loses nothing finished)
and merged into ledger.jsonl at the end. Under `torchrun` each process takes every
N-th file (longest first) and rank 0 merges the ledger.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from asr.atomic import write_text
from asr.audio import AUDIO_EXTENSIONS, AudioError, audio_duration
from asr.textfiles import read_lines
from asr.writers import get_writer, output_paths

log = logging.getLogger(__name__)
LEDGER = "ledger.jsonl"
LIST_SUFFIXES = {".txt", ".lst", ".list", ".scp"}


@dataclass(frozen=True)
class Item:
    id: str
    path: str


def collect_inputs(inputs: list[str]) -> list[Item]:
    """Audio files from files, folders (recursive, audio extensions only), JSONL manifests
    ({"audio_filepath", "id"?}) and list files (a path, or "id path", per line)."""
    items: list[Item] = []
    for given in map(Path, inputs):
        if given.is_dir():
            files = sorted(p for p in given.rglob("*")
                           if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
            items += [Item(p.relative_to(given).with_suffix("").as_posix(), str(p)) for p in files]
        elif given.suffix == ".jsonl":
            items += _manifest_items(given)
        elif given.suffix in LIST_SUFFIXES:
            items += _list_items(given)
        elif given.exists() or given.suffix.lower() in AUDIO_EXTENSIONS:
            items.append(Item(given.stem, str(given)))
        else:
            raise ValueError(f"{given}: no such file or folder; pass audio files, folders, a JSONL "
                             "manifest or a list file")
    seen: dict[str, str] = {}
    for item in items:
        if not item.id or item.id.startswith("/") or ".." in item.id.split("/"):
            raise ValueError(f"{item.path}: its id {item.id!r} would put outputs outside --output-dir; "
                             "give it a plain id (no leading '/', no '..')")
        if item.id in seen and seen[item.id] != item.path:
            raise ValueError(f"{item.path} and {seen[item.id]} both have the id {item.id!r}, so their "
                             "outputs would collide; give them in separate runs or a manifest with ids")
        seen[item.id] = item.path
    return list({item.id: item for item in items}.values())


def _manifest_items(path: Path) -> list[Item]:
    items, first_line = [], {}
    for number, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            audio = Path(row["audio_filepath"])
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ValueError(f"{path}:{number}: not a manifest row with \"audio_filepath\"; "
                             "fix the line or pass a list file") from None
        audio = audio if audio.is_absolute() else path.parent / audio
        item = Item(str(row.get("id", audio.stem)), str(audio))
        if item.id in first_line:
            raise ValueError(f"{path}:{number}: duplicate id {item.id!r} (first on line "
                             f"{first_line[item.id]}); its outputs would collide: remove or rename one")
        first_line[item.id] = number
        items.append(item)
    return items


def _list_items(path: Path) -> list[Item]:
    items = []
    for line in read_lines(path):
        parts = line.split(maxsplit=1)
        if parts:
            audio = Path(parts[-1].strip())
            audio = audio if audio.is_absolute() else path.parent / audio
            items.append(Item(parts[0] if len(parts) == 2 else audio.stem, str(audio)))
    return items


def read_ledger(out_dir: Path) -> dict[str, dict]:
    """The latest row per id: ledger.jsonl, then any rank files a stopped run left."""
    rows: dict[str, dict] = {}
    for path in [out_dir / LEDGER, *sorted(out_dir.glob(".ledger.rank*.jsonl"))]:
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                    rows[row["id"]] = row
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a line cut short by a crash
    return rows


def _is_done(row: dict | None, out_dir: Path) -> bool:
    return bool(row) and row["status"] in ("done", "skipped") and \
        all((out_dir / p).is_file() for p in row["outputs"])


@dataclass
class RunSummary:
    done: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0  # audio transcribed
    unrecognized: int = 0  # speech segments that produced no words
    wall: float = 0.0

    @classmethod
    def combine(cls, ranks: list[RunSummary]) -> RunSummary:
        """The whole run's summary from every process's (rank 0 counts the skipped files)."""
        return cls(done=sum(s.done for s in ranks), failed=sum(s.failed for s in ranks),
                   skipped=ranks[0].skipped, seconds=sum(s.seconds for s in ranks),
                   unrecognized=sum(s.unrecognized for s in ranks), wall=max(s.wall for s in ranks))

    def line(self, out_dir: str | Path | None) -> str:
        rtfx = f", RTFx {self.seconds / self.wall:.0f}" if self.wall > 0 and self.seconds else ""
        where = f"; ledger {Path(out_dir) / LEDGER}" if out_dir else ""
        return (f"{self.done} done, {self.failed} failed, {self.skipped} skipped (done before); "
                f"{self.seconds:.1f} s of audio in {self.wall:.1f} s{rtfx}; "
                f"{self.unrecognized} speech segments without words{where}")


def transcribe_to_dir(recognizer, items: list[Item], out_dir: str | Path, formats: list[str], *,
                      overwrite: bool = False, writer_options: dict | None = None,
                      transcribe_options: dict | None = None, rank: int = 0, world_size: int = 1,
                      barrier=None) -> RunSummary:
    """Transcribe `items` into `out_dir` (this process's share of them under torchrun);
    returns this process's summary. `barrier` synchronises the processes before the merge."""
    from asr.transcription import transcribe_many

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    writers = [get_writer(f, **(writer_options or {})) for f in formats]
    previous = {} if overwrite else read_ledger(out_dir)
    todo = [item for item in items if not _is_done(previous.get(item.id), out_dir)]
    summary = RunSummary(skipped=len(items) - len(todo))
    durations = {}
    for item in todo:
        try:
            durations[item.id] = audio_duration(item.path)
        except AudioError:
            durations[item.id] = 0.0  # its error is recorded when it is transcribed
    todo = sorted(todo, key=lambda item: -durations[item.id])[rank::world_size]
    paths = {item.id: item.path for item in todo}
    rank_ledger = out_dir / f".ledger.rank{rank}.jsonl"
    start = time.perf_counter()
    bar = tqdm(total=round(sum(durations[i.id] for i in todo), 1), unit="s", desc="audio",
               disable=None, leave=False, file=sys.stderr)
    with open(rank_ledger, "a", encoding="utf-8") as ledger:
        for item_id, result in transcribe_many(recognizer, [(i.id, i.path) for i in todo],
                                               **(transcribe_options or {})):
            row = _write_outputs(item_id, paths[item_id], result, out_dir, formats, writers)
            ledger.write(json.dumps(row, ensure_ascii=False) + "\n")
            ledger.flush()
            os.fsync(ledger.fileno())
            if row["status"] == "done":
                summary.done += 1
                summary.seconds += row["duration"]
                summary.unrecognized += row["unrecognized"]
            else:
                summary.failed += 1
                log.error("%s", row["error"])
            bar.update(durations[item_id])
            bar.set_postfix(files=f"{summary.done + summary.failed}/{len(todo)}")
    bar.close()
    summary.wall = time.perf_counter() - start
    if barrier:
        barrier()
    if rank == 0:
        skipped = {item.id for item in items if item.id in previous and item.id not in paths}
        _merge_ledger(out_dir, items, {i: {**previous[i], "status": "skipped"} for i in skipped
                                       if _is_done(previous[i], out_dir)})
    return summary


def _write_outputs(item_id: str, path: str, result, out_dir: Path, formats: list[str], writers) -> dict:
    row = {"id": item_id, "audio_filepath": path}
    if isinstance(result, str):
        return {**row, "status": "failed", "error": result}
    stem = out_dir / item_id
    try:
        for writer in writers:
            writer(result, stem, item_id.replace(" ", "_"))
    except OSError as err:
        return {**row, "status": "failed", "error": f"{path}: cannot write its outputs ({err}); "
                                                    f"check that {out_dir} is writable and has space"}
    outputs = [str(p.relative_to(out_dir)) for f in formats for p in output_paths(f, stem)]
    return {**row, "status": "done", "duration": result["duration"], "text": result["text"],
            "unrecognized": len(result["unrecognized"]), "outputs": outputs}


def _merge_ledger(out_dir: Path, items: list[Item], skipped: dict[str, dict]) -> None:
    """ledger.jsonl := the latest row of every id (inputs' order first), written atomically;
    the rank files go."""
    rows = {**read_ledger(out_dir), **skipped}
    order = [i.id for i in items if i.id in rows] + [i for i in rows if i not in {x.id for x in items}]
    write_text(out_dir / LEDGER, "".join(json.dumps(rows[i], ensure_ascii=False) + "\n" for i in order))
    for path in out_dir.glob(".ledger.rank*.jsonl"):
        path.unlink()


def results(recognizer, items: list[Item], transcribe_options: dict) -> Iterator[tuple[Item, dict | str]]:
    """(item, result or error) per file, for printing without an output folder."""
    from asr.transcription import transcribe_many

    by_id = {item.id: item for item in items}
    for item_id, result in transcribe_many(recognizer, [(i.id, i.path) for i in items],
                                           **transcribe_options):
        yield by_id[item_id], result
