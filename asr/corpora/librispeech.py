"""LibriSpeech (openslr.org/12): 1,000 h of read English audiobooks, 16 kHz FLAC.

`asr prepare librispeech --out data --data-root DIR` reads the release as it unpacks,
`DIR/LibriSpeech/<part>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt` beside the
`<speaker>-<chapter>-<utt>.flac` files (DIR may also be the LibriSpeech folder itself), and writes
`out/<part>.jsonl` for each of `--parts`: id `<speaker>-<chapter>-<utt>`, speaker = the speaker's
number, text as in the transcripts (upper case; training normalises it), duration from the FLAC
header; the audio stays in DIR. `out/lm_train.txt` is the LM text: a link to
`librispeech-lm-norm.txt` when DIR holds it (openslr.org/11), else the training parts' transcripts,
never dev or test. With `--download` the parts DIR lacks are fetched from `--base-url` first
(`download_librispeech`): resumed after a cut, checked against the official md5 sums, extracted,
with a disk-space check before anything starts.
"""

from __future__ import annotations

import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import soundfile

from asr.atomic import write_text
from asr.corpora.folder import is_prepared, log_skipped, mark_prepared

log = logging.getLogger(__name__)

_VERSION = 1
BASE_URL = "https://www.openslr.org/resources/12"
SAMPLE_RATE = 16000
LM_TEXT = "librispeech-lm-norm.txt"
# part -> (md5 of <part>.tar.gz from openslr.org/resources/12/md5sum.txt, its bytes, utterances)
ARCHIVES = {
    "dev-clean": ("42e2234ba48799c1f50f24a7926300a1", 337926286, 2703),
    "dev-other": ("c8d0bcc9cca99d4f8b62fcc847357931", 314305928, 2864),
    "test-clean": ("32fa31d27d2e1cad72775fee3f4849a9", 346663984, 2620),
    "test-other": ("fb5a50374b501bb3bac4815ee91d3135", 328757843, 2939),
    "train-clean-100": ("2a93770f6d5c6c964bc36631d331a522", 6387309499, 28539),
    "train-clean-360": ("c0e676e450a7ff2f54aeade5171606fa", 23049477885, 104014),
    "train-other-500": ("d1a0fd59409feb2c614ce4d30c387708", 30593501606, 148688),
}
PARTS = tuple(ARCHIVES)
EXTRACT_FACTOR = 1.02  # FLAC does not compress: a part unpacks to about its archive's size
_UTT_ID = re.compile(r"^(\d+)-(\d+)-(\d+)$")
_FIX_ROOT = ("point --data-root at the folder holding LibriSpeech/<part>/ (or give --download to fetch "
             "the part)")


def corpus_dir(data_root: str | Path) -> Path:
    """The folder holding the parts: DATA_ROOT/LibriSpeech, or DATA_ROOT itself when it holds them."""
    data_root = Path(data_root)
    inner = data_root / "LibriSpeech"
    return inner if inner.is_dir() or not any((data_root / p).is_dir() for p in PARTS) else data_root


def read_md5sums(path: str | Path) -> dict[str, str]:
    """{part: md5} from an md5sum.txt (`<md5>  <part>.tar.gz` lines), e.g. for a repacked mirror."""
    sums = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.strip():
            words = line.split()
            if len(words) != 2 or not re.fullmatch(r"[0-9a-f]{32}", words[0]):
                raise ValueError(f"{path}:{n}: not an `<md5>  <file>` line; use md5sum's output format")
            sums[words[1].lstrip("*").removesuffix(".tar.gz")] = words[0]
    return sums


