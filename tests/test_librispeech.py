"""LibriSpeech: a tiny fake release in the real layout (FLAC of espeak-ng speech, *.trans.txt),
packed as <part>.tar.gz and served over HTTP on 127.0.0.1; prepared, downloaded, and run through
recipes/librispeech/run.sh to exp/RESULTS.md."""

import functools
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
from collections import namedtuple
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import soundfile
import soxr

from asr.corpora import librispeech
from asr.corpora.librispeech import download_librispeech, prepare_librispeech
from asr.data import read_manifest
from asr.download import DownloadError

ROOT = Path(__file__).parents[1]
TRAIN = ["THE CAT SAT ON THE MAT", "A DOG RAN TO THE PARK", "SHE READS A GOOD BOOK", "WE EAT BREAD AND JAM",
         "OPEN THE RED DOOR", "MY FISH CAN SWIM", "THE SUN IS HOT TODAY", "HE HAS A BIG HAT"]
# part -> [(speaker, chapter, sentences)]
CORPUS = {
    "train-clean-100": [("19", "198", TRAIN[:4]), ("26", "495", TRAIN[4:])],
    "dev-clean": [("84", "121123", ["PUT THE CUP DOWN", "BIRDS SING AT DAWN"])],
    "dev-other": [("116", "288045", ["THE RED CAT RAN", "A GOOD DOG SAT"])],
    "test-clean": [("121", "121726", ["WE READ THE BOOK", "THE FISH CAN'T SWIM"])],
    "test-other": [("367", "130732", ["OPEN THE BIG DOOR", "THE HAT IS RED"])],
}


def _write_release(root: Path) -> None:
    """root/LibriSpeech/<part>/<speaker>/<chapter>/ with <speaker>-<chapter>.trans.txt and FLACs."""
    from asr import tts

    speakers = [s for entries in CORPUS.values() for s, _, _ in entries]
    voices = dict(zip(speakers, tts.english_voices(seed=3, n=len(speakers), rates=(170,), pitches=(50,))))
    for part, entries in CORPUS.items():
        for speaker, chapter, sentences in entries:
            folder = root / "LibriSpeech" / part / speaker / chapter
            folder.mkdir(parents=True)
            lines = []
            for i, text in enumerate(sentences):
                utt_id = f"{speaker}-{chapter}-{i:04d}"
                wave, rate = tts.speak(text.lower(), voices[speaker])
                soundfile.write(folder / f"{utt_id}.flac", soxr.resample(wave, rate, 16000), 16000,
                                format="FLAC", subtype="PCM_16")
                lines.append(f"{utt_id} {text}\n")
            (folder / f"{speaker}-{chapter}.trans.txt").write_text("".join(lines))


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """{"tree": a folder holding LibriSpeech/, "archives": a folder of <part>.tar.gz + md5sum.txt}."""
    root = tmp_path_factory.mktemp("librispeech")
    tree, archives = root / "tree", root / "archives"
    _write_release(tree)
    archives.mkdir()
    sums = []
    for part in CORPUS:
        with tarfile.open(archives / f"{part}.tar.gz", "w:gz") as tar:
            tar.add(tree / "LibriSpeech" / part, arcname=f"LibriSpeech/{part}")
        data = (archives / f"{part}.tar.gz").read_bytes()
        sums.append(f"{hashlib.md5(data).hexdigest()}  {part}.tar.gz\n")
    (archives / "md5sum.txt").write_text("".join(sums))
    return {"tree": tree, "archives": archives}


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        self.server.log.append(self.path)
        super().do_GET()


@pytest.fixture
def server(release):
    handler = functools.partial(_Quiet, directory=str(release["archives"]))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.log = []
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _rows(manifest: Path) -> list[dict]:
    return [json.loads(line) for line in manifest.read_text().splitlines()]


