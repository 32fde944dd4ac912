"""Real acted English speech from The Ur-Quan Masters (Debian `uqm-voice`, `uqm-content`).

About 2,200 dialogue clips of about 25 actors, one per alien race (11,025 Hz Ogg, read
straight from the packages' zip files; CC BY-NC-SA 2.5). Transcripts are the game's
dialogue files: `#(KEY)<tab>clip.ogg` then the clip's text lines; a `.ts` file holds each
line's duration in ms (all but the last line's), which lets a long clip be cut between
lines, at the quietest moment near the nominal boundary.

- Stage directions are not speech: parenthesised interjections such as "(SOB!)",
  "(sniff!)", "(...later...)" and anything in <angle brackets> are dropped, and so is a
  clip that holds nothing else. Parenthesised asides that are spoken stay.
- Clips longer than MAX_SECONDS are cut between lines into pieces of at most that long,
  or left out (counted) when a single line is longer or the timings do not match.
- Whole characters are held out: dev and test speakers are actors training never heard.
  Races one actor may have voiced together (yehat/yehatrebels, urquan/kohrah,
  starbase/commander) count as one character.

Writes `{train,dev,test}.jsonl` (and `test_clips.jsonl`: the test clips that needed no
cut, a smaller set of whole recordings) with 16 kHz wavs under `wav/<race>/`, `lm_train.txt`
(the training actors' transcripts, then the unvoiced lines of their conversations: the
captain's replies) and `summary.json` (what was kept, cut and left out).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile

from asr.atomic import write_text
from asr.text import normalize

log = logging.getLogger(__name__)

DATA_DIR = "/usr/share/games/uqm/content"
VOICE_ZIP = "addons/uqm-0.8.0-voice.uqm"
CONTENT_ZIP = "packages/uqm-0.8.0-content.uqm"
INSTALL = ("apt-get install uqm-voice uqm-content (Debian non-free; Ubuntu multiverse), or "
           "`apt-get download` both and pass --data-dir to the usr/share/games/uqm/content of "
           "`dpkg-deb -x`")
SAMPLE_RATE = 16000
MAX_SECONDS = 20.0
DEV_RACES = ("spathi", "supox", "chmmr")
TEST_RACES = ("syreen", "arilou", "orz", "utwig")
SAME_ACTOR = {"yehatrebels": "yehat", "kohrah": "urquan", "commander": "starbase"}
_VERSION = 2

_INTERJECTION = re.compile(
    r"\((?:[^()\s]+!+|\.\.\.[^()]*|(?:sob|sniff|whimper|sigh|urp|urk|gulp|hee|snork|gasp|cough|"
    r"laugh|giggle|crash)[^()]*)\)|<[^<>]*>", re.IGNORECASE)
_ENTRY = re.compile(r"^#\((\w+)\)[ \t]*(\S*)")


def speech_text(line: str) -> str:
    """A transcript line without its stage directions, normalised ("" when none is left)."""
    return normalize(_INTERJECTION.sub(" ", line))


def parse_dialogue(text: str) -> dict[str, tuple[str, list[str]]]:
    """A race's dialogue file -> {KEY: (clip file name or "", [text lines])}."""
    entries: dict[str, tuple[str, list[str]]] = {}
    lines: list[str] = []
    for raw in text.splitlines():
        if match := _ENTRY.match(raw):
            lines = []
            entries[match[1]] = (match[2], lines)
        elif entries and raw.strip():
            lines.append(raw.strip())
    return entries


def parse_timings(text: str) -> dict[str, list[int]]:
    """A race's .ts file -> {KEY: [duration of each line but the last, in ms]}."""
    timings = {}
    for raw in text.splitlines():
        if match := re.match(r"^#\((\w+)\)\s*([\d,\s]*)$", raw.strip()):
            timings[match[1]] = [int(d) for d in match[2].replace(" ", "").split(",") if d]
    return timings


