"""Output writers of `asr transcribe`: one small class per format, all behind `get_writer`.

Shaped after whisper's `ResultWriter` subclasses (whisper/utils.py). A writer renders one transcription
result (whisper's dict plus "duration" and "unrecognized") to text, then writes `<stem>.<extension>`
atomically: a reader sees the old file or the whole new one, never a part. Pure Python: no torch here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from asr.atomic import write_text

FORMATS = ("txt", "json", "jsonl", "srt", "vtt", "tsv", "ctm")
MAX_PAUSE = 1.0  # seconds of silence between two words that start a new subtitle cue


def _path(stem: str | Path, extension: str) -> Path:
    return Path(f"{stem}.{extension}")  # not with_suffix: a stem may hold dots ("talk.v2")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _ms(seconds: float) -> int:
    return max(round(seconds * 1000), 0)


def _timed_words(segment: dict) -> list[dict]:
    """The segment's words, stripped; a segment without words has its text spread evenly over its span
    (those words have probability None)."""
    words = [{**word, "word": word["word"].strip()} for word in segment.get("words") or []]
    words = [word for word in words if word["word"]]
    if words:
        return words
    tokens = segment["text"].split()
    step = (segment["end"] - segment["start"]) / max(len(tokens), 1)
    return [{"word": token, "start": segment["start"] + i * step, "end": segment["start"] + (i + 1) * step,
             "probability": None} for i, token in enumerate(tokens)]


class ResultWriter:
    """Renders a result to text; calling it writes `<stem>.<extension>` and returns `[that path]`."""

    extension: str

    def __call__(self, result: dict, stem: str | Path, utt_id: str) -> list[Path]:
        path = _path(stem, self.extension)
        write_text(path, self.render(result, utt_id))
        return [path]

    def render(self, result: dict, utt_id: str) -> str:
        raise NotImplementedError


class TxtWriter(ResultWriter):
    """The text, one segment per line."""

    extension = "txt"

    def render(self, result: dict, utt_id: str) -> str:
        return "".join(_one_line(segment["text"]) + "\n" for segment in result["segments"])


class JsonWriter(ResultWriter):
    """The whole result as one JSON object."""

    extension = "json"

    def render(self, result: dict, utt_id: str) -> str:
        return json.dumps(result, ensure_ascii=False) + "\n"


class JsonlWriter(ResultWriter):
    """One JSON object per segment, one a line."""

    extension = "jsonl"

    def render(self, result: dict, utt_id: str) -> str:
        return "".join(json.dumps(segment, ensure_ascii=False) + "\n" for segment in result["segments"])


class TsvWriter(ResultWriter):
    """whisper's TSV: a `start\\tend\\ttext` header, then one row per segment, times in integer ms."""

    extension = "tsv"

    def render(self, result: dict, utt_id: str) -> str:
        rows = [f"{_ms(s['start'])}\t{_ms(s['end'])}\t{_one_line(s['text'])}\n" for s in result["segments"]]
        return "start\tend\ttext\n" + "".join(rows)


class CtmWriter(ResultWriter):
    """NIST CTM as sclite reads it (`sclite -h file.ctm ctm`), one line per word:

        <utt_id> 1 <start> <duration> <word> <confidence>

    channel always 1, seconds with 2 decimals, confidence = the word's probability (3 decimals). Words of a
    segment without word timings are spread evenly over the segment and have no confidence field (sclite
    takes it as optional). Spaces inside a word become "_"; an utt_id with whitespace is a ValueError.
    """

    extension = "ctm"

    def render(self, result: dict, utt_id: str) -> str:
        if not utt_id or utt_id != "".join(utt_id.split()):
            raise ValueError(f"a CTM utterance id must be non-empty without whitespace, got {utt_id!r}")
        lines = []
        for segment in result["segments"]:
            for word in _timed_words(segment):
                start, end = round(word["start"], 2), round(word["end"], 2)
                line = f"{utt_id} 1 {start:.2f} {max(end - start, 0):.2f} {'_'.join(word['word'].split())}"
                if word.get("probability") is not None:
                    line += f" {word['probability']:.3f}"
                lines.append(line + "\n")
        return "".join(lines)


@dataclass
class Cue:
    start: int  # ms
    end: int  # ms
    lines: list[str]