def test_prepare_reads_the_release_layout(release, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    out = tmp_path / "data"
    manifests = prepare_librispeech(out, release["tree"], parts=list(CORPUS), jobs=1)
    assert set(manifests) == set(CORPUS)
    train = _rows(manifests["train-clean-100"])
    assert [r["id"] for r in train[:2]] == ["19-198-0000", "19-198-0001"]
    assert [r["text"] for r in train] == TRAIN  # as in the transcripts
    assert {r["speaker"] for r in train} == {"19", "26"}
    flac = release["tree"] / "LibriSpeech/train-clean-100/19/198/19-198-0000.flac"
    assert train[0]["audio_filepath"] == str(flac)  # outside data/: absolute
    assert train[0]["duration"] == pytest.approx(soundfile.info(str(flac)).duration, abs=1e-3)
    assert _rows(manifests["test-clean"])[1]["text"] == "THE FISH CAN'T SWIM"
    # the LM text: training transcripts only, never dev or test
    assert (out / "lm_train.txt").read_text().splitlines() == TRAIN
    assert "the official part has 28539" in caplog.text  # a partial copy is pointed out

    caplog.clear()
    prepare_librispeech(out, release["tree"], parts=["dev-clean"], jobs=1)
    assert "already prepared" in caplog.text
    with pytest.raises(ValueError, match="unknown LibriSpeech part dev-dirty; choose from dev-clean"):
        prepare_librispeech(out, release["tree"], parts=["dev-dirty"])
    with pytest.raises(FileNotFoundError, match=r"train-clean-360: not found; point --data-root"):
        prepare_librispeech(out, release["tree"], parts=["train-clean-360"])


def test_lm_norm_text_is_used_and_moved_data_still_reads(release, tmp_path):
    # the release inside data/: audio paths relative to the manifest; a moved data/ still reads
    data = tmp_path / "data"
    shutil.copytree(release["tree"] / "LibriSpeech", data / "LibriSpeech")
    (data / "LibriSpeech" / "librispeech-lm-norm.txt").write_text("LOTS OF BOOK TEXT\n")
    manifests = prepare_librispeech(data, data / "LibriSpeech", parts=["train-clean-100", "dev-clean"],
                                    jobs=1)
    assert not Path(_rows(manifests["dev-clean"])[0]["audio_filepath"]).is_absolute()
    assert (data / "lm_train.txt").is_symlink()
    assert (data / "lm_train.txt").read_text() == "LOTS OF BOOK TEXT\n"
    moved = tmp_path / "elsewhere" / "data"
    moved.parent.mkdir()
    data.rename(moved)
    rows = read_manifest(moved / "dev-clean.jsonl")
    assert all(Path(r["audio_filepath"]).is_file() for r in rows) and len(rows) == 2


def test_download_with_the_md5_table_then_no_request_again(release, server, tmp_path, monkeypatch):
    archive = release["archives"] / "dev-clean.tar.gz"
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    monkeypatch.setitem(librispeech.ARCHIVES, "dev-clean", (md5, archive.stat().st_size, 2))
    corpus = download_librispeech(tmp_path / "dl", ["dev-clean"], server.url)
    assert sorted(p.name for p in (corpus / "dev-clean" / "84" / "121123").iterdir())[:2] == [
        "84-121123-0000.flac", "84-121123-0001.flac"]
    assert (tmp_path / "dl" / "dev-clean.tar.gz.complete").read_text().split()[0] == md5
    assert server.log == ["/dev-clean.tar.gz"]
    download_librispeech(tmp_path / "dl", ["dev-clean"], server.url)
    assert server.log == ["/dev-clean.tar.gz"]  # downloaded and extracted already

    # a wrong official sum: fetched twice, then one line naming the file and the fix
    monkeypatch.setitem(librispeech.ARCHIVES, "dev-other", ("0" * 32, 100, 2))
    with pytest.raises(DownloadError, match=r"dev-other.tar.gz: md5 \w+ is not the expected 0+ after two"):
        download_librispeech(tmp_path / "dl", ["dev-other"], server.url)

    # not enough disk for the parts: said before anything is fetched
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**12, 10**12, 10**6))
    server.log.clear()
    with pytest.raises(DownloadError, match=r"1.0 MB free, 12.9\d GB needed for LibriSpeech train-clean-100"):
        download_librispeech(tmp_path / "dl2", ["train-clean-100"], server.url)
    assert server.log == []


