"""Drill cases: bad transcripts' text, output paths that cannot be written, bad manifests and
transcript files."""

from __future__ import annotations

import json
import re
import shutil
from functools import partial
from pathlib import Path

from drill.core import (
    CASES,
    SENTENCES,
    Case,
    Drill,
    Guard,
    Outcome,
    Result,
    accepted,
    broke,
    case,
    guarded,
    read_jsonl,
    refused,
)

# --- bad text -----------------------------------------------------------------------------

BAD_TEXTS = {  # id: transcript
    "t-empty": "", "t-outside-vocabulary": "привет мир", "t-emoji": "😀🎉🚀", "t-punctuation": "?!... -- ;;",
    "t-too-long": "abcdefghijklmnopqrstuvwxyz " * 20, "t-digits-5000": "7" * 5000,
    "t-control": "\x00\x07\x1b",
}
FINE_TEXTS = {"t-digits": "42 and 7", "t-accents": "naïve café déjà vu"}


def text_manifest(drill: Drill, folder: Path, texts: dict[str, str]) -> Path:
    audio = drill.rows[0]["audio_filepath"]
    manifest = folder / "texts.jsonl"
    rows = [{"id": i, "audio_filepath": audio, "duration": drill.rows[0]["duration"], "text": t}
            for i, t in texts.items()]
    manifest.write_text(_lines(rows))
    return manifest


@case("text/train", "training finishes; a warning names each utterance it cannot use")
def _train_texts(drill: Drill) -> Outcome:
    folder = drill.folder("text-train")
    manifest = text_manifest(drill, folder, {**BAD_TEXTS, **FINE_TEXTS})
    with manifest.open("a") as f:
        f.writelines(json.dumps(r) + "\n" for r in drill.rows)
    res = drill.asr("train", "--train", manifest, "--dev", drill.corpus, "--exp-dir", folder / "exp",
                    "--size", "tiny", "--epochs", 1, "--num-workers", 0, "--max-batch-seconds", 12)
    warnings = "\n".join(ln for ln in res.err.splitlines() if ln.startswith("WARNING"))
    missed = [i for i in BAD_TEXTS if not re.search(rf"(?<![\w-]){i}(?![\w-])", warnings)]
    return accepted(res, lambda: f"not named: {', '.join(missed)}" if missed else None)


@case("text/decode", "decoded; bad reference text does not matter")
def _decode_texts(drill: Drill) -> Outcome:
    folder = drill.folder("text-decode")
    manifest = text_manifest(drill, folder, {**BAD_TEXTS, **FINE_TEXTS})
    res = drill.asr("decode", "--model", drill.model, "--manifest", manifest, "--out", folder / "hyps.jsonl")
    hyps = {r["id"] for r in read_jsonl(folder / "hyps.jsonl")}
    missing = (set(BAD_TEXTS) | set(FINE_TEXTS)) - hyps
    return accepted(res, lambda: f"no hypothesis for {sorted(missing)}" if missing else None)


@case("text/score", "scored; empty, emoji and punctuation-only texts count as no words")
def _score_texts(drill: Drill) -> Outcome:
    folder = drill.folder("text-score")
    refs = {**BAD_TEXTS, **FINE_TEXTS, "ok": "the cat sat on the mat"}
    hyps = {i: t for i, t in zip(refs, [*reversed(BAD_TEXTS.values()), "x", "", "the cat sat"])}
    for name, texts in (("ref", refs), ("hyp", hyps)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps({"id": i, "text": t}, ensure_ascii=False)
                                                      + "\n" for i, t in texts.items()))
    res = drill.asr("score", folder / "ref.jsonl", folder / "hyp.jsonl", "--json")
    return accepted(res, lambda: None if '"wer"' in res.out else "no WER printed")


@case("text/score-all-empty", "refused: no reference words, naming the reference file")
def _score_empty(drill: Drill) -> Outcome:
    folder = drill.folder("text-score-empty")
    (folder / "ref.jsonl").write_text('{"id": "a", "text": ""}\n{"id": "b", "text": "😀"}\n')
    (folder / "hyp.jsonl").write_text('{"id": "a", "text": "x"}\n')
    return refused(drill.asr("score", folder / "ref.jsonl", folder / "hyp.jsonl"), "ref.jsonl")


