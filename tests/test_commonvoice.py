"""Common Voice: a fake release (espeak-ng speech as MP3 clips, tsv files with the real headers,
one clip missing and one corrupt) prepared into manifests, then recipes/commonvoice end to end."""

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile

from asr.corpora.commonvoice import prepare_commonvoice
from asr.tts import english_voices, speak

ROOT = Path(__file__).parents[1]
OLD_HEADER = "client_id path sentence up_votes down_votes age gender accents locale segment".split()
NEW_HEADER = ("client_id path sentence_id sentence sentence_domain up_votes down_votes age gender "
              "accents variant locale segment").split()
SENTENCES = {
    "train": ["The cat sat on the mat.", "A dog ran to the park!", "She reads a good book.",
              "We eat bread and jam.", "Open the red door.", "My fish can swim.",
              "The sun is hot today.", "He has a big hat.", "Put the cup down.", "Birds sing at dawn."],
    "dev": ["The dog has a red hat.", "We read the book today."],
    "test": ["Open the cup.", "The fish sat in the sun."],
}


def _tsv(path: Path, header: list[str], rows: list[dict]) -> None:
    lines = ["\t".join(header)] + ["\t".join(row.get(c, "") for c in header) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """DIR/{train,dev,test,validated}.tsv and DIR/clips/*.mp3: train in the old header (sentence),
    dev and test in the new one (sentence_id, sentence); train.tsv lists a missing and a corrupt clip."""
    root = tmp_path_factory.mktemp("cv") / "en"
    (root / "clips").mkdir(parents=True)
    voices = english_voices(seed=1, n=3, rates=(170,), pitches=(50,))
    tables, n = {}, 0
    for split, sentences in SENTENCES.items():
        rows = []
        for sentence in sentences:
            voice = n % 3 if split == "train" else 2
            wave, rate = speak(sentence, voices[voice])
            name = f"common_voice_en_{1000 + n}.mp3"
            soundfile.write(root / "clips" / name, wave, rate, format="MP3")
            rows.append({"client_id": f"client{voice}", "path": name, "sentence_id": f"s{n}",
                         "sentence": sentence, "up_votes": str(2 + n % 2), "down_votes": "0",
                         "gender": "male_masculine", "locale": "en"})
            n += 1
        tables[split] = rows
    (root / "clips" / "common_voice_en_bad.mp3").write_bytes(b"ID3\x03\x00\x00\x00 not audio" * 20)
    tables["train"] += [{"client_id": "client9", "path": "common_voice_en_gone.mp3", "sentence": "Lost."},
                        {"client_id": "client9", "path": "common_voice_en_bad.mp3", "sentence": "Broken."}]
    _tsv(root / "train.tsv", OLD_HEADER, tables["train"])
    for split in ("dev", "test"):
        _tsv(root / f"{split}.tsv", NEW_HEADER, tables[split])
    _tsv(root / "validated.tsv", NEW_HEADER, [r for rows in tables.values() for r in rows])
    return root


def test_prepare_lists_and_skips_bad_clips_and_reruns_as_a_no_op(release, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    out = tmp_path / "data"
    manifests = prepare_commonvoice(out, release, jobs=1)
    assert set(manifests) == {"train", "dev", "test"}
    rows = {s: [json.loads(line) for line in p.read_text().splitlines()] for s, p in manifests.items()}
    assert [r["text"] for r in rows["train"]] == SENTENCES["train"]  # kept as written
    assert [r["text"] for r in rows["dev"]] == SENTENCES["dev"]
    first = rows["train"][0]
    assert first["id"] == "common_voice_en_1000" and first["speaker"] == "client0"
    assert first["audio_filepath"] == str(release / "clips" / "common_voice_en_1000.mp3")  # absolute
    assert first["duration"] == pytest.approx(soundfile.info(first["audio_filepath"]).duration, abs=1e-3)
    assert 0.5 < first["duration"] < 5 and first["gender"] == "male_masculine"
    skipped = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    assert [(s["id"], s["reason"].split(":")[0]) for s in skipped] == [
        ("common_voice_en_gone", "missing"), ("common_voice_en_bad", "unreadable")]
    assert "2 rows with a missing or unreadable clip or no sentence" in caplog.text
    assert "common_voice_en_gone (missing)" in caplog.text
    assert (out / "lm_train.txt").read_text().splitlines() == SENTENCES["train"]

    written = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    caplog.clear()
    assert prepare_commonvoice(out, release, jobs=1) == manifests
    assert "already prepared" in caplog.text
    assert {p: p.stat().st_mtime_ns for p in out.iterdir()} == written

    # other options redo it; a clip in two splits is an error naming both files
    assert json.loads((out / ".completed").read_text())["min_votes"] == 0
    prepare_commonvoice(out, release, splits=["dev"], min_votes=3, jobs=1)
    assert len((out / "dev.jsonl").read_text().splitlines()) == 1  # one of the two has 3 votes
    with pytest.raises(ValueError, match=r"dev.tsv: clip common_voice_en_1010 is also in .*validated.tsv"):
        prepare_commonvoice(out, release, splits=["validated", "dev"], jobs=1)
    with pytest.raises(FileNotFoundError, match="other.tsv: not found; --data-root"):
        prepare_commonvoice(out, release, splits=["other"], jobs=1)


def test_recipe_end_to_end(release, tmp_path):
    recipe = tmp_path / "recipes" / "commonvoice"
    recipe.mkdir(parents=True)
    shutil.copy(ROOT / "recipes" / "lib.sh", tmp_path / "recipes")
    shutil.copy(ROOT / "recipes" / "commonvoice" / "run.sh", recipe)
    shutil.copytree(release, tmp_path / "cv")  # --data-root relative to where run.sh starts
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    command = ["bash", str(recipe / "run.sh"), "--data-root", "cv", "--size", "tiny", "--epochs", "2",
               "--device", "cpu", "--nj", "1", "--beam-size", "4"]
    proc = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((recipe / "exp" / "results.json").read_text())
    for split in ("dev", "test"):
        assert results[split]["n_utts"] == 2 and results[split]["wer"] >= 0
    assert (recipe / "exp" / "model" / "config.json").is_file()
    assert json.loads((recipe / "data" / ".completed").read_text())["data_root"] == str(tmp_path / "cv")

    proc = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "already prepared" in proc.stderr and "stage 2 (train): done already" in proc.stderr
