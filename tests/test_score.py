"""Tests for asr.score: error counts, pairing by id, readers, report layout."""

import json
import random
import re
import subprocess
import sys

import jiwer
import pytest

from asr.score import format_report, read_transcripts, score


def counts(ref: str, hyp: str) -> tuple[int, int, int, int]:
    r = score({"u": ref, "other": "pad"}, {"u": hyp, "other": "pad"})
    return r.hits - 1, r.substitutions, r.deletions, r.insertions


@pytest.mark.parametrize("ref, hyp, expected", [
    ("the cat sat", "the hat sat on", (2, 1, 0, 1)),  # (hits, S, D, I)
    ("a b c", "", (0, 0, 3, 0)),
    ("", "x y", (0, 0, 0, 2)),
    ("the the the", "the the", (2, 0, 1, 0)),
    ("go go go go", "go go", (2, 0, 2, 0)),
    ("one two three", "one two three", (3, 0, 0, 0)),
])
def test_hand_counted_word_errors(ref, hyp, expected):
    assert counts(ref, hyp) == expected


def test_corpus_totals_with_empty_ref_and_hyp():
    refs = {"a": "the cat sat", "b": "a b c", "c": "", "d": "x y z"}
    hyps = {"a": "the hat sat on", "b": "", "c": "oh no", "d": "x y z"}
    r = score(refs, hyps)
    assert (r.substitutions, r.deletions, r.insertions, r.ref_words) == (1, 3, 3, 9)
    assert r.wer == pytest.approx(7 / 9)
    assert (r.n_utts, r.sentence_errors) == (4, 3)
    # characters, spaces between words included: 11 + 5 + 5 reference characters;
    # c->h (S), " on" (3 I), "a b c" (5 D), "oh no" (5 I, empty reference)
    assert r.ref_chars == 21
    assert (r.char_substitutions, r.char_deletions, r.char_insertions) == (1, 5, 8)
    assert r.cer == pytest.approx(14 / 21)
    assert r.confusions == {("cat", "hat"): 1}
    assert r.inserted == {"on": 1, "oh": 1, "no": 1}


def test_no_reference_words_is_a_clear_error():
    with pytest.raises(ValueError, match="no reference words"):
        score({"a": "", "b": "  "}, {"a": "x"})


def test_errors_are_jiwer_minimum_or_more():
    """jiwer counts the minimum number of edits; sclite's costs (substitution 4,
    insertion/deletion 3) may pick an alignment with more, never fewer: per utterance for
    words, and in total for characters."""
    rng = random.Random(0)
    vocab = "a an the cat dog sat on mat red blue".split()
    refs, hyps = {}, {}
    for i in range(300):
        ref = [rng.choice(vocab) for _ in range(rng.randint(1, 12))]
        hyp = [w if rng.random() < 0.7 else rng.choice(vocab) for w in ref]
        hyp = [w for w in hyp if rng.random() > 0.1]
        hyp += [rng.choice(vocab) for _ in range(rng.randint(0, 2))]
        refs[f"u{i}"], hyps[f"u{i}"] = " ".join(ref), " ".join(hyp)
    r = score(refs, hyps)
    for u in r.utterances:
        minimum = jiwer.process_words(refs[u.id], hyps[u.id])
        assert u.errors >= minimum.substitutions + minimum.deletions + minimum.insertions
    keys = list(refs)
    ref_list, hyp_list = [refs[k] for k in keys], [hyps[k] for k in keys]
    assert r.wer == pytest.approx(jiwer.wer(ref_list, hyp_list), abs=0.01)
    assert jiwer.cer(ref_list, hyp_list) <= r.cer < jiwer.cer(ref_list, hyp_list) + 0.01


def test_normaliser_is_applied_to_both_sides():
    refs, hyps = {"a": "Hello, World!"}, {"a": "hello world"}
    assert score(refs, hyps).substitutions == 2
    simple = lambda s: re.sub(r"[^\w\s]", "", s.lower())  # noqa: E731
    r = score(refs, hyps, simple)
    assert r.errors == 0 and r.char_substitutions == 0


