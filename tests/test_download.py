"""asr.download against a real HTTP server on 127.0.0.1: a cut connection resumes with a Range
request, a corrupt file is fetched again, unsafe tar members are refused, a full disk is named."""

import hashlib
import io
import logging
import shutil
import tarfile
import threading
from collections import namedtuple
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from asr.download import DownloadError, check_disk, download, safe_extract


class Handler(BaseHTTPRequestHandler):
    """Serves server.files {path: bytes} with Range support; a path in server.cut is cut off after
    half its bytes the first time, one in server.corrupt served with a flipped byte the first time
    (server.corrupt_always: every time). Each request's (path, Range header) goes to server.log."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        server = self.server
        server.log.append((self.path, self.headers.get("Range")))
        data = server.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        if self.path in server.corrupt_always or self.path in server.corrupt:
            server.corrupt.discard(self.path)
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if self.path in server.cut:
            server.cut.discard(self.path)
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.files, httpd.cut, httpd.corrupt, httpd.corrupt_always, httpd.log = {}, set(), set(), set(), []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _payload(n: int = 300_000) -> tuple[bytes, str]:
    data = np.random.default_rng(0).integers(0, 256, n, dtype=np.uint8).tobytes()
    return data, hashlib.md5(data).hexdigest()


def test_a_cut_download_resumes_with_a_range_request(server, tmp_path):
    data, md5 = _payload()
    server.files["/a.tar.gz"] = data
    server.cut.add("/a.tar.gz")
    dest = download(f"{server.url}/a.tar.gz", tmp_path / "a.tar.gz", md5)
    assert dest.read_bytes() == data
    assert server.log == [("/a.tar.gz", None), ("/a.tar.gz", f"bytes={len(data) // 2}-")]
    assert (tmp_path / "a.tar.gz.complete").read_text() == f"{md5}  a.tar.gz\n"
    assert not (tmp_path / "a.tar.gz.part").exists()

    # complete: a second call returns at once, without a request
    assert download(f"{server.url}/a.tar.gz", dest, md5) == dest
    assert len(server.log) == 2


def test_a_part_left_by_an_earlier_run_is_resumed(server, tmp_path):
    data, md5 = _payload()
    server.files["/b.tar.gz"] = data
    (tmp_path / "b.tar.gz.part").write_bytes(data[:1000])
    download(f"{server.url}/b.tar.gz", tmp_path / "b.tar.gz", md5)
    assert server.log == [("/b.tar.gz", "bytes=1000-")]
    assert (tmp_path / "b.tar.gz").read_bytes() == data

    # a whole file already in .part: the server says 416, the md5 decides
    server.log.clear()
    (tmp_path / "c.tar.gz.part").write_bytes(data)
    server.files["/c.tar.gz"] = data
    download(f"{server.url}/c.tar.gz", tmp_path / "c.tar.gz", md5)
    assert server.log == [("/c.tar.gz", f"bytes={len(data)}-")]
    assert (tmp_path / "c.tar.gz.complete").is_file()


def test_a_corrupt_download_is_deleted_and_fetched_again_once(server, tmp_path, caplog):
    data, md5 = _payload()
    server.files["/d.tar.gz"] = data
    server.corrupt.add("/d.tar.gz")
    download(f"{server.url}/d.tar.gz", tmp_path / "d.tar.gz", md5)
    assert (tmp_path / "d.tar.gz").read_bytes() == data
    assert server.log == [("/d.tar.gz", None), ("/d.tar.gz", None)]  # the second from scratch
    assert "downloading it again" in caplog.text

    server.files["/e.tar.gz"] = data
    server.corrupt_always.add("/e.tar.gz")
    with pytest.raises(DownloadError, match=r"e.tar.gz: md5 \w+ is not the expected .* after two downloads"):
        download(f"{server.url}/e.tar.gz", tmp_path / "e.tar.gz", md5)
    assert not list(tmp_path.glob("e.tar.gz*"))  # nothing corrupt is left, nothing marked complete

    # a file finished under another sum is checked again
    server.log.clear()
    download(f"{server.url}/d.tar.gz", tmp_path / "d.tar.gz", md5)
    assert server.log == []
    (tmp_path / "d.tar.gz.complete").write_text("0" * 32 + "  d.tar.gz\n")
    download(f"{server.url}/d.tar.gz", tmp_path / "d.tar.gz", md5)  # 416: whole already, md5 good
    assert server.log == [("/d.tar.gz", f"bytes={len(data)}-")]


def test_http_errors_are_one_line(server, tmp_path):
    with pytest.raises(DownloadError, match=r"/missing.tar.gz: HTTP 404 .*check the URL \(--base-url\)"):
        download(f"{server.url}/missing.tar.gz", tmp_path / "missing.tar.gz")


def _tar(path, members: dict[str, bytes], links: dict[str, str] | None = None):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return path


@pytest.mark.parametrize("members, links, why", [
    ({"ok.txt": b"1", "../evil": b"x"}, None, "has a '..' component"),
    ({"/tmp/evil-absolute": b"x"}, None, "has an absolute path"),
    ({"ok.txt": b"1"}, {"link": "../../outside"}, "links outside the destination"),
    ({"ok.txt": b"1"}, {"abs-link": "/etc/passwd"}, "links outside the destination"),
])
def test_safe_extract_refuses_members_outside_the_destination(tmp_path, members, links, why):
    archive = _tar(tmp_path / "bad.tar.gz", members, links)
    dest = tmp_path / "out" / "dest"
    with pytest.raises(DownloadError, match=f"bad.tar.gz: member .* {why}.*; refusing to extract"):
        safe_extract(archive, dest)
    assert not (tmp_path / "out" / "evil").exists() and not (tmp_path / "evil").exists()
    assert not (dest / ".bad.tar.gz.complete").exists()


def test_safe_extract_extracts_and_marks(tmp_path, monkeypatch):
    archive = _tar(tmp_path / "good.tar.gz", {"top/a.txt": b"a", "top/sub/b.txt": b"b"},
                   {"top/sub/link": "../a.txt"})
    dest = safe_extract(archive, tmp_path / "out")
    assert (dest / "top/a.txt").read_bytes() == b"a" and (dest / "top/sub/link").read_bytes() == b"a"
    assert (dest / ".good.tar.gz.complete").is_file()
    monkeypatch.setattr(tarfile, "open", lambda *a, **k: pytest.fail("extracted again"))
    safe_extract(archive, tmp_path / "out")  # marked: returns at once


def test_disk_check_names_free_and_needed_space(server, tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**10, 10**10 - 1.5e9, int(1.5e9)))
    check_disk(tmp_path, 10**9)  # fits
    with pytest.raises(DownloadError, match=r"^\S+/x: 1.50 GB free, 5.00 GB needed for a test; free some"):
        check_disk(tmp_path / "x", 5e9, "a test")
    server.files["/big.tar.gz"] = b"x" * 2000
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**10, 10**10, 1000))
    with pytest.raises(DownloadError, match=r"1000 bytes free, 2000 bytes needed for downloading"):
        download(f"{server.url}/big.tar.gz", tmp_path / "big.tar.gz")
    assert not (tmp_path / "big.tar.gz").exists() and not (tmp_path / "big.tar.gz.part").exists()


def test_the_error_reaches_the_user_as_one_line(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    with pytest.raises(DownloadError) as err:
        safe_extract(tmp_path / "nothing.tar.gz", tmp_path)
    assert "\n" not in str(err.value) and "nothing.tar.gz: not found" in str(err.value)
