"""Bad input, the fast part of scripts/fault_drill.py (which runs every command on every case):
each kind of bad audio is refused in one line naming the file or transcribed right, batch jobs
finish and name every bad item, and bad manifests, transcripts and LMs are refused naming the
file and line. The audio kinds, manifest and LM defects are the drill's own."""

import json
import logging
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile

from asr.audio import AudioError, audio_duration, load_audio
from asr.batch_transcribe import collect_inputs, read_ledger, transcribe_to_dir
from asr.checkpoint import load_model
from asr.cli import main
from asr.data import SpeechDataset, read_manifest
from asr.decode import greedy_decode
from asr.lm import NgramLM
from asr.text import CharTokenizer
from asr.transcription import Recognizer, transcribe
from asr.transcripts import read_transcripts

sys.path.insert(0, str(Path(__file__).parents[1] / "scripts"))
from drill import audio as drill_audio  # noqa: E402 (the drill's cases, scripts/drill/)
from drill import core, files, inputs  # noqa: E402

KINDS = {Path(k.name).stem: k for k in drill_audio.AUDIO_KINDS}
REFUSED = [stem for stem, k in KINDS.items() if k.want == "refused"]


@pytest.fixture(scope="module")
def recognizer(spoken_model):
    model, tokenizer = load_model(spoken_model["model"])
    return Recognizer(model, tokenizer, greedy_decode)


@pytest.fixture(scope="module")
def speech(spoken_model):
    row = spoken_model["rows"][0]
    return soundfile.read(row["audio_filepath"], dtype="float32")[0], row["text"]


@pytest.fixture(scope="module")
def kinds(speech, tmp_path_factory):
    """Every kind of audio file in one folder, a transcript beside each: {stem: path}."""
    return drill_audio.write_kinds(tmp_path_factory.mktemp("kinds") / "audio", *speech)


def _one_line_naming(message: str, path: Path) -> None:
    assert str(path) in message and "\n" not in message, message


@pytest.mark.parametrize("stem", list(KINDS))
def test_each_kind_of_audio_is_transcribed_right_or_refused_in_one_line(stem, kinds, recognizer, speech,
                                                                        tmp_path):
    kind, path, text = KINDS[stem], kinds[stem], speech[1]
    if kind.want == "refused":
        for read in (lambda: transcribe(recognizer, path), lambda: load_audio(path, 16000)):
            with pytest.raises(AudioError) as err:
                read()
            _one_line_naming(str(err.value), path)
        if kind.header_bad:  # `asr prepare` and --report find it from the header: an error, or no samples
            try:
                assert audio_duration(path) == 0
            except AudioError as err:
                _one_line_naming(str(err), path)
        return
    try:
        result = transcribe(recognizer, path)["text"]
    except AudioError as err:
        assert kind.want == "either", err
        return _one_line_naming(str(err), path)
    if kind.want == "words":
        assert core.cer(text, result) <= core.MAX_CER, result
    elif kind.want == "silent":
        assert result == ""
    elif kind.want == "same":  # what the same samples give when read from a float WAV
        samples, rate = soundfile.read(path, dtype="float64")
        twin = tmp_path / f"{stem}-float.wav"
        soundfile.write(twin, samples, rate, subtype="FLOAT")
        assert result == transcribe(recognizer, twin)["text"]
    assert len(load_audio(path, 16000)) > 0  # asr decode's reader takes it too


def test_a_rate_too_low_for_speech_says_so(kinds):
    with pytest.raises(AudioError, match=r"rate-1k.wav: sampled at 1000 Hz, too low for speech"):
        load_audio(kinds["rate-1k"], 16000)