def _check_parts(parts: list[str] | tuple[str, ...]) -> list[str]:
    unknown = [p for p in parts if p not in ARCHIVES]
    if unknown:
        raise ValueError(f"unknown LibriSpeech part {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    return list(dict.fromkeys(parts))


def download_librispeech(root: str | Path, parts=PARTS, base_url: str = BASE_URL,
                         md5sums: str | Path | None = None, remove_archives: bool = False) -> Path:
    """Download `<part>.tar.gz` from `base_url` into `root` and extract it to root/LibriSpeech/<part>,
    for each part not there yet (a part folder that came without our markers, a local copy, is
    kept as it is). Archives are checked against the official md5 sums, or those of `md5sums` (an
    md5sum.txt). Checks the free disk space of all of it first. Returns root/LibriSpeech."""
    from asr.download import check_disk, download, safe_extract

    root, parts = Path(root), _check_parts(parts)
    sums = {p: ARCHIVES[p][0] for p in parts} | (read_md5sums(md5sums) if md5sums else {})
    todo = []
    for part in parts:
        archive = root / f"{part}.tar.gz"
        extracted = (root / f".{archive.name}.complete").is_file()
        local_copy = (root / "LibriSpeech" / part).is_dir() and not archive.exists() and not (
            root / f"{archive.name}.part").exists()
        if extracted or local_copy:
            log.info("%s: %s already there, not downloading it", root / "LibriSpeech" / part, part)
        else:
            todo.append(part)
    needed = 0.0
    for part in (p for p in todo if sums[p] == ARCHIVES[p][0]):  # the official archives' sizes are known
        archive, size = root / f"{part}.tar.gz", ARCHIVES[part][1]
        have = max((p.stat().st_size for p in (archive, root / f"{archive.name}.part") if p.is_file()),
                   default=0)
        needed += max(size - have, 0) + size * EXTRACT_FACTOR
    if needed:  # download and safe_extract check each file again
        check_disk(root, needed, f"LibriSpeech {' '.join(todo)} (archives and their extraction)")
    for part in todo:
        archive = download(f"{base_url.rstrip('/')}/{part}.tar.gz", root / f"{part}.tar.gz", sums[part])
        safe_extract(archive, root)
        if remove_archives:
            archive.unlink()
    return root / "LibriSpeech"


def _read_chapter(trans: Path) -> tuple[list[tuple[str, Path, str]], list[str]]:
    """([(id, flac, text)], problems) of one chapter's transcript file."""
    speaker, chapter = trans.parent.parent.name, trans.parent.name
    rows, problems = [], []
    for n, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        utt_id, _, text = line.strip().partition(" ")
        match = _UTT_ID.match(utt_id)
        if not match or match.group(1, 2) != (speaker, chapter):
            problems.append(f"{trans}:{n}: id {utt_id!r} is not {speaker}-{chapter}-<utt>")
        elif not text.strip():
            problems.append(f"{trans}:{n}: {utt_id} has no text")
        else:
            rows.append((utt_id, trans.parent / f"{utt_id}.flac", " ".join(text.split())))
    return rows, problems


def _info(flac: Path) -> float | str:
    """Seconds of audio in `flac`, or why it cannot be used."""
    if not flac.is_file():
        return "missing"
    try:
        info = soundfile.info(str(flac))
    except (soundfile.LibsndfileError, RuntimeError) as err:
        return f"unreadable ({str(err).splitlines()[0]})"
    if info.samplerate != SAMPLE_RATE or info.channels != 1:
        return f"{info.samplerate} Hz, {info.channels} channels (expected {SAMPLE_RATE} Hz mono)"
    return info.frames / info.samplerate if info.frames > 0 else "no samples"


def read_part(part_dir: Path, jobs: int) -> list[dict]:
    """Manifest rows of one part, checked: every transcript line has its FLAC, every FLAC a line."""
    transcripts = sorted(part_dir.glob("*/*/*.trans.txt"))
    if not transcripts:
        raise FileNotFoundError(f"{part_dir}: no <speaker>/<chapter>/*.trans.txt; {_FIX_ROOT}")
    found, problems = [], []
    for trans in transcripts:
        rows, bad = _read_chapter(trans)
        found += rows
        problems += bad
    with ThreadPoolExecutor(jobs) as pool:  # soundfile releases the GIL while it reads headers
        durations = list(pool.map(_info, [flac for _, flac, _ in found]))
    rows = []
    for (utt_id, flac, text), duration in zip(found, durations):
        if isinstance(duration, str):
            problems.append(f"{flac}: {duration}")
        else:
            rows.append({"id": utt_id, "audio_filepath": str(flac), "duration": round(duration, 3),
                         "text": text, "speaker": utt_id.split("-")[0], "chapter": utt_id.split("-")[1]})
    named = {utt_id for utt_id, _, _ in found}
    orphans = [str(f.relative_to(part_dir)) for f in sorted(part_dir.glob("*/*/*.flac"))
               if f.stem not in named]
    log_skipped(part_dir, "problems (lines without usable audio, bad ids)", problems)
    log_skipped(part_dir, "FLAC files no transcript names", orphans)
    if len({r["id"] for r in rows}) != len(rows):
        raise ValueError(f"{part_dir}: an utterance id appears twice; extract the part again")
    if not rows:
        raise ValueError(f"{part_dir}: no utterance with readable audio; extract the part again")
    expected = ARCHIVES[part_dir.name][2]
    if len(rows) != expected:
        log.warning("%s: %d utterances; the official part has %d (a partial or modified copy?)",
                    part_dir, len(rows), expected)
    return rows


def _fingerprint(part_dir: Path) -> list:
    """The transcripts' names and sizes: a changed copy redoes the part."""
    return [[str(t.relative_to(part_dir)), t.stat().st_size]
            for t in sorted(part_dir.glob("*/*/*.trans.txt"))]


def _write_lm_text(out_dir: Path, source: Path, train_manifests: list[Path]) -> Path:
    """out_dir/lm_train.txt: a link to librispeech-lm-norm.txt when `source` holds it, else the
    transcripts of `train_manifests`."""
    from asr.data import read_manifest

    lm_text = out_dir / "lm_train.txt"
    norm = next((p for p in (source / LM_TEXT, source / "LibriSpeech" / LM_TEXT) if p.is_file()), None)
    lm_text.unlink(missing_ok=True)
    if norm is not None:
        target, folder = norm.resolve(), out_dir.resolve()
        os.symlink(os.path.relpath(target, folder) if target.is_relative_to(folder) else target, lm_text)
        log.info("%s -> %s", lm_text, norm)
    else:
        write_text(lm_text, "".join(r["text"] + "\n" for m in train_manifests for r in read_manifest(m)))
        log.info("%s: the transcripts of %s (no %s in %s)", lm_text,
                 ", ".join(m.stem for m in train_manifests), LM_TEXT, source)
    return lm_text


def prepare_librispeech(out_dir: str | Path, data_root: str | Path,
                        parts=("train-clean-100", "dev-clean", "dev-other", "test-clean", "test-other"),
                        download: bool = False, base_url: str = BASE_URL, md5sums: str | None = None,
                        remove_archives: bool = False, jobs: int | None = None) -> dict[str, Path]:
    """Write `out_dir/<part>.jsonl` per part and, when a training part is among them,
    `out_dir/lm_train.txt` (see the module docstring); with `download`, fetch missing parts into
    `data_root` first. Idempotent per part: `out_dir/.<part>.completed` records the source and its
    transcripts. Returns {part: manifest path}."""
    from asr.data import write_manifest

    parts, data_root, out_dir = _check_parts(parts), Path(data_root).absolute(), Path(out_dir)
    if download:
        download_librispeech(data_root, parts, base_url, md5sums, remove_archives)
    if not data_root.is_dir():
        raise FileNotFoundError(f"{data_root}: no such folder; {_FIX_ROOT}")
    source, jobs = corpus_dir(data_root), jobs or min(8, os.cpu_count() or 1)
    manifests = {}
    for part in parts:
        part_dir, manifest = source / part, out_dir / f"{part}.jsonl"
        if not part_dir.is_dir():
            raise FileNotFoundError(f"{part_dir}: not found; {_FIX_ROOT}")
        params = {"corpus": "librispeech", "version": _VERSION, "source": str(part_dir.resolve()),
                  "transcripts": _fingerprint(part_dir)}
        marker = out_dir / f".{part}.completed"
        if is_prepared(marker, params, [manifest]):
            log.info("%s: already prepared from %s, skipping", manifest, part_dir)
        else:
            rows = read_part(part_dir, jobs)
            write_manifest(manifest, rows)
            mark_prepared(marker, params)
            log.info("%s: %d utterances, %.2f h, %d speakers -> %s", part, len(rows),
                     sum(r["duration"] for r in rows) / 3600, len({r["speaker"] for r in rows}), manifest)
        manifests[part] = manifest
    train = [manifests[p] for p in parts if p.startswith("train")]
    if train:
        _write_lm_text(out_dir, data_root, train)
    return manifests


def add_arguments(parser) -> None:
    """Options of `asr prepare librispeech`; dest names are prepare_librispeech's keywords."""
    parser.add_argument("--data-root", required=True, metavar="DIR",
                        help="the folder holding LibriSpeech/<part>/ (where --download puts it)")
    parser.add_argument("--parts", nargs="+", metavar="PART",
                        default=["train-clean-100", "dev-clean", "dev-other", "test-clean", "test-other"],
                        help=f"parts to prepare, of {', '.join(PARTS)} (default: train-clean-100 and "
                             "the dev and test parts)")
    parser.add_argument("--download", action="store_true",
                        help="first fetch the parts DIR lacks (resumable, md5-checked) and extract them")
    parser.add_argument("--base-url", default=BASE_URL,
                        help=f"where <part>.tar.gz are (default {BASE_URL}; mirrors: "
                             "https://us.openslr.org/resources/12, https://openslr.elda.org/resources/12)")
    parser.add_argument("--md5sums", metavar="FILE",
                        help="md5sum.txt of the archives at --base-url, when they are not the official ones")
    parser.add_argument("--remove-archives", action="store_true",
                        help="delete each archive once extracted (its marker stays: no new download)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="FLAC headers read at once (default: min(8, CPUs))")