def _quietest(wave: np.ndarray, around: int, rate: int, reach: float = 0.6) -> int:
    """The middle of the quietest 50 ms within `reach` seconds of sample `around`."""
    hop = int(0.05 * rate)
    lo, hi = max(0, around - int(reach * rate)), min(len(wave), around + int(reach * rate))
    if hi - lo < 2 * hop:
        return around
    frames = np.lib.stride_tricks.sliding_window_view(wave[lo:hi], hop)[::hop // 2]  # (F, hop)
    return lo + int(np.argmin((frames**2).mean(axis=1))) * (hop // 2) + hop // 2


def cut_between_lines(wave: np.ndarray, rate: int, lines: list[str], timings: list[int],
                      max_seconds: float = MAX_SECONDS) -> list[tuple[int, int, list[str]]] | None:
    """Pieces (start, end, lines) of at most `max_seconds`, cut between lines at pauses;
    None when the timings do not match the lines or one line alone is too long."""
    if len(timings) != len(lines) - 1:
        return None
    nominal = np.cumsum(timings) * rate // 1000  # ends of all lines but the last
    if len(nominal) and nominal[-1] >= len(wave):
        return None
    bounds = [0, *(_quietest(wave, int(b), rate) for b in nominal), len(wave)]
    if any(a >= b for a, b in zip(bounds, bounds[1:])):  # lines too short to cut between
        return None
    limit = max_seconds * rate
    pieces: list[tuple[int, int, list[str]]] = []
    for i, line in enumerate(lines):
        start, end = bounds[i], bounds[i + 1]
        if end - start > limit:
            return None
        if pieces and end - pieces[-1][0] <= limit:
            pieces[-1] = (pieces[-1][0], end, pieces[-1][2] + [line])
        else:
            pieces.append((start, end, [line]))
    return pieces


def _character(race: str) -> str:
    return SAME_ACTOR.get(race, race)


def _split_of(race: str, dev: tuple[str, ...], test: tuple[str, ...]) -> str:
    character = _character(race)
    return "test" if character in test else "dev" if character in dev else "train"


def _resample(wave: np.ndarray, rate: int) -> np.ndarray:
    import soxr  # fast, high-quality resampling

    return wave if rate == SAMPLE_RATE else soxr.resample(wave, rate, SAMPLE_RATE).astype(np.float32)


@contextlib.contextmanager
def game_zips(data_dir: Path) -> Iterator[tuple[zipfile.ZipFile, zipfile.ZipFile]]:
    """The game's voice and content zips, open; a missing or broken one names the fix."""
    with contextlib.ExitStack() as stack:
        zips = []
        for path in (Path(data_dir) / VOICE_ZIP, Path(data_dir) / CONTENT_ZIP):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: not found; install the game's voice and "
                                        f"content: {INSTALL}")
            try:
                zips.append(stack.enter_context(zipfile.ZipFile(path)))
            except zipfile.BadZipFile:
                raise ValueError(f"{path}: not a readable zip file (broken or partly "
                                 f"downloaded); reinstall the package: {INSTALL}") from None
        yield zips[0], zips[1]


def _races(voice: zipfile.ZipFile) -> list[str]:
    return sorted({n.split("/")[1] for n in voice.namelist()
                   if n.startswith("3dovoice/") and n.endswith(".ogg")})


def _dialogue(voice: zipfile.ZipFile, content: zipfile.ZipFile, race: str):
    """The race's transcripts (the voice pack's own when it has them) and line timings;
    None when neither zip holds them."""
    names = set(voice.namelist())
    own, shared = f"3dovoice/{race}/{race}.txt", f"base/comm/{race}/{race}.txt"
    if own not in names and shared not in set(content.namelist()):
        return None
    text = voice.read(own) if own in names else content.read(shared)
    ts = f"3dovoice/{race}/{race}.ts"
    timings = parse_timings(voice.read(ts).decode("latin-1")) if ts in names else {}
    return parse_dialogue(text.decode("latin-1")), timings


def prepare_uqm(out_dir: str | Path, data_dir: str | Path = DATA_DIR,
                dev_races: tuple[str, ...] = DEV_RACES, test_races: tuple[str, ...] = TEST_RACES,
                max_seconds: float = MAX_SECONDS) -> dict[str, Path]:
    """Write the UQM corpus to `out_dir` (see the module docstring); idempotent: returns at
    once when `out_dir` holds a corpus made with the same options. Returns split -> manifest."""
    from asr.corpora.common import is_completed, mark_completed, start_fresh  # torch: import late
    from asr.data import write_manifest

    out_dir, data_dir = Path(out_dir), Path(data_dir)
    manifests = {split: out_dir / f"{split}.jsonl" for split in ("train", "dev", "test", "test_clips")}
    params = {"corpus": "uqm", "version": _VERSION, "dev": sorted(dev_races),
              "test": sorted(test_races), "max_seconds": max_seconds}
    if is_completed(out_dir, params, [*manifests.values(), out_dir / "lm_train.txt"]):
        log.info("%s: UQM corpus already prepared, skipping", out_dir)
        return manifests
    if both := set(map(_character, dev_races)) & set(map(_character, test_races)):
        raise ValueError(f"{', '.join(sorted(both))}: held out for both dev and test; give "
                         "each character to one of --dev-races and --test-races")
    with game_zips(data_dir) as (voice, content):
        races = _races(voice)
        if unknown := (set(dev_races) | set(test_races)) - {_character(r) for r in races}:
            raise ValueError(f"no UQM character {', '.join(sorted(unknown))}; choose from "
                             f"{', '.join(sorted({_character(r) for r in races}))}")
        start_fresh(out_dir)
        rows: dict[str, list[dict]] = {split: [] for split in manifests}
        unvoiced: list[str] = []  # the training races' lines no actor says, for the LM
        counts = {"clips": 0, "kept": 0, "cut": 0, "pieces": 0, "no_speech": 0, "too_long": 0,
                  "no_transcript": 0, "unreadable": 0, "no_dialogue": 0}
        clips = set(voice.namelist())
        for race in races:
            split = _split_of(race, dev_races, test_races)
            if (dialogue := _dialogue(voice, content, race)) is None:
                log.warning("%s: no dialogue file for %s; its clips are left out", data_dir, race)
                counts["no_dialogue"] += 1
                continue
            entries, timings = dialogue
            (out_dir / "wav" / race).mkdir(parents=True, exist_ok=True)
            transcribed = {clip for clip, _ in entries.values() if clip}
            counts["no_transcript"] += sum(1 for n in clips if n.startswith(f"3dovoice/{race}/")
                                           and n.endswith(".ogg") and n.split("/")[-1] not in transcribed)
            for key, (clip, lines) in entries.items():
                member = f"3dovoice/{race}/{clip}"
                if split == "train" and not clip and (text := speech_text(" ".join(lines))):
                    unvoiced.append(text)
                if not clip or member not in clips or not lines:
                    continue
                counts["clips"] += 1
                if not speech_text(" ".join(lines)):
                    counts["no_speech"] += 1
                    continue
                try:
                    with voice.open(member) as f:
                        wave, rate = soundfile.read(f, dtype="float32", always_2d=True)  # (S, C)
                except (soundfile.LibsndfileError, RuntimeError) as err:
                    log.warning("%s: %s is unreadable (%s); left out", data_dir / VOICE_ZIP, member, err)
                    counts["unreadable"] += 1
                    continue
                wave = wave.mean(axis=1)
                if len(wave) <= max_seconds * rate:
                    pieces = [(0, len(wave), lines)]
                else:
                    pieces = cut_between_lines(wave, rate, lines, timings.get(key, []), max_seconds)
                    if pieces is None:
                        counts["too_long"] += 1
                        continue
                    counts["cut"] += 1
                counts["kept"] += 1
                for k, (start, end, piece_lines) in enumerate(pieces):
                    text = speech_text(" ".join(piece_lines))
                    if not text:
                        continue
                    suffix = f"-{k}" if len(pieces) > 1 else ""
                    stem = Path(clip).stem
                    utt_id = (stem if stem.startswith(race) else f"{race}-{stem}") + suffix
                    path = out_dir / "wav" / race / f"{utt_id}.wav"
                    audio = _resample(wave[start:end], rate)
                    soundfile.write(path, audio, SAMPLE_RATE, subtype="PCM_16")
                    counts["pieces"] += 1
                    row = {"id": utt_id, "audio_filepath": str(path.resolve()),
                           "duration": round(len(audio) / SAMPLE_RATE, 3), "text": text,
                           "speaker": _character(race), "engine": "human"}
                    rows[split].append(row)
                    if split == "test" and len(pieces) == 1:
                        rows["test_clips"].append(row)
    for split, path in manifests.items():
        if not rows[split]:
            raise ValueError(f"{data_dir}: UQM {split} set came out empty; check --dev-races/--test-races")
        write_manifest(path, rows[split])
        log.info("uqm %s: %d utterances, %.2f h, %d characters", split, len(rows[split]),
                 sum(r["duration"] for r in rows[split]) / 3600, len({r["speaker"] for r in rows[split]}))
    lm_lines = [r["text"] for r in rows["train"]] + unvoiced
    write_text(out_dir / "lm_train.txt", "".join(line + "\n" for line in lm_lines))
    write_text(out_dir / "summary.json", json.dumps(counts, indent=1) + "\n")
    log.info("uqm: %s", counts)
    mark_completed(out_dir, params)
    return manifests


def add_arguments(parser) -> None:
    """`asr prepare uqm` options."""
    parser.add_argument("--data-dir", default=DATA_DIR,
                        help="the game's content folder (holding addons/ and packages/)")
    parser.add_argument("--dev-races", nargs="+", default=DEV_RACES, help="dev characters")
    parser.add_argument("--test-races", nargs="+", default=TEST_RACES, help="test characters")
    parser.add_argument("--max-seconds", type=float, default=MAX_SECONDS,
                        help="longer clips are cut between lines, or left out")