def subtitle_cues(result: dict, max_line_chars: int = 42, max_line_count: int = 2,
                  max_pause: float = MAX_PAUSE) -> list[Cue]:
    """Cues of at most `max_line_count` lines of at most `max_line_chars` characters (a longer word gets a
    line of its own), filled greedily with words; a cue ends at a segment's end and at a pause longer than
    `max_pause`. Times run from the first word's start to the last word's end, then are made strictly
    increasing, at least 1 ms long and not overlapping (an end is clipped to the next cue's start)."""
    cues: list[Cue] = []
    for segment in result["segments"]:
        cue = None
        for word in _timed_words(segment):
            text, start, end = word["word"], _ms(word["start"]), _ms(word["end"])
            if cue is not None and start - cue.end <= max_pause * 1000:
                if len(cue.lines[-1]) + 1 + len(text) <= max_line_chars:
                    cue.lines[-1] += " " + text
                    cue.end = end
                    continue
                if len(cue.lines) < max_line_count:
                    cue.lines.append(text)
                    cue.end = end
                    continue
            cue = Cue(start, end, [text])
            cues.append(cue)
    for previous, cue in zip(cues, cues[1:]):
        cue.start = max(cue.start, previous.start + 1)
    for cue, following in zip(cues, cues[1:] + [None]):
        cue.end = max(cue.end, cue.start + 1)
        if following is not None:
            cue.end = min(cue.end, following.start)
    return cues


def format_timestamp(ms: int, decimal_marker: str) -> str:
    """`HH:MM:SS<decimal_marker>mmm`; hours grow past two digits if they must."""
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    seconds, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{decimal_marker}{ms:03d}"


class SubtitlesWriter(ResultWriter):
    def __init__(self, max_line_chars: int = 42, max_line_count: int = 2):
        self.max_line_chars, self.max_line_count = max_line_chars, max_line_count

    def cues(self, result: dict) -> list[Cue]:
        return subtitle_cues(result, self.max_line_chars, self.max_line_count)


class SrtWriter(SubtitlesWriter):
    """SubRip: numbered cues, `HH:MM:SS,mmm --> HH:MM:SS,mmm`, a blank line after each."""

    extension = "srt"

    def render(self, result: dict, utt_id: str) -> str:
        return "".join(f"{number}\n{format_timestamp(cue.start, ',')} --> {format_timestamp(cue.end, ',')}\n"
                       + "\n".join(cue.lines) + "\n\n" for number, cue in enumerate(self.cues(result), 1))


class VttWriter(SubtitlesWriter):
    """WebVTT: a `WEBVTT` header, then cues `HH:MM:SS.mmm --> HH:MM:SS.mmm` with &, <, > escaped."""

    extension = "vtt"

    def render(self, result: dict, utt_id: str) -> str:
        escape = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
        return "WEBVTT\n\n" + "".join(
            f"{format_timestamp(cue.start, '.')} --> {format_timestamp(cue.end, '.')}\n"
            + "\n".join(cue.lines).translate(escape) + "\n\n" for cue in self.cues(result))


class AllWriter:
    """Every format. Renders them all before writing any, so a result one format rejects writes nothing."""

    def __init__(self, writers: list[ResultWriter]):
        self.writers = writers
        self.extensions = tuple(writer.extension for writer in writers)

    def __call__(self, result: dict, stem: str | Path, utt_id: str) -> list[Path]:
        texts = {_path(stem, writer.extension): writer.render(result, utt_id) for writer in self.writers}
        for path, text in texts.items():
            write_text(path, text)
        return list(texts)


_WRITERS: dict[str, type[ResultWriter]] = {
    "txt": TxtWriter, "json": JsonWriter, "jsonl": JsonlWriter, "srt": SrtWriter, "vtt": VttWriter,
    "tsv": TsvWriter, "ctm": CtmWriter,
}


def _check_format(fmt: str) -> None:
    if fmt != "all" and fmt not in _WRITERS:
        raise ValueError(f"unknown output format {fmt!r}; choose from: {', '.join(FORMATS)}, all")


def get_writer(fmt: str, max_line_chars: int = 42, max_line_count: int = 2) -> ResultWriter | AllWriter:
    """The writer of `fmt` (one of FORMATS, or "all"); the line limits shape srt and vtt cues."""
    _check_format(fmt)
    if max_line_chars < 1 or max_line_count < 1:
        raise ValueError(f"line limits must be >= 1, not {max_line_chars=}, {max_line_count=}")

    def make(name: str) -> ResultWriter:
        writer_class = _WRITERS[name]
        if issubclass(writer_class, SubtitlesWriter):
            return writer_class(max_line_chars, max_line_count)
        return writer_class()

    return AllWriter([make(name) for name in FORMATS]) if fmt == "all" else make(fmt)


def output_paths(fmt: str, stem: str | Path) -> list[Path]:
    """The files `get_writer(fmt)` writes for `stem`."""
    _check_format(fmt)
    return [_path(stem, _WRITERS[name].extension) for name in (FORMATS if fmt == "all" else (fmt,))]