@case("text/lm-build-and-ppl", "an ARPA LM from the usable lines; perplexity of the bad ones")
def _lm_texts(drill: Drill) -> Outcome:
    folder = drill.folder("text-lm")
    text = folder / "text.txt"
    text.write_text("\n".join([*BAD_TEXTS.values(), *FINE_TEXTS.values(), *SENTENCES, "", "word " * 20000])
                    + "\n")
    res = drill.asr("lm", "build", text, "--order", 3, "--out", folder / "lm.arpa")
    if res.rc != 0 or broke(res):
        return accepted(res)
    return accepted(drill.asr("lm", "ppl", folder / "lm.arpa", text, "--json"))


@case("text/prepare-report", "the report lists the utterances CTC cannot align")
def _report_texts(drill: Drill) -> Outcome:
    folder = drill.folder("text-report")
    manifest = text_manifest(drill, folder, {**BAD_TEXTS, **FINE_TEXTS})
    res = drill.asr("prepare", "--report", manifest, "--json", "--model", drill.model)

    def check():
        report = json.loads(res.out.splitlines()[-1])
        return None if "t-too-long" in json.dumps(report) else "t-too-long not listed"
    return accepted(res, check)


@case("text/prepare-folder", "transcripts in other encodings named and left out; a UTF-8 BOM read")
def _prepare_texts(drill: Drill) -> Outcome:
    folder = drill.folder("text-prepare-folder")
    audio = folder / "audio"
    audio.mkdir()
    texts = {"latin-1": "café au lait".encode("latin-1"), "utf-16": "hello world".encode("utf-16"),
             "bom": "\ufeffhello world".encode(), "empty": b"", "emoji": "😀".encode()}
    for name, data in texts.items():
        shutil.copy(drill.rows[0]["audio_filepath"], audio / f"{name}.wav")
        (audio / f"{name}.txt").write_bytes(data)
    res = drill.asr("prepare", "folder", audio, "--out", folder / "out")
    rows = {r["id"]: r for r in read_jsonl(folder / "out" / "all.jsonl")}

    def check():
        problems = [f"{n}.txt not named" for n in ("latin-1", "utf-16")
                    if not any(f"{n}.txt" in ln for ln in res.err.splitlines() if ln.startswith("WARNING"))]
        if rows.get("bom", {}).get("text") != "hello world":
            problems.append(f"bom: {rows.get('bom')}")
        return "; ".join(problems) or None
    return accepted(res, check)


@case("text/lm-build-empty", "refused: too little text, naming the file")
def _lm_empty(drill: Drill) -> Outcome:
    folder = drill.folder("text-lm-empty")
    (folder / "text.txt").write_text("\n\n?!\n😀\n")
    return refused(drill.asr("lm", "build", folder / "text.txt", "--out", folder / "lm.arpa"), "text.txt")


# --- output paths that cannot be written ---------------------------------------------------

def _blocked_output(command: str, drill: Drill) -> Outcome:
    """--out names a folder where a file goes, or a file where a folder goes."""
    folder = drill.folder(f"output-{command}")
    manifest = text_manifest(drill, folder, {"a": "the cat sat on the mat"})
    blocked = folder / ("out.jsonl" if command == "decode" else "out")
    blocked.mkdir() if command == "decode" else blocked.write_text("a file in the way\n")
    args = {"decode": ["decode", "--model", drill.model, "--manifest", manifest, "--out", blocked],
            "transcribe": ["transcribe", "--model", drill.model, manifest, "-o", blocked],
            "export": ["export", drill.model, "--out", blocked],
            "benchmark": ["benchmark", "--models", drill.model, "--sets", manifest, "--out-dir", blocked],
            "prepare": ["prepare", "nemo", manifest, "--out", blocked]}[command]
    guard = Guard(folder)
    return guarded(refused(drill.asr(*args), blocked.name), guard)