def test_missing_hypothesis_counts_as_deletions_and_is_reported():
    r = score({"a": "one two", "b": "three four five"}, {"a": "one two"})
    assert r.missing == ["b"]
    assert r.deletions == 3 and r.wer == pytest.approx(3 / 5)
    assert r.to_dict()["missing"] == ["b"]
    assert "Missing from HYP: 1" in format_report(r)


def test_extra_ids_are_reported_and_ignored():
    r = score({"a": "one two"}, {"a": "one two", "z": "stray words"})
    assert r.extra == ["z"]
    assert r.errors == 0 and r.inserted == {}
    assert "Extra in HYP: 1" in format_report(r)


def test_kaldi_and_jsonl_read_the_same(tmp_path):
    kaldi = tmp_path / "text"
    kaldi.write_text("utt1 hello world\nutt2\tcafé  au lait\n\nutt3\n", encoding="utf-8")
    jsonl = tmp_path / "hyp.jsonl"
    rows = [{"id": "utt1", "text": "hello world", "audio": "a.wav"},
            {"id": "utt2", "text": "café  au lait", "duration": 1.5},
            {"id": "utt3", "text": ""}]
    jsonl.write_text("\n".join(json.dumps(x) for x in rows) + "\n", encoding="utf-8")
    expected = {"utt1": "hello world", "utt2": "café  au lait", "utt3": ""}
    assert read_transcripts(kaldi) == expected
    assert read_transcripts(jsonl) == expected


@pytest.mark.parametrize("content, line, message", [
    ('{"id": "a", "text": "x"}\n{"id": "b", "text": \n', 2, "invalid JSON"),
    ('{"id": "a", "text": "x"}\n\n{"id": "b"}\n', 3, '"text"'),
    ("a one\nb two\na three\n", 3, "duplicate id 'a'"),
    ("a one\n{\"id\": \"b\", \"text\": \"x\"}\n", 2, "one format per file"),
])
def test_malformed_line_names_file_and_line(tmp_path, content, line, message):
    path = tmp_path / "bad.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(f"{path}:{line}:")) as err:
        read_transcripts(path)
    assert message in str(err.value)


def test_alignment_rows_line_up():
    r = score({"u": "the cat sat", "v": "a bb ccc"}, {"u": "the hat sat on", "v": "aaaa bb"})
    u, v = r.utterances
    assert (u.ref, u.hyp, u.marks) == ("the CAT sat **", "the HAT sat ON", "    S       I ")
    for row in (u, v):
        assert len(row.ref) == len(row.hyp) == len(row.marks)
        # every mark sits at the start of a column, and the column is an error on both rows
        for pos, mark in enumerate(row.marks):
            if mark != " ":
                assert pos == 0 or row.ref[pos - 1] == row.hyp[pos - 1] == " "
                assert not row.ref[pos].islower() and not row.hyp[pos].islower()
    assert (v.ref, v.hyp, v.marks) == ("A    bb CCC", "AAAA bb ***", "S       D  ")


def test_report_and_dict():
    r = score({"u": "the cat sat", "v": "ok"}, {"u": "the hat sat", "v": "ok"})
    d = json.loads(json.dumps(r.to_dict()))
    for key in ("wer", "cer", "ser", "substitutions", "deletions", "insertions", "ref_words",
                "hits", "n_utts", "missing", "extra", "ref_chars", "top_confusions"):
        assert key in d
    assert d["top_confusions"] == [{"ref": "cat", "hyp": "hat", "count": 1}]
    assert d["wer"] == pytest.approx(0.25) and d["ser"] == pytest.approx(0.5)
    text = format_report(r)
    assert "S.Err" in text and "cat -> hat" in text and "REF: the CAT sat" in text
    assert "\nv  " not in text  # utterances without errors are not aligned
    assert "REF:" not in format_report(r, max_alignments=0)


