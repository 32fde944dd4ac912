"""A NeMo ASR manifest: JSONL lines of `audio_filepath`, `duration`, `text` (and `offset`).

`asr prepare nemo MANIFEST --out OUT` checks every line (a positive duration, a text, an
existing audio file; relative paths are read from MANIFEST's folder) and writes
OUT/<name>.jsonl with ids and audio paths relative to OUT. Ids are `id` or `utt_id` when a
line has one, else the audio file's name (`<name>-<offset in ms>` for a segment), with
`-2`, `-3` ... added where two lines would share one. A line with an `offset` is a segment
of a longer recording: it is cut into OUT/wav/<id>.wav (16-bit, the source's sample rate),
as the toolkit reads whole files.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import soundfile

from asr.corpora.folder import is_prepared, mark_prepared, relative_audio_path

log = logging.getLogger(__name__)

_VERSION = 1
_FIX = 'each line must be like {"audio_filepath": "a.wav", "duration": 2.5, "text": "words"}'
_SLACK_SECONDS = 0.05  # a segment may end this much after its file (rounded durations)


def _number(obj: dict, key: str) -> bool:
    return isinstance(obj.get(key), (int, float)) and not isinstance(obj.get(key), bool)


def _check(obj, where: str, folder: Path) -> dict:
    """One manifest line, validated: {"where", "audio", "duration", "text", "offset", "id", "speaker"}."""
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: not a JSON object; {_FIX}")
    missing = [k for k in ("audio_filepath", "duration", "text") if k not in obj]
    if missing:
        raise ValueError(f"{where}: missing {', '.join(missing)}; {_FIX}")
    if not isinstance(obj["text"], str) or not isinstance(obj["audio_filepath"], str):
        raise ValueError(f'{where}: "text" and "audio_filepath" must be strings; {_FIX}')
    if not _number(obj, "duration") or obj["duration"] <= 0:
        raise ValueError(f"{where}: duration {obj['duration']!r} is not a positive number of seconds; "
                         "fix or remove the line")
    if "offset" in obj and (not _number(obj, "offset") or obj["offset"] < 0):
        raise ValueError(f"{where}: offset {obj['offset']!r} is not a number of seconds >= 0; fix the line")
    audio = Path(obj["audio_filepath"])
    audio = audio if audio.is_absolute() else folder / audio
    if not audio.is_file():
        raise ValueError(f"{where}: {audio}: no such audio file; fix audio_filepath (a relative path is "
                         "read from the manifest's folder)")
    given = obj.get("id", obj.get("utt_id"))
    if given is not None and not isinstance(given, (str, int)):
        raise ValueError(f'{where}: "id" must be a string; fix the line')
    return {"where": where, "audio": audio, "duration": float(obj["duration"]),
            "text": " ".join(obj["text"].split()), "offset": obj.get("offset"),
            "id": None if given is None else str(given), "speaker": str(obj.get("speaker", "unknown"))}


def read_nemo_manifest(path: Path) -> list[dict]:
    """The lines of a NeMo manifest, validated, each with a unique "id" (see the module docstring)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such manifest; give a NeMo manifest (JSONL)")
    entries, line_of = [], {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{n}: not valid JSON ({e.msg}); {_FIX}") from None
        entry = _check(obj, f"{path}:{n}", path.parent)
        if entry["id"] in line_of:
            raise ValueError(f"{path}:{n}: duplicate id {entry['id']!r} (first on line "
                             f"{line_of[entry['id']]}); ids must be unique, rename one")
        if entry["id"] is not None:
            line_of[entry["id"]] = n
        entries.append(entry)
    if not entries:
        raise ValueError(f"{path}: no lines; {_FIX}")
    taken = set(line_of)
    for entry in entries:
        if entry["id"] is None:
            stem = entry["audio"].stem
            base = stem if entry["offset"] is None else f"{stem}-{round(1000 * entry['offset'])}"
            entry["id"] = base
            k = 1
            while entry["id"] in taken:
                k += 1
                entry["id"] = f"{base}-{k}"
        taken.add(entry["id"])
    return entries


def _cut(entry: dict, out_dir: Path) -> Path:
    """Write the segment [offset, offset + duration) of the entry's audio as 16-bit wav."""
    audio, offset, duration, where = entry["audio"], entry["offset"], entry["duration"], entry["where"]
    path = out_dir / "wav" / f"{entry['id']}.wav"
    if ".." in Path(entry["id"]).parts or Path(entry["id"]).is_absolute():
        raise ValueError(f"{where}: id {entry['id']!r} cannot name a file under {out_dir / 'wav'}; rename it")
    try:
        info = soundfile.info(str(audio))
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as err:
        raise ValueError(f"{where}: {audio}: cannot read audio to cut a segment from ({err}); convert "
                         "it to WAV or FLAC") from None
    start, stop = round(offset * info.samplerate), round((offset + duration) * info.samplerate)
    if stop > info.frames + _SLACK_SECONDS * info.samplerate:
        raise ValueError(f"{where}: offset {offset} + duration {duration} s runs past the end "
                         f"of {audio} ({info.frames / info.samplerate:.3f} s); fix the line")
    wave, rate = soundfile.read(str(audio), start=start, stop=min(stop, info.frames), dtype="int16")
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), wave, rate, subtype="PCM_16")
    entry["duration"] = len(wave) / rate
    return path


def prepare_nemo(out_dir: str | Path, manifest: str | Path, split: str | None = None) -> dict[str, Path]:
    """Write `out_dir/<split>.jsonl` (default: the manifest's name) from a NeMo manifest, cutting
    segments with an offset into `out_dir/wav/` (see the module docstring). Idempotent: returns
    at once when the same manifest was prepared before. Returns {split: manifest path}."""
    from asr.data import write_jsonl

    source, out_dir = Path(manifest), Path(out_dir)
    split = split or source.stem
    out = out_dir / f"{split}.jsonl"
    if out.resolve() == source.resolve():
        raise ValueError(f"{out}: would overwrite the NeMo manifest; pass --name or another --out")
    marker = out_dir / f".{split}.completed"
    digest = hashlib.sha1(source.read_bytes()).hexdigest() if source.is_file() else None
    params = {"corpus": "nemo", "version": _VERSION, "manifest": str(source.resolve()), "sha1": digest}
    if is_prepared(marker, params, [out]):
        log.info("%s: already prepared from %s, skipping", out, source)
        return {split: out}
    entries = read_nemo_manifest(source)
    rows = []
    for entry in entries:
        audio = entry["audio"] if entry["offset"] is None else _cut(entry, out_dir)
        rows.append({"id": entry["id"], "audio_filepath": relative_audio_path(audio, out_dir),
                     "duration": round(entry["duration"], 3), "text": entry["text"],
                     "speaker": entry["speaker"]})
    write_jsonl(out, rows)
    mark_prepared(marker, params)
    cut = sum(e["offset"] is not None for e in entries)
    log.info("%s: %d utterances (%d cut from longer recordings), %.2f h", out, len(rows), cut,
             sum(r["duration"] for r in rows) / 3600)
    return {split: out}


def add_arguments(parser) -> None:
    """`asr prepare nemo` options; dest names are prepare_nemo's keywords."""
    parser.add_argument("manifest", metavar="MANIFEST", help="a NeMo ASR manifest (JSONL)")
    parser.add_argument("--name", dest="split", metavar="NAME",
                        help="the manifest's name: OUT/NAME.jsonl (default: MANIFEST's name)")