def test_recipe_downloads_prepares_and_writes_results(release, server, tmp_path):
    recipe = tmp_path / "recipes" / "librispeech"
    recipe.mkdir(parents=True)
    shutil.copy(ROOT / "recipes" / "lib.sh", tmp_path / "recipes")
    shutil.copy(ROOT / "recipes" / "librispeech" / "run.sh", recipe)
    shutil.copy(release["archives"] / "md5sum.txt", tmp_path / "md5sum.txt")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    command = ["bash", str(recipe / "run.sh"), "--base-url", server.url, "--md5sums", "md5sum.txt",
               "--data-root", "dl", "--train-parts", "train-clean-100", "--size", "tiny", "--epochs", "2",
               "--device", "cpu", "--nj", "1", "--beam-size", "4"]
    proc = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(server.log) == sorted(f"/{part}.tar.gz" for part in CORPUS)
    assert (tmp_path / "dl" / "LibriSpeech" / "test-other" / "367").is_dir()  # --data-root from the start dir
    data = recipe / "data"
    assert [r["id"] for r in _rows(data / "train.jsonl")][-1] == "26-495-0003"
    assert (data / "lm_train.txt").read_text().splitlines() == TRAIN

    md = (recipe / "exp" / "RESULTS.md").read_text()
    for key in ("date", "git commit", "torch", "CPU", "GPU"):
        assert re.search(rf"^\| {key} \| \S", md, re.M), key
    for name in ("dev-clean", "dev-other", "test-clean", "test-other"):
        section = md.split(f"## {name}\n")[1].split("\n## ")[0]
        assert "|Snt|Wrd|Corr|Sub|Del|Ins|Err|S.Err|" in section.replace(" ", "")
        assert re.search(r"^\| 2 \| \d+ \| [\d.]+ \|", section, re.M)  # 2 sentences, then percentages
        assert re.search(r"WER [\d.]+% \(95% CI [\d.]+-[\d.]+", section)
        assert re.search(r"RTFx [\d.]+: [\d.]+ s of audio decoded in [\d.]+ s on cpu", section)
    results = json.loads((recipe / "exp" / "results.json").read_text())
    assert results["test-other"]["n_utts"] == 2 and len(results["dev-clean"]["wer_95ci"]) == 2
    assert (recipe / "exp" / "model" / "config.json").is_file()

    # nothing is fetched again; a moved data/ still reads (its audio paths are absolute)
    server.log.clear()
    proc = subprocess.run(command + ["--stop-stage", "0"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert server.log == [] and "already prepared" in proc.stderr
    data.rename(tmp_path / "moved")
    assert all(Path(r["audio_filepath"]).is_file() for r in read_manifest(tmp_path / "moved" / "train.jsonl"))


def test_results_markdown_has_sclites_percentages(tmp_path):
    from asr.results import collect_results, format_markdown
    from asr.score import score

    report = score({"a": "one two three four", "b": "five six"},
                   {"a": "one too three four five", "b": "five six"})
    (tmp_path / "wer-summary-dev-clean.json").write_text(json.dumps(report.to_dict()))
    md = format_markdown(tmp_path, "best.pt", ["dev-clean"], env={"date": "today", "GPU": "none"})
    assert "| date | today |" in md and "| GPU | none |" in md
    # 2 sentences, 6 words: 5 correct, 1 substitution, 0 deletions, 1 insertion; 1 of 2 sentences wrong
    assert "| 2 | 6 | 83.3 | 16.7 | 0.0 | 16.7 | 33.3 | 50.0 |" in md
    assert "WER 33.33% (95% CI" in md and "RTFx: not measured" in md
    (tmp_path / "decode-time-dev-clean.json").write_text(json.dumps(
        {"audio_seconds": 20.0, "seconds": 0.5, "rtfx": 40.0, "device": "cpu, 1 CPU threads",
         "decoder": "GreedyDecoder"}))
    assert "RTFx 40.0: 20.0 s of audio decoded in 0.50 s on cpu" in format_markdown(
        tmp_path, "best.pt", ["dev-clean"], env={})
    assert collect_results(tmp_path, "best.pt", ["dev-clean"])["dev-clean"]["rtfx"] == 40.0