for _command in ("decode", "transcribe", "export", "benchmark", "prepare"):
    CASES.append(Case(f"output/{_command}-blocked", "refused in one line naming the output path",
                      partial(_blocked_output, _command)))


# --- bad manifests and transcript files ----------------------------------------------------

def _good_rows(drill: Drill) -> list[dict]:
    return [{k: r[k] for k in ("id", "audio_filepath", "duration", "text")} for r in drill.rows[:3]]


def _lines(rows: list) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows)


MANIFEST_DEFECTS = {  # name: (what is wrong, the line named, rows -> file bytes)
    "missing-fields": (2, lambda rows: _lines([rows[0], {"id": "x", "duration": 1.0}, rows[2]]).encode()),
    "duplicate-id": (3, lambda rows: _lines([*rows[:2], {**rows[2], "id": rows[0]["id"]}]).encode()),
    "not-json": (2, lambda rows: _lines([rows[0], '{"id": "x", "text": oops', rows[2]]).encode()),
    "json-null": (2, lambda rows: _lines([rows[0], "null", rows[2]]).encode()),
    "json-list": (2, lambda rows: _lines([rows[0], "[1, 2]", rows[2]]).encode()),
    "wrong-types": (2, lambda rows: _lines([rows[0], {**rows[1], "audio_filepath": 17, "text": 3}, rows[2]])
                    .encode()),
    "latin-1": (2, lambda rows: _lines([rows[0], {**rows[1], "text": "café"}, rows[2]]).encode("latin-1")),
    "utf-16": (1, lambda rows: _lines(rows).encode("utf-16")),
}
MANIFEST_FINE = {  # accepted as they are
    "utf-8-bom": lambda rows: b"\xef\xbb\xbf" + _lines(rows).encode(),
    "blank-lines": lambda rows: ("\n\n" + _lines(rows).replace("\n", "\n\n")).encode(),
}


def _manifest_command(drill: Drill, command: str, manifest: Path, folder: Path) -> Result:
    """Run `command` on `manifest`; its outputs go under `folder`."""
    model, hyps = drill.model, folder / "out" / "hyps.jsonl"
    args = {
        "decode": ["decode", "--model", model, "--manifest", manifest, "--out", hyps],
        "train": ["train", "--train", manifest, "--dev", drill.corpus, "--exp-dir", folder / "out" / "exp",
                  "--size", "tiny", "--epochs", 1, "--num-workers", 0, "--max-batch-seconds", 12],
        "transcribe": ["transcribe", "--model", model, manifest, "-o", folder / "out", "--format", "txt"],
        "score": ["score", manifest, manifest],
        "report": ["prepare", "--report", manifest, "--json"],
        "benchmark": ["benchmark", "--models", model, "--sets", manifest, "--decoders", "greedy",
                      "--out-dir", folder / "out"],
        "tune-lm": ["tune-lm", "--model", model, "--manifest", manifest, "--lm", drill.lm, "--no-save",
                    "--alphas", 0.5, "--betas", 0],
        "combine": ["combine", folder / "out" / "combined.jsonl", manifest],
    }[command]
    return drill.asr(*args)


MANIFEST_COMMANDS = ("decode", "train", "transcribe", "score", "report", "benchmark", "tune-lm", "combine")


def _bad_manifest(defect: str, command: str, drill: Drill) -> Outcome:
    folder = drill.folder(f"manifest-{defect}-{command}")
    line, write = MANIFEST_DEFECTS[defect]
    manifest = folder / f"{defect}.jsonl"
    manifest.write_bytes(write(_good_rows(drill)))
    (folder / "out").mkdir()
    (folder / "out" / "earlier.txt").write_text("an earlier good output\n")
    guard = Guard(folder / "out", no_new=True)
    res = _manifest_command(drill, command, manifest, folder)
    named = f"{manifest.name}:{line}"
    if command == "transcribe" and defect == "wrong-types":
        named = manifest.name
    return guarded(refused(res, named), guard)