def test_a_folder_run_finishes_and_names_every_bad_file(kinds, spoken_model, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "asr.cli", "transcribe", "--model",
                           str(spoken_model["model"]), str(kinds["silence"].parent), "-o", str(out),
                           "--format", "txt"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    ledger = read_ledger(out)
    assert set(ledger) == set(KINDS)
    for stem in REFUSED:
        assert ledger[stem]["status"] == "failed" and kinds[stem].name in ledger[stem]["error"]
        assert kinds[stem].name in proc.stderr
    assert all(ledger[s]["status"] == "done" for s in KINDS if KINDS[s].want not in ("refused", "either"))
    assert f"{len(REFUSED)} failed" in proc.stderr


def _kinds_manifest(kinds: dict, speech, folder: Path) -> Path:
    manifest = folder / "kinds.jsonl"
    duration = round(len(speech[0]) / 16000, 3)
    manifest.write_text("".join(json.dumps({"id": stem, "audio_filepath": str(path), "duration": duration,
                                            "text": speech[1]}) + "\n" for stem, path in kinds.items()))
    return manifest


def test_decode_names_every_bad_file_and_decodes_the_rest(kinds, speech, spoken_model, tmp_path, caplog):
    manifest = _kinds_manifest(kinds, speech, tmp_path)
    with caplog.at_level(logging.WARNING):
        assert main(["decode", "--model", str(spoken_model["model"]), "--manifest", str(manifest),
                     "--out", str(tmp_path / "hyps.jsonl")]) == 0
    hyps = {r["id"]: r["text"] for r in map(json.loads, (tmp_path / "hyps.jsonl").read_text().splitlines())}
    for stem in REFUSED:
        assert stem not in hyps
        assert any(f"skipping {stem}: {kinds[stem]}" in r.getMessage() for r in caplog.records), stem
    words = [s for s, k in KINDS.items() if k.want == "words"]
    assert all(core.cer(speech[1], hyps[s]) <= core.MAX_CER for s in words), hyps


def test_prepare_folder_names_every_unreadable_file(kinds, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        assert main(["prepare", "folder", str(kinds["silence"].parent), "--out", str(tmp_path / "out")]) == 0
    rows = {r["id"] for r in read_manifest(tmp_path / "out" / "all.jsonl")}
    header_bad = [s for s, k in KINDS.items() if k.header_bad]
    assert len(header_bad) > 5 and not rows & set(header_bad)  # more than the few a warning shows
    assert all(kinds[s].name in caplog.text for s in header_bad)


@pytest.mark.parametrize("how", ["deleted", "folder", "emptied", "dangling-link"])
def test_a_file_that_vanishes_after_the_run_listed_it_is_named(how, recognizer, speech, tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    for name in ("a.wav", "victim.wav"):
        soundfile.write(audio / name, speech[0], 16000)
    items = collect_inputs([str(audio)])
    drill_audio._spoil(audio / "victim.wav", how)
    summary = transcribe_to_dir(recognizer, items, tmp_path / "out", ["txt"])
    ledger = read_ledger(tmp_path / "out")
    assert summary.failed == 1 and summary.done == 1 and ledger["a"]["status"] == "done"
    assert ledger["victim"]["status"] == "failed"
    _one_line_naming(ledger["victim"]["error"], audio / "victim.wav")


def test_an_utterance_too_long_to_decode_whole_is_named_not_read(speech, tmp_path):
    path = tmp_path / "long.wav"
    soundfile.write(path, np.tile(speech[0], 3), 16000)
    row = {"id": "long", "audio_filepath": str(path), "duration": 1.0, "text": "x"}  # the manifest lies
    utt_id, wave, error = SpeechDataset([row], CharTokenizer(), 16000, max_seconds=2.0)[0]
    assert wave is None and "longer than the 2 s" in error and "asr transcribe" in error
    _one_line_naming(error, path)


def test_training_names_each_utterance_it_drops(caplog):
    texts = {**inputs.BAD_TEXTS, **inputs.FINE_TEXTS}
    rows = [{"id": i, "audio_filepath": "a.wav", "duration": 1.6, "text": t} for i, t in texts.items()]
    rows.append({"id": "t-hours", "audio_filepath": "b.wav", "duration": 3 * 3600.0, "text": "a b"})
    rows.append({"id": "over-batch", "audio_filepath": "c.wav", "duration": 90.0, "text": "a b"})
    dataset = SpeechDataset(rows, CharTokenizer(), 16000)
    with caplog.at_level(logging.WARNING):
        dataset.filter_infeasible(lambda n: n // 320, "m.jsonl", batch_seconds=60)  # 50 frames a second
    assert [e["id"] for e in dataset.entries] == list(inputs.FINE_TEXTS)
    assert ("1 longer than a batch holds (60 s; raise --max-batch-seconds to keep them): over-batch"
            in caplog.text)
    bad = [*inputs.BAD_TEXTS, "t-hours", "over-batch"]
    assert [i for i in bad if re.search(rf"(?<![\w-]){i}(?![\w-])", caplog.text)] == bad, caplog.text


@pytest.mark.parametrize("defect", list(inputs.MANIFEST_DEFECTS))
def test_a_bad_manifest_line_is_named_by_every_reader(defect, tmp_path):
    line, write = inputs.MANIFEST_DEFECTS[defect]
    rows = [{"id": f"u{i}", "audio_filepath": f"u{i}.wav", "duration": 1.0, "text": "a b"} for i in range(3)]
    path = tmp_path / f"{defect}.jsonl"
    path.write_bytes(write(rows))
    for read in (read_manifest, read_transcripts, lambda p: collect_inputs([str(p)])):
        with pytest.raises(ValueError) as err:
            read(path)
        assert str(err.value).startswith(f"{path}:{line}: ") and "\n" not in str(err.value), str(err.value)


@pytest.mark.parametrize("fine", list(inputs.MANIFEST_FINE))
def test_a_byte_order_mark_and_blank_lines_are_read(fine, tmp_path):
    rows = [{"id": f"u{i}", "audio_filepath": f"u{i}.wav", "duration": 1.0, "text": "a b"} for i in range(3)]
    path = tmp_path / "m.jsonl"
    path.write_bytes(inputs.MANIFEST_FINE[fine](rows))
    assert [e["id"] for e in read_manifest(path)] == list(read_transcripts(path)) == ["u0", "u1", "u2"]
    assert [i.id for i in collect_inputs([str(path)])] == ["u0", "u1", "u2"]


@pytest.fixture
def good_lm(tmp_path):
    text = tmp_path / "lm.txt"
    text.write_text("\n".join(core.SENTENCES) + "\n")
    assert main(["lm", "build", str(text), "--order", "2", "--out", str(tmp_path / "good.arpa")]) == 0
    return tmp_path / "good.arpa"


@pytest.mark.parametrize("defect", [*files.LM_DEFECTS, "poisoned-cache"])
def test_a_bad_lm_file_is_refused_in_one_line_and_its_cache_never_unpickled(defect, good_lm, tmp_path):
    folder = tmp_path / defect
    folder.mkdir()
    marker = folder / "CODE-RAN"
    path = files._bad_lm(defect, SimpleNamespace(lm=good_lm), folder, marker)
    if defect == "poisoned-cache":
        assert NgramLM.from_arpa(path).order == 2
    else:
        with pytest.raises(ValueError) as err:
            NgramLM.from_arpa(path)
        _one_line_naming(str(err.value), path)
    assert not marker.exists()


def test_lm_text_in_another_encoding_names_the_line_and_keeps_the_old_lm(good_lm, tmp_path, capsys):
    text = tmp_path / "latin1.txt"
    text.write_bytes("the cat\ncafé au lait\n".encode("latin-1"))
    before = good_lm.read_bytes()
    assert main(["lm", "build", str(text), "--out", str(good_lm)]) == 2
    assert f"asr: error: {text}:2: not UTF-8 text" in capsys.readouterr().err
    assert good_lm.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == \
        ["good.arpa", "latin1.txt", "lm.txt"]


def test_score_without_reference_words_names_the_reference_file(tmp_path, capsys):
    (tmp_path / "ref.jsonl").write_text('{"id": "a", "text": ""}\n{"id": "b", "text": "😀 ?!"}\n')
    (tmp_path / "hyp.jsonl").write_text('{"id": "a", "text": "x"}\n')
    assert main(["score", str(tmp_path / "ref.jsonl"), str(tmp_path / "hyp.jsonl")]) == 2
    assert f"asr: error: {tmp_path / 'ref.jsonl'}: no reference words" in capsys.readouterr().err


def test_an_output_path_in_the_way_is_one_line(spoken_model, tmp_path, capsys):
    (tmp_path / "hyps.jsonl").mkdir()
    assert main(["decode", "--model", str(spoken_model["model"]), "--manifest", str(spoken_model["manifest"]),
                 "--out", str(tmp_path / "hyps.jsonl")]) == 2
    assert f"asr: error: {tmp_path / 'hyps.jsonl'}: Is a directory" in capsys.readouterr().err
    assert list((tmp_path / "hyps.jsonl").iterdir()) == [] and len(list(tmp_path.iterdir())) == 1
