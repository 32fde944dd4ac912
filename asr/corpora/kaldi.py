"""A Kaldi data directory: wav.scp, text and optional segments, utt2spk and spk2utt.

`asr prepare kaldi KALDI_DIR --out DIR` reads `wav.scp` (`rec path` or `rec command |`),
`segments` (`utt rec start end`; without it each recording is one utterance, utt = rec), `text`
and `utt2spk` (no utt2spk: each utterance is its own speaker; a `spk2utt` must agree with it).
It writes each utterance as a 16-bit WAV at its source's rate under DIR/wav/NAME/ and
DIR/NAME.jsonl (NAME: KALDI_DIR's basename) with audio paths relative to the manifest and, per
row, a "kaldi" entry {"recording", "wav", "start", "end"} (wav.scp's value; segments' times as
written there, null without segments) from which `asr export-data kaldi` rewrites the same files.

Relative paths and piped commands of wav.scp run from the current folder, as in a Kaldi recipe:
run it from the recipe's root (e.g. egs/wsj/s5). A command that fails or audio that cannot be
read skips its utterances with a warning; the rest go on.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shlex
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

import soundfile

log = logging.getLogger(__name__)

FILES = ("wav.scp", "segments", "text", "utt2spk", "spk2utt")
MARKER = ".completed"
MAX_OVERSHOOT = 0.5  # seconds a segment may end past its recording (clipped), as Kaldi's extract-segments


class Unreadable(Exception):
    """A recording whose audio cannot be had; its utterances are skipped."""


def read_table(path: Path) -> dict[str, tuple[int, str]]:
    """{key: (line number, rest of the line)} of a Kaldi table file; keys must be unique."""
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 ({err}); convert it, e.g. `iconv -t utf-8`") from None
    table = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        key, value = (line.split(maxsplit=1) + [""])[:2]
        if key in table:
            raise ValueError(f"{path}:{n}: {key} is given twice (also line {table[key][0]}); keep one")
        table[key] = (n, value)
    return table


def _fields(path: Path, table: dict, count: int, form: str) -> dict[str, tuple[int, list[str]]]:
    """The table's values split into `count` fields (any number >= 1 when count is 0)."""
    out = {}
    for key, (n, value) in table.items():
        fields = value.split()
        if (len(fields) != count) if count else not fields:
            raise ValueError(f"{path}:{n}: not a `{form}` line; fix or remove it")
        out[key] = (n, fields)
    return out


def _segment(path: Path, n: int, start: str, end: str) -> tuple[float, float | None]:
    """Seconds of a segments line; end None for Kaldi's -1 (the end of the recording)."""
    try:
        begin, stop = float(start), float(end)
    except ValueError:
        raise ValueError(f"{path}:{n}: start and end must be seconds; fix the line") from None
    if stop == -1:
        return begin, None
    if begin < 0 or stop <= begin:
        raise ValueError(f"{path}:{n}: the segment is empty or negative ({start} to {end}); "
                         "fix or remove the line")
    return begin, stop


