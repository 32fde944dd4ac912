"""Fetching corpora: resumable HTTP(S) downloads checked by md5, and safe tar extraction.

`download(url, dest, md5)` writes into `dest.part`, resuming it with an HTTP Range request after a
cut connection (within the call, and in a later call), checks the md5, then moves it to `dest` and
writes `dest.complete` (an md5sum line), so a finished file returns at once next time. A file whose
md5 is wrong is deleted and fetched once more before the one-line error. `safe_extract` unpacks a
tar archive refusing members that would land outside the destination, and leaves its own marker.
urllib only: no dependencies beyond the standard library and tqdm.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import shutil
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from asr.atomic import write_text

log = logging.getLogger(__name__)

CHUNK = 1 << 20
RETRIES = 5  # connection failures resumed within one call
TIMEOUT = 60.0  # seconds without data before a connection counts as failed


class DownloadError(ValueError):
    """A download or extraction that failed; the message names the file and the fix."""


def _size(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n:.0f} bytes"


def check_disk(path: str | Path, needed_bytes: float, what: str = "") -> None:
    """Raise DownloadError unless the file system of `path` (or of its nearest existing parent)
    has `needed_bytes` free."""
    path = Path(path).absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    if free < needed_bytes:
        raise DownloadError(f"{path}: {_size(free)} free, {_size(needed_bytes)} needed"
                            f"{' for ' + what if what else ''}; free some space or choose another folder")


def md5_of(path: str | Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def marker_of(dest: Path) -> Path:
    return dest.with_name(dest.name + ".complete")


def recorded_md5(dest: str | Path) -> str | None:
    """The md5 in `dest.complete` (None when `dest` is not complete)."""
    dest = Path(dest)
    marker = marker_of(dest)
    words = marker.read_text().split() if marker.is_file() and dest.is_file() else []
    return words[0] if words else None


def _fetch(url: str, part: Path) -> None:
    """Download `url` into `part`, appending to what it holds (Range); resumes up to RETRIES times."""
    for attempt in range(RETRIES + 1):
        offset = part.stat().st_size if part.exists() else 0
        request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                if offset and response.status != 206:  # the server ignored Range: start again
                    offset = 0
                length = response.headers.get("Content-Length")
                total = offset + int(length) if length is not None else None
                if length is not None:
                    check_disk(part.parent, int(length), f"downloading {url}")
                with open(part, "ab" if offset else "wb") as out, tqdm(
                        total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                        desc=part.name.removesuffix(".part"), disable=None, leave=False) as bar:
                    while block := response.read(CHUNK):
                        out.write(block)
                        bar.update(len(block))
                if total is not None and part.stat().st_size < total:
                    raise ConnectionError(f"connection closed at byte {part.stat().st_size} of {total}")
                return
        except urllib.error.HTTPError as err:
            if err.code == 416 and offset:  # nothing left to fetch: the part is whole (md5 decides)
                return
            if err.code < 500:
                raise DownloadError(f"{url}: HTTP {err.code} {err.reason}; check the URL "
                                    "(--base-url) or try another mirror") from None
            problem = f"HTTP {err.code} {err.reason}"
        except (OSError, http.client.HTTPException) as err:  # URLError, a cut or timed-out connection
            if isinstance(err, OSError) and err.errno == 28:  # ENOSPC
                raise DownloadError(f"{part}: the disk is full; free some space and run again "
                                    "(the download resumes)") from None
            problem = str(getattr(err, "reason", err)) or type(err).__name__
        if attempt < RETRIES:
            log.warning("%s: %s; trying again (attempt %d of %d)", url, problem, attempt + 2, RETRIES + 1)
            time.sleep(min(0.5 * 2 ** attempt, 30))
    resume = f"run again to resume {part}" if part.exists() else "check the network and run again"
    raise DownloadError(f"{url}: {problem} after {RETRIES + 1} attempts; {resume}, or try another mirror "
                        "(--base-url)")


def download(url: str, dest: str | Path, md5: str | None = None) -> Path:
    """Fetch `url` into `dest` (see the module docstring); returns `dest`. With `md5` (the official
    sum) the file is checked; without, its md5 is only recorded."""
    dest = Path(dest)
    if (done := recorded_md5(dest)) and (md5 is None or done == md5):
        log.info("%s: downloaded already (%s)", dest, marker_of(dest).name)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    marker_of(dest).unlink(missing_ok=True)
    part = dest.with_name(dest.name + ".part")
    if dest.is_file() and not part.exists():
        dest.rename(part)  # a file from elsewhere, or one checked against another sum: check it
    for attempt in range(2):
        log.info("downloading %s into %s", url, dest.parent)
        _fetch(url, part)
        got = md5_of(part)
        if md5 is None or got == md5:
            os.replace(part, dest)
            write_text(marker_of(dest), f"{got}  {dest.name}\n")
            return dest
        part.unlink()
        if attempt == 0:
            log.warning("%s: md5 %s, not the expected %s: deleted; downloading it again", dest, got, md5)
    raise DownloadError(f"{dest}: md5 {got} is not the expected {md5} after two downloads from {url}; "
                        "the server's copy may be damaged: try another mirror (--base-url)")


def _refuse(archive: Path, name: str, why: str) -> DownloadError:
    return DownloadError(f"{archive}: member {name!r} {why}; refusing to extract it: delete the archive "
                         "and download it again")


def _check_member(archive: Path, member: tarfile.TarInfo, dest: Path) -> None:
    """Refuse absolute names, `..` components, links leading outside `dest`, devices."""
    name = PurePosixPath(member.name)
    if name.is_absolute() or member.name.startswith("\\"):
        raise _refuse(archive, member.name, "has an absolute path")
    if ".." in name.parts:
        raise _refuse(archive, member.name, "has a '..' component")
    if member.isdev():
        raise _refuse(archive, member.name, "is a device file")
    if member.issym() or member.islnk():
        base = dest if member.islnk() else (dest / name).parent
        target = Path(os.path.normpath(base / member.linkname))
        if PurePosixPath(member.linkname).is_absolute() or not target.is_relative_to(dest):
            raise _refuse(archive, member.name, f"links outside the destination ({member.linkname})")


def _unpacked_size(archive: Path) -> int:
    """An estimate of the extracted size: the archive's size, or gzip's recorded size (mod 4 GiB)
    when that is larger."""
    size = archive.stat().st_size
    with open(archive, "rb") as f:
        if f.read(2) == b"\x1f\x8b" and size > 18:
            f.seek(-4, os.SEEK_END)
            return max(size, int.from_bytes(f.read(4), "little"))
    return size


def safe_extract(archive: str | Path, dest: str | Path) -> Path:
    """Extract the tar archive (any compression tarfile reads) into `dest`, refusing unsafe members
    (and with tarfile's `filter="data"` where Python has it). `dest/.<archive>.complete` records the
    archive's md5 (or size); a rerun with the same archive returns at once. Returns `dest`."""
    archive, dest = Path(archive), Path(dest).absolute()
    if not archive.is_file():
        raise DownloadError(f"{archive}: not found; download it first")
    marker = dest / f".{archive.name}.complete"
    stamp = json.dumps({"archive": archive.name, "md5": recorded_md5(archive),
                        "bytes": archive.stat().st_size})
    if marker.is_file() and marker.read_text().strip() == stamp:
        log.info("%s: extracted already (%s)", archive, marker)
        return dest
    marker.unlink(missing_ok=True)
    check_disk(dest, _unpacked_size(archive), f"extracting {archive.name}")
    data_filter = getattr(tarfile, "data_filter", None)

    dest.mkdir(parents=True, exist_ok=True)
    bar = tqdm(desc=f"extract {archive.name}", unit=" files", disable=None, leave=False)

    def checked(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
        _check_member(archive, member, dest)
        bar.update(1)
        return data_filter(member, path) if data_filter else member

    log.info("extracting %s into %s", archive, dest)
    try:
        with bar, tarfile.open(archive) as tar:
            if data_filter:
                tar.extractall(dest, filter=checked)
            else:
                for member in tar:
                    checked(member, str(dest))
                    tar.extract(member, dest)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DownloadError(f"{archive}: cannot extract ({err}); delete it and download it again") from None
    write_text(marker, stamp + "\n")
    return dest