def test_score_does_not_import_torch():
    code = "import sys, asr.score; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_trn_files_read_by_extension_or_content(tmp_path):
    text = "hello world (spk1-a)\n (spk1-b)\ncall me (later) (spk2-c)\n"
    for name in ("ref.trn", "ref.txt"):
        (tmp_path / name).write_text(text)
        assert read_transcripts(tmp_path / name) == {"spk1-a": "hello world", "spk1-b": "",
                                                     "spk2-c": "call me (later)"}
    (tmp_path / "bad.trn").write_text("no id here\n")
    with pytest.raises(ValueError, match=r"bad.trn:1: .*id in parentheses"):
        read_transcripts(tmp_path / "bad.trn")
    (tmp_path / "text").write_text("utt1 words (noise)\nutt2 more\n")  # not every line: Kaldi
    assert read_transcripts(tmp_path / "text") == {"utt1": "words (noise)", "utt2": "more"}


def test_named_normalisers():
    from asr.text import NORMALIZERS

    text = "Hello,  WORLD: it's 2 o'clock -- 'quoted'"
    assert NORMALIZERS["none"](text) == "Hello, WORLD: it's 2 o'clock -- 'quoted'"
    assert NORMALIZERS["basic"](text) == "hello world it's 2 o'clock quoted"
    assert NORMALIZERS["english"](text) == "hello world it's two o'clock quoted"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asr.cli", *args], capture_output=True, text=True,
                          timeout=120)


def test_cli_score_formats_normalisation_and_json_file(tmp_path):
    ref, hyp = tmp_path / "ref.jsonl", tmp_path / "hyp.trn"
    ref.write_text(json.dumps({"id": "u1", "text": "Two cats.", "speaker": "ann"}) + "\n"
                   + json.dumps({"id": "u2", "text": "a dog", "speaker": "bob"}) + "\n")
    hyp.write_text("2 cats (u1)\na log (u2)\n")
    default = _cli("score", str(ref), str(hyp), "--format", "json", "--json-out", str(tmp_path / "r.json"))
    report = json.loads(default.stdout)
    assert report == json.loads((tmp_path / "r.json").read_text())
    assert report["normalization"] == "none" and report["substitutions"] == 3  # a trn side: as sclite
    english = json.loads(_cli("score", str(ref), str(hyp), "--json", "--normalize", "english").stdout)
    assert english["normalization"] == "english" and english["substitutions"] == 1  # dog -> log
    assert [g["group"] for g in report["by_speaker"]] == ["ann", "bob"]  # from the manifest
    assert report["utterances"][1]["marks"].strip() == "S"
    lo, hi = report["wer_95ci"]
    assert lo <= report["wer"] <= hi
    basic = json.loads(_cli("score", str(ref), str(hyp), "--json", "--normalize", "basic").stdout)
    assert basic["substitutions"] == 2 and basic["normalization"] == "basic"  # two -> 2 as well
    markdown = _cli("score", str(ref), str(hyp), "--format", "markdown").stdout
    assert "| utterances | words | WER % (95% CI)" in markdown and "| dog | log | 1 |" in markdown
    missing = _cli("score", str(ref), str(tmp_path / "nope.trn"))
    assert missing.returncode == 2 and "nope.trn: no such transcript file" in missing.stderr


def test_cli_compare_prefers_the_better_system(tmp_path):
    refs = {f"s{i % 5}-u{i}": "the cat sat on the mat today" for i in range(60)}
    good = {k: v for k, v in refs.items()}
    bad = {k: v.replace("sat", "sad") if i % 2 else v for i, (k, v) in enumerate(refs.items())}
    for name, texts in (("ref", refs), ("a", good), ("b", bad)):
        (tmp_path / f"{name}.txt").write_text("".join(f"{k} {v}\n" for k, v in texts.items()))
    files = [str(tmp_path / f"{name}.txt") for name in ("ref", "a", "b")]
    result = json.loads(_cli("compare", "--ref", *files, "--json").stdout)
    assert result["a"]["wer"] == 0 and result["b"]["wer"] == pytest.approx(30 / 420)
    assert result["paired_bootstrap"]["p_a_better"] > 0.99
    assert result["mapsswe"]["segments"] == 30 and result["mapsswe"]["p_value"] == 0.0
    text = _cli("compare", "--ref", *files)
    assert "P(A better) = 1.000" in text.stdout and "MAPSSWE: 30 segments" in text.stdout