def read_data_dir(source: Path) -> list[dict]:
    """The utterances of `text`, checked: each has audio, a speaker, consistent spk2utt.

    Each is {"id", "text", "speaker", "recording", "wav", "start", "end", "seconds": (begin,
    end or None), "line": wav.scp's line number}, in `text` order.
    """
    tables = {name: read_table(source / name) if (source / name).is_file() else None for name in FILES}
    wav_scp, text = tables["wav.scp"], tables["text"]
    for name in ("wav.scp", "text"):
        if tables[name] is None:
            raise FileNotFoundError(f"{source / name}: not found; give a Kaldi data directory "
                                    "(wav.scp, text, optional segments and utt2spk)")
    if tables["segments"] is not None:
        segments = _fields(source / "segments", tables["segments"], 3, "utt rec start end")
        for n, (rec, _, _) in segments.values():
            if rec not in wav_scp:
                raise ValueError(f"{source / 'segments'}:{n}: recording {rec} is not in wav.scp; "
                                 "add it there or remove the line")
    else:
        segments = {rec: (n, [rec, None, None]) for rec, (n, _) in wav_scp.items()}
    speakers = {}
    if tables["utt2spk"] is not None:
        speakers = {u: spk[0] for u, (_, spk) in _fields(source / "utt2spk", tables["utt2spk"], 1,
                                                             "utt speaker").items()}
        _check_spk2utt(source / "spk2utt", tables["spk2utt"], speakers)
    audio_file = "segments" if tables["segments"] is not None else "wav.scp"
    utts = []
    for utt, (n, words) in text.items():
        if utt not in segments:
            raise ValueError(f"{source / 'text'}:{n}: {utt} has no audio (no line in {audio_file}); "
                             f"add one or remove the line")
        if tables["utt2spk"] is not None and utt not in speakers:
            raise ValueError(f"{source / 'text'}:{n}: {utt} has no speaker in utt2spk; "
                             f"add a line `{utt} SPEAKER`")
        seg_line, (rec, start, end) = segments[utt]
        seconds = _segment(source / "segments", seg_line, start, end) if start is not None else (0.0, None)
        utts.append({"id": utt, "text": words, "speaker": speakers.get(utt, utt), "recording": rec,
                     "wav": wav_scp[rec][1], "start": start, "end": end, "seconds": seconds,
                     "line": wav_scp[rec][0]})
    if len(segments) > len(utts):
        log.warning("%s: %d utterances of %s have no line in text and are left out", source,
                    len(segments) - len(utts), audio_file)
    return utts


def _check_spk2utt(path: Path, table: dict | None, utt2spk: dict[str, str]) -> None:
    """spk2utt, if there, must list exactly utt2spk's utterances of each speaker."""
    if table is None:
        return
    derived: dict[str, set[str]] = {}
    for utt, spk in utt2spk.items():
        derived.setdefault(spk, set()).add(utt)
    fix = "regenerate it: utils/utt2spk_to_spk2utt.pl utt2spk > spk2utt"
    for spk, (n, utts) in _fields(path, table, 0, "speaker utt ...").items():
        if set(utts) != derived.get(spk, set()):
            raise ValueError(f"{path}:{n}: {spk}'s utterances differ from utt2spk's; {fix}")
    missing = sorted(set(derived) - set(table))
    if missing:
        raise ValueError(f"{path}: speaker {missing[0]} of utt2spk has no line; {fix}")


def missing_program(command: str) -> str | None:
    """The first program of a shell pipeline that is not installed, if any."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None  # shell syntax we do not parse: let the shell judge
    stages: list[list[str]] = [[]]
    for word in words:
        stages.append([]) if word == "|" else stages[-1].append(word)
    for stage in stages:
        program = next((w for w in stage if "=" not in w), None)  # skip VAR=value
        if program and shutil.which(program) is None:
            return program
    return None


def _check_programs(wav_scp: Path, utts: list[dict]) -> None:
    """A one-line error for the first piped command whose program is not installed."""
    seen = set()
    for utt in utts:
        if utt["wav"].endswith("|") and utt["recording"] not in seen:
            seen.add(utt["recording"])
            program = missing_program(utt["wav"][:-1])
            if program:
                raise FileNotFoundError(
                    f"{wav_scp}:{utt['line']}: the command of {utt['recording']} runs `{program}`, which "
                    f"is not installed; install it (e.g. apt-get install {Path(program).name}) or add "
                    "its folder to PATH")


def read_recording(value: str) -> tuple:
    """(int16 samples (S,) or (S, C), sample rate) of a wav.scp value: a path or `command |`."""
    if value.endswith("|"):
        proc = subprocess.run(value[:-1], shell=True, stdin=subprocess.DEVNULL, capture_output=True)
        if proc.returncode:
            error = (proc.stderr.decode(errors="replace").strip().splitlines() or ["no message"])[-1]
            raise Unreadable(f"the command failed with exit status {proc.returncode}: {error}")
        audio = io.BytesIO(proc.stdout)
    elif not Path(value).is_file():
        raise Unreadable(f"{value}: no such file (relative paths start from {os.getcwd()})")
    else:
        audio = value
    try:
        return soundfile.read(audio, dtype="int16")
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as err:
        raise Unreadable(f"cannot read its audio ({err})") from None


def _cut(samples, rate: int, seconds: tuple[float, float | None]):
    """The samples of a segment, clipped to the recording as Kaldi clips it."""
    begin, end = round(seconds[0] * rate), None if seconds[1] is None else round(seconds[1] * rate)
    length = len(samples) / rate
    if end is not None and end > len(samples) + MAX_OVERSHOOT * rate:
        raise Unreadable(f"the segment ends at {end / rate:.2f} s, past the recording's {length:.2f} s")
    if not len(samples[begin:end]):
        raise Unreadable(f"the segment holds no samples of the recording's {length:.2f} s")
    return samples[begin:end]


def _params(source: Path) -> dict:
    """What the output depends on: the source folder, its files' contents, the current folder."""
    files = {name: hashlib.sha256((source / name).read_bytes()).hexdigest()
             for name in FILES if (source / name).is_file()}
    return {"source": str(source), "cwd": os.getcwd(), "files": files}


