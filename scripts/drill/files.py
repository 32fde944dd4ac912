"""Drill cases: bad model files, bad language models, and earlier outputs that a failed run
must leave as they were."""

from __future__ import annotations

import gzip
import pickle
import re
import shutil
from functools import partial
from pathlib import Path

import numpy as np

from drill.core import (
    CASES,
    LFS_POINTER,
    NOISE,
    Case,
    Drill,
    Guard,
    Outcome,
    Result,
    accepted,
    case,
    crashed,
    guarded,
    read_jsonl,
    refused,
)
from drill.inputs import text_manifest

# --- bad model files ----------------------------------------------------------------------

class _RunsCode:
    """Unpickling this creates a file: what a malicious checkpoint would do."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _bad_model(name: str, drill: Drill, folder: Path, marker: Path) -> Path:
    """A model path that is not a usable model."""
    import torch

    good = drill.model.read_bytes()
    path = folder / f"{name}.pt"
    if name == "truncated":
        path.write_bytes(good[:len(good) // 2])
    elif name == "random-bytes":
        path.write_bytes(np.random.default_rng(1).bytes(100_000))
    elif name == "empty":
        path.write_bytes(b"")
    elif name == "lfs-pointer":
        path.write_text(LFS_POINTER)
    elif name == "pickle-runs-code":
        torch.save({"config": _RunsCode(marker), "tokenizer": {}, "model": {}}, path)
    elif name == "plain-pickle-runs-code":
        path.write_bytes(pickle.dumps({"config": _RunsCode(marker)}))
    elif name in ("folder-lfs-weights", "folder-bad-config"):
        path = folder / name
        shutil.copytree(drill.exported, path)
        if name == "folder-lfs-weights":
            (path / "model.safetensors").write_text(LFS_POINTER)
        else:
            (path / "config.json").write_text('{"format": "asr-model", "version": 1, "model": ')
    return path


MODEL_DEFECTS = ("truncated", "random-bytes", "empty", "lfs-pointer", "pickle-runs-code",
                 "plain-pickle-runs-code", "folder-lfs-weights", "folder-bad-config")


def _model_command(drill: Drill, command: str, model: Path, folder: Path) -> Result:
    manifest = text_manifest(drill, folder, {"a": "the cat sat on the mat"})
    hyps = folder / "out" / "hyps.jsonl"
    args = {
        "decode": ["decode", "--model", model, "--manifest", manifest, "--out", hyps],
        "transcribe": ["transcribe", "--model", model, drill.rows[0]["audio_filepath"], "-o", folder / "out"],
        "export": ["export", model, "--out", folder / "out"],
        "benchmark": ["benchmark", "--models", model, "--sets", manifest, "--out-dir", folder / "out"],
        "report": ["prepare", "--report", manifest, "--model", model, "--png", folder / "out" / "h.png"],
        "tune-lm": ["tune-lm", "--model", model, "--manifest", manifest, "--lm", drill.lm],
        "train-init": ["train", "--train", manifest, "--dev", manifest, "--exp-dir", folder / "out" / "exp",
                       "--size", "tiny", "--init-from", model, "--epochs", 1, "--num-workers", 0],
    }[command]
    return drill.asr(*args)


def _model_case(defect: str, command: str, drill: Drill) -> Outcome:
    folder = drill.folder(f"model-{defect}-{command}")
    marker = folder / "CODE-RAN"
    model = _bad_model(defect, drill, folder, marker)
    (folder / "out").mkdir()
    (folder / "out" / "earlier.txt").write_text("an earlier good output\n")
    guard = Guard(folder / "out", model, no_new=True)
    outcome = guarded(refused(_model_command(drill, command, model, folder), model.name), guard)
    return crashed("unpickling ran code") if marker.exists() else outcome


for _defect in MODEL_DEFECTS:
    for _command in ("decode", "transcribe", "export", "benchmark", "report", "tune-lm", "train-init"):
        CASES.append(Case(f"model/{_defect}/{_command}", "refused in one line naming the file; nothing run",
                          partial(_model_case, _defect, _command)))


# --- bad language models ------------------------------------------------------------------

def _bad_lm(name: str, drill: Drill, folder: Path, marker: Path) -> Path:
    """An ARPA path that is not a usable LM (or, "poisoned-cache", a good one with a bad cache)."""
    good = drill.lm.read_text()
    path = folder / ("lm.arpa.gz" if name == "random-gzip" else "lm.arpa")
    if name == "broken-header":
        path.write_text(good.replace("\\data\\", "\\dota\\"))
    elif name == "wrong-counts":
        path.write_text(re.sub(r"ngram 2=(\d+)", lambda m: f"ngram 2={int(m[1]) + 5}", good))
    elif name == "truncated":
        path.write_text(good[:len(good) // 2])
    elif name == "lfs-pointer":
        path.write_text(LFS_POINTER)
    elif name in ("random-bytes", "random-gzip"):
        path.write_bytes(np.random.default_rng(2).bytes(20_000))
    elif name == "empty":
        path.write_text("")
    elif name == "latin-1":
        path.write_bytes(good.replace("cat", "cät").encode("latin-1"))
    elif name == "gzip-truncated":
        path = folder / "lm.arpa.gz"
        path.write_bytes(gzip.compress(good.encode())[:200])
    elif name == "poisoned-cache":
        import torch

        path.write_text(good)
        torch.save({"version": 1, "source": _RunsCode(marker)}, folder / "lm.arpa.pt")
    return path


LM_DEFECTS = ("broken-header", "wrong-counts", "truncated", "lfs-pointer", "random-bytes", "random-gzip",
              "empty", "latin-1", "gzip-truncated")


def _lm_command(drill: Drill, command: str, lm: Path, folder: Path) -> Result:
    manifest = text_manifest(drill, folder, {"a": "the cat sat on the mat"})
    audio = drill.rows[0]["audio_filepath"]
    args = {
        "ppl": ["lm", "ppl", lm, drill.root / "model" / "lm.txt"],
        "decode": ["decode", "--model", drill.model, "--manifest", manifest, "--decoder", "beam", "--lm", lm,
                   "--out", folder / "out" / "hyps.jsonl"],
        "transcribe": ["transcribe", "--model", drill.model, audio, "--decoder", "beam", "--lm", lm],
        "tune-lm": ["tune-lm", "--model", drill.model, "--manifest", manifest, "--lm", lm, "--no-save",
                    "--alphas", 0.5, "--betas", 0],
        "flashlight": ["decode", "--model", drill.model, "--manifest", manifest, "--decoder", "flashlight",
                       "--lm", lm, "--out", folder / "out" / "hyps.jsonl"],
    }[command]
    return drill.asr(*args)


def _lm_case(defect: str, command: str, drill: Drill) -> Outcome:
    folder = drill.folder(f"lm-{defect}-{command}")
    marker = folder / "CODE-RAN"
    drill.lm  # noqa: B018 (built before the case's folder is guarded)
    lm = _bad_lm(defect, drill, folder, marker)
    (folder / "out").mkdir()
    (folder / "out" / "earlier.txt").write_text("an earlier good output\n")
    guard = Guard(folder / "out", no_new=True)
    res = _lm_command(drill, command, lm, folder)
    if defect == "poisoned-cache":
        outcome = accepted(res)
    else:
        outcome = guarded(refused(res, lm.name), guard)
    return crashed("unpickling ran code") if marker.exists() else outcome


for _command in ("ppl", "decode", "transcribe", "tune-lm", "flashlight"):
    for _defect in LM_DEFECTS:
        CASES.append(Case(f"lm/{_defect}/{_command}", "refused in one line naming the file",
                          partial(_lm_case, _defect, _command)))
    CASES.append(Case(f"lm/poisoned-cache/{_command}", "the cache is ignored, the ARPA read; nothing run",
                      partial(_lm_case, "poisoned-cache", _command)))


# --- earlier outputs survive a failure -----------------------------------------------------

@case("keep/lm-build", "a failed `asr lm build` leaves the earlier lm.arpa as it was")
def _keep_lm(drill: Drill) -> Outcome:
    folder = drill.folder("keep-lm")
    shutil.copy(drill.lm, folder / "lm.arpa")
    (folder / "text.txt").write_bytes("the cat\ncafé\n".encode("latin-1"))
    guard = Guard(folder)
    return guarded(refused(drill.asr("lm", "build", folder / "text.txt", "--out", folder / "lm.arpa"),
                           "text.txt:2"), guard)


@case("keep/transcribe-overwrite", "a file that turned bad fails on --overwrite; its earlier outputs stay")
def _keep_transcribe(drill: Drill) -> Outcome:
    folder = drill.folder("keep-transcribe")
    audio = folder / "audio"
    audio.mkdir()
    shutil.copy(drill.rows[0]["audio_filepath"], audio / "a.wav")
    shutil.copy(drill.rows[1]["audio_filepath"], audio / "b.wav")
    first = drill.asr("transcribe", "--model", drill.model, audio, "-o", folder / "out", "--format", "txt")
    if first.rc != 0:
        return accepted(first)
    (audio / "a.wav").write_bytes(NOISE)
    guard = Guard(folder / "out" / "a.txt")
    res = drill.asr("transcribe", "--model", drill.model, audio, "-o", folder / "out", "--format", "txt",
                    "--overwrite")
    ledger = {r["id"]: r["status"] for r in read_jsonl(folder / "out" / "ledger.jsonl")}
    problem = None if ledger == {"a": "failed", "b": "done"} else f"ledger {ledger}"
    return guarded(accepted(res, lambda: problem, rc=1), guard)


@case("keep/prepare-folder", "a failed `asr prepare folder` leaves the earlier manifest")
def _keep_prepare(drill: Drill) -> Outcome:
    folder = drill.folder("keep-prepare")
    audio = folder / "audio"
    audio.mkdir()
    shutil.copy(drill.rows[0]["audio_filepath"], audio / "a.wav")
    (audio / "a.txt").write_text("the cat sat on the mat\n")
    first = drill.asr("prepare", "folder", audio, "--out", folder / "out")
    if first.rc != 0:
        return accepted(first)
    (audio / "a.wav").write_bytes(NOISE)
    guard = Guard(folder / "out")
    res = drill.asr("prepare", "folder", audio, "--out", folder / "out")
    named = any("a.wav: cannot read audio" in ln for ln in res.err.splitlines() if ln.startswith("WARNING"))
    return guarded(refused(res, str(audio)) if named else crashed("a.wav is not named"), guard)