def _fine_manifest(defect: str, command: str, drill: Drill) -> Outcome:
    folder = drill.folder(f"manifest-{defect}-{command}")
    manifest = folder / f"{defect}.jsonl"
    manifest.write_bytes(MANIFEST_FINE[defect](_good_rows(drill)))
    return accepted(_manifest_command(drill, command, manifest, folder))


for _defect, (_line, _) in MANIFEST_DEFECTS.items():
    for _command in MANIFEST_COMMANDS:
        if _command == "transcribe" and _defect == "missing-fields":  # needs audio_filepath only
            continue
        CASES.append(Case(f"manifest/{_defect}/{_command}", f"refused naming the file and line {_line}",
                          partial(_bad_manifest, _defect, _command)))
for _defect in MANIFEST_FINE:
    for _command in ("decode", "score", "transcribe", "report"):
        CASES.append(Case(f"manifest/{_defect}/{_command}", "accepted",
                          partial(_fine_manifest, _defect, _command)))


@case("manifest/missing-audio/decode", "decoded; a warning names the missing file")
def _missing_audio(drill: Drill) -> Outcome:
    folder = drill.folder("manifest-missing-audio")
    rows = _good_rows(drill)
    rows[1] = {**rows[1], "id": "gone", "audio_filepath": str(folder / "gone.wav")}
    manifest = folder / "m.jsonl"
    manifest.write_text(_lines(rows))
    res = drill.asr("decode", "--model", drill.model, "--manifest", manifest, "--out", folder / "h.jsonl")
    named = any("gone.wav" in ln for ln in res.err.splitlines() if ln.startswith("WARNING"))
    hyps = {r["id"] for r in read_jsonl(folder / "h.jsonl")}
    return accepted(res, lambda: None if named and hyps == {rows[0]["id"], rows[2]["id"]}
                    else f"named {named}, hypotheses {sorted(hyps)}")


@case("manifest/empty/decode", "refused (nothing to decode) or an empty output")
def _empty_manifest(drill: Drill) -> Outcome:
    folder = drill.folder("manifest-empty")
    (folder / "m.jsonl").write_text("")
    res = drill.asr("decode", "--model", drill.model, "--manifest", folder / "m.jsonl",
                    "--out", folder / "h.jsonl")
    return accepted(res) if res.rc == 0 else refused(res, "m.jsonl")


TRANSCRIPT_DEFECTS = {  # score's inputs: name: (suffix, bytes, line)
    "kaldi-latin-1": (".txt", "a the cat\nb café au lait\n".encode("latin-1"), 2),
    "trn-utf-16": (".trn", "the cat (a)\n".encode("utf-16"), 1),
    "trn-no-id": (".trn", b"the cat (a)\nthe dog\n", 2),
    "kaldi-duplicate": (".txt", b"a the cat\na the dog\n", 2),
}


def _bad_transcripts(name: str, drill: Drill) -> Outcome:
    folder = drill.folder(f"transcripts-{name}")
    suffix, data, line = TRANSCRIPT_DEFECTS[name]
    bad = folder / f"{name}{suffix}"
    bad.write_bytes(data)
    good = folder / f"good{suffix}"
    good.write_text("the cat (a)\n" if suffix == ".trn" else "a the cat\n")
    (folder / "earlier.json").write_text("{}\n")
    guard = Guard(folder / "earlier.json")
    res = drill.asr("score", good, bad, "--json-out", folder / "earlier.json")
    return guarded(refused(res, f"{bad.name}:{line}"), guard)


for _name, (_, _, _line) in TRANSCRIPT_DEFECTS.items():
    CASES.append(Case(f"transcripts/{_name}/score", f"refused naming the file and line {_line}",
                      partial(_bad_transcripts, _name)))


@case("transcripts/list-file-latin-1/transcribe", "refused naming the list file and line")
def _list_file(drill: Drill) -> Outcome:
    folder = drill.folder("transcripts-list-file")
    shutil.copy(drill.rows[0]["audio_filepath"], folder / "a.wav")
    (folder / "files.txt").write_bytes("a.wav\ncafé.wav\n".encode("latin-1"))
    return refused(drill.asr("transcribe", "--model", drill.model, folder / "files.txt"), "files.txt:2")