def prepare_kaldi(out_dir: str | Path, source: str | Path) -> dict[str, Path]:
    """Import the Kaldi data directory `source` into `out_dir`; returns {NAME: manifest}.

    Idempotent: `out_dir/wav/NAME/.completed` records the inputs; a rerun with the same ones
    returns at once, with others it redoes the set.
    """
    from asr.data import write_jsonl

    source, out_dir = Path(source).resolve(), Path(out_dir)
    name = source.name
    manifest, wav_dir = out_dir / f"{name}.jsonl", out_dir / "wav" / name
    if not (source / "wav.scp").is_file():
        raise FileNotFoundError(f"{source / 'wav.scp'}: not found; give a Kaldi data directory "
                                "(wav.scp, text, optional segments and utt2spk)")
    params = _params(source)
    marker = wav_dir / MARKER
    if marker.is_file() and json.loads(marker.read_text()) == params and manifest.is_file():
        log.info("%s: already prepared from %s", manifest, source)
        return {name: manifest}
    utts = read_data_dir(source)
    _check_programs(source / "wav.scp", utts)
    shutil.rmtree(wav_dir, ignore_errors=True)  # wav/NAME only ever holds our files
    wav_dir.mkdir(parents=True)
    by_recording: dict[str, list[dict]] = {}
    for utt in utts:
        by_recording.setdefault(utt["recording"], []).append(utt)
    rows, skipped = {}, 0
    for rec, rec_utts in by_recording.items():
        try:
            samples, rate = read_recording(rec_utts[0]["wav"])
        except Unreadable as err:
            skipped += len(rec_utts)
            log.warning("%s:%d: skipping %s of recording %s: %s", source / "wav.scp", rec_utts[0]["line"],
                        " ".join(u["id"] for u in rec_utts), rec, err)
            continue
        for utt in rec_utts:
            try:
                cut = _cut(samples, rate, utt["seconds"])
            except Unreadable as err:
                skipped += 1
                log.warning("%s: skipping %s: %s", source / "segments", utt["id"], err)
                continue
            audio = Path("wav", name, quote(utt["id"], safe="") + ".wav")
            soundfile.write(out_dir / audio, cut, rate, subtype="PCM_16")
            rows[utt["id"]] = {"id": utt["id"], "audio_filepath": str(audio), "duration": len(cut) / rate,
                               "text": utt["text"], "speaker": utt["speaker"],
                               "kaldi": {k: utt[k] for k in ("recording", "wav", "start", "end")}}
    if not rows:
        raise ValueError(f"{source}: no utterance could be read (see the warnings); fix wav.scp, "
                         "or run from the folder its relative paths start from")
    write_jsonl(manifest, [rows[u["id"]] for u in utts if u["id"] in rows])
    marker.write_text(json.dumps(params, indent=1, sort_keys=True) + "\n")
    log.info("%s: %d utterances, %.2f h, %d skipped -> %s", name, len(rows),
             sum(r["duration"] for r in rows.values()) / 3600, skipped, manifest)
    return {name: manifest}


def add_arguments(parser) -> None:
    """Options of `asr prepare kaldi`; dest names are prepare_kaldi's keywords."""
    parser.add_argument("source", help="the Kaldi data directory, e.g. data/train (wav.scp, text, "
                                       "optional segments, utt2spk, spk2utt)")
