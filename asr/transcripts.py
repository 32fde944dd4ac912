"""Reading transcripts for scoring: JSONL manifests, Kaldi `text` files and sclite `trn` files.

- JSONL: one object per line with string "id" and "text" (and optionally "speaker"); a NeMo
  manifest line without "id" takes its id from "audio_filepath", as asr.data.read_manifest does.
- Kaldi: `UTT-ID words...` (an id alone means an empty transcript).
- trn: `words... (UTT-ID)`, the id in parentheses at the end of the line.

The format comes from the extension (.jsonl/.json, .trn), else from the content: JSONL when
the first non-blank line starts with `{`, trn when every line ends in `(ID)`, else Kaldi.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from asr.textfiles import read_lines

_JSONL_FIX = 'each line must be one JSON object like {"id": "utt1", "text": "some words"}'
_TRN_LINE = re.compile(r"^(.*?)\s*\(([^()\s]+)\)\s*$")


def jsonl_id(obj: dict) -> str | None:
    """A JSONL line's id: "id", else the stem of "audio_filepath" (NeMo manifests), else None."""
    if "id" in obj:
        return obj["id"]
    audio = obj.get("audio_filepath")
    return Path(audio).stem if isinstance(audio, str) else None


def _parse_jsonl(line: str) -> tuple[str, str]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"invalid JSON ({e.msg}); {_JSONL_FIX}") from None
    if not (isinstance(obj, dict) and isinstance(jsonl_id(obj), str) and isinstance(obj.get("text"), str)):
        raise ValueError(f'needs string "id" (or "audio_filepath") and "text" fields; {_JSONL_FIX}')
    return jsonl_id(obj), obj["text"]


def _parse_kaldi(line: str) -> tuple[str, str]:
    if line.lstrip().startswith("{"):
        raise ValueError("JSON line in a Kaldi text file; use one format per file")
    uid, *text = line.split(maxsplit=1)
    return uid, text[0] if text else ""


def _parse_trn(line: str) -> tuple[str, str]:
    match = _TRN_LINE.match(line)
    if not match:
        raise ValueError("a trn line must end with its id in parentheses: `some words (utt1)`")
    return match.group(2), match.group(1)


PARSERS = {"jsonl": _parse_jsonl, "kaldi": _parse_kaldi, "trn": _parse_trn}


def detect_format(path: str | Path, lines: list[str]) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".json"):
        return "jsonl"
    if suffix == ".trn":
        return "trn"
    content = [ln for ln in lines if ln.strip()]
    if content and content[0].lstrip().startswith("{"):
        return "jsonl"
    if content and all(_TRN_LINE.match(ln) for ln in content):
        return "trn"
    return "kaldi"


def transcript_format(path: str | Path, fmt: str | None = None) -> str:
    """The format read_transcripts reads `path` as: `fmt` when given, else detected."""
    return fmt or detect_format(path, _lines(path))


def default_normalization(*formats: str) -> str:
    """The scoring normaliser for inputs of these formats: "none" when any is a trn or Kaldi
    text file (as sclite scores them: `w12` stays `w12`), else "english" (JSONL manifests:
    the training normaliser)."""
    return "none" if {"trn", "kaldi"} & set(formats) else "english"


def _lines(path: str | Path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such transcript file; check the path (JSONL, Kaldi text or trn)")
    return read_lines(path)


def read_transcripts(path: str | Path, fmt: str | None = None) -> dict[str, str]:
    """`{id: text}` from a JSONL, Kaldi or trn file (`fmt` None: detected). Blank lines are
    skipped; a malformed line or a duplicate id raises ValueError naming `file:line`."""
    lines = _lines(path)
    fmt = fmt or detect_format(path, lines)
    parse = PARSERS[fmt]
    texts: dict[str, str] = {}
    line_of: dict[str, int] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            uid, text = parse(line)
        except ValueError as e:
            raise ValueError(f"{path}:{n}: {e} (read as {fmt})") from None
        if uid in line_of:
            derived = "; this one comes from the audio file name: give the lines \"id\"s (`asr prepare " \
                "nemo` does)" if fmt == "jsonl" and "id" not in json.loads(line) else ""
            raise ValueError(f"{path}:{n}: duplicate id {uid!r} (first on line {line_of[uid]});"
                             " ids must be unique, remove or rename one of them" + derived)
        line_of[uid] = n
        texts[uid] = text
    return texts


def speaker_of(utt_id: str) -> str:
    """The speaker of an id shaped SPEAKER-UTT (sclite's and Kaldi's convention): the id up
    to its last '-'; an id without one is its own speaker."""
    return utt_id.rsplit("-", 1)[0]


def read_speakers(path: str | Path) -> dict[str, str]:
    """`{id: speaker}`: a JSONL file's "speaker" fields, else speaker_of(id) for every id."""
    lines = _lines(path)
    speakers = {uid: speaker_of(uid) for uid in read_transcripts(path)}
    if detect_format(path, lines) == "jsonl":
        for line in lines:
            if line.strip():
                obj = json.loads(line)
                if isinstance(obj.get("speaker"), str):
                    speakers[jsonl_id(obj)] = obj["speaker"]
    return speakers


def write_trn(texts: dict[str, str], path: str | Path) -> None:
    """Write `{id: text}` as an sclite trn file."""
    Path(path).write_text("".join(f"{text} ({uid})\n" for uid, text in texts.items()), encoding="utf-8")
