import json
import pathlib
import random
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asr.writers import FORMATS, AllWriter, format_timestamp, get_writer, output_paths


def word(text, start, end, probability=0.9):
    return {"word": text, "start": start, "end": end, "probability": probability}


def make_result(segments, duration=None):
    return {"text": " ".join(s["text"].strip() for s in segments),
            "segments": [{"id": i, **s} for i, s in enumerate(segments)], "language": "en",
            "duration": duration if duration is not None else (segments[-1]["end"] if segments else 0.0),
            "unrecognized": []}


RESULT = make_result([
    {"start": 0.0, "end": 1.5, "text": " hello world.",
     "words": [word("hello", 0.1, 0.5, 0.9), word(" world.", 0.6, 1.2, 0.75)]},
    {"start": 2.0, "end": 3.0, "text": "naïve\tcafé", "words": []},
], duration=3.5)
RESULT["unrecognized"] = [{"start": 3.1, "end": 3.4}]

EMPTY = make_result([])


def render(fmt, result, utt_id="talk", **options):
    return get_writer(fmt, **options).render(result, utt_id)


def test_txt():
    assert render("txt", RESULT) == "hello world.\nnaïve café\n"


def test_json_is_the_whole_result_unescaped():
    text = render("json", RESULT)
    assert json.loads(text) == RESULT
    assert "naïve" in text and text.count("\n") == 1


def test_jsonl():
    lines = render("jsonl", RESULT).splitlines()
    assert [json.loads(line) for line in lines] == RESULT["segments"]
    assert "café" in lines[1]


def test_tsv():
    assert render("tsv", RESULT) == "start\tend\ttext\n0\t1500\thello world.\n2000\t3000\tnaïve café\n"


def test_ctm():
    assert render("ctm", RESULT) == (
        "talk 1 0.10 0.40 hello 0.900\n"
        "talk 1 0.60 0.60 world. 0.750\n"
        "talk 1 2.00 0.50 naïve\n"  # no word timings: spread over the segment, no confidence
        "talk 1 2.50 0.50 café\n")


def test_ctm_rejects_an_utt_id_with_whitespace():
    with pytest.raises(ValueError, match="utterance id"):
        render("ctm", RESULT, utt_id="my talk")


def test_srt():
    assert render("srt", RESULT) == (
        "1\n00:00:00,100 --> 00:00:01,200\nhello world.\n\n"
        "2\n00:00:02,000 --> 00:00:03,000\nnaïve café\n\n")


def test_vtt():
    assert render("vtt", RESULT) == (
        "WEBVTT\n\n"
        "00:00:00.100 --> 00:00:01.200\nhello world.\n\n"
        "00:00:02.000 --> 00:00:03.000\nnaïve café\n\n")


def test_vtt_escapes_markup():
    result = make_result([{"start": 0.0, "end": 1.0, "text": "a<b & c>", "words": []}])
    assert render("vtt", result).endswith("\na&lt;b &amp; c&gt;\n\n")


def test_cues_wrap_lines_and_break_at_pauses_and_segments():
    words = [word(w, 0.3 * i, 0.3 * i + 0.2) for i, w in enumerate("one two three four five six".split())]
    words.append(word("seven", 3.0, 3.5))  # a 1.2 s pause
    result = make_result([{"start": 0.0, "end": 3.5, "text": "", "words": words},
                          {"start": 3.6, "end": 4.0, "text": "eight", "words": [word("eight", 3.6, 4.0)]}])
    assert render("srt", result, max_line_chars=10, max_line_count=2) == (
        "1\n00:00:00,000 --> 00:00:01,100\none two\nthree four\n\n"
        "2\n00:00:01,200 --> 00:00:01,700\nfive six\n\n"
        "3\n00:00:03,000 --> 00:00:03,500\nseven\n\n"
        "4\n00:00:03,600 --> 00:00:04,000\neight\n\n")


def test_a_word_longer_than_a_line_gets_its_own_line():
    words = [word("a", 0.0, 0.1), word("extraordinary", 0.2, 0.8), word("b", 0.9, 1.0)]
    result = make_result([{"start": 0.0, "end": 1.0, "text": "", "words": words}])
    assert render("vtt", result, max_line_chars=5, max_line_count=2) == (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:00.800\na\nextraordinary\n\n"
        "00:00:00.900 --> 00:00:01.000\nb\n\n")


def test_cues_never_overlap_nor_have_zero_length():
    result = make_result([
        {"start": 0.0, "end": 2.5, "text": "", "words": [word("late", 1.0, 2.5)]},
        {"start": 2.0, "end": 2.0, "text": "", "words": [word("early", 2.0, 2.0)]},  # overlaps; zero length
        {"start": 2.0, "end": 3.0, "text": "", "words": [word("same", 2.0, 3.0)]},  # starts with it
    ])
    assert render("srt", result) == (
        "1\n00:00:01,000 --> 00:00:02,000\nlate\n\n"
        "2\n00:00:02,000 --> 00:00:02,001\nearly\n\n"
        "3\n00:00:02,001 --> 00:00:03,000\nsame\n\n")


def test_times_past_an_hour():
    result = make_result([{"start": 3725.5, "end": 3727.25, "text": "late",
                           "words": [word("late", 3725.5, 3727.25, 0.5)]}])
    assert render("srt", result) == "1\n01:02:05,500 --> 01:02:07,250\nlate\n\n"
    assert render("vtt", result) == "WEBVTT\n\n01:02:05.500 --> 01:02:07.250\nlate\n\n"
    assert render("tsv", result) == "start\tend\ttext\n3725500\t3727250\tlate\n"
    assert render("ctm", result) == "talk 1 3725.50 1.75 late 0.500\n"
    assert format_timestamp(100 * 3_600_000 + 59 * 60_000 + 59_999, ",") == "100:59:59,999"


def long_result(seed, n_words=400):
    """Words of 1 to 20 letters (now and then 60), gaps of 0 to 1.5 s, grouped in segments."""
    rng = random.Random(seed)
    segments, t = [], 0.0
    while n_words > 0:
        count = min(rng.randint(1, 60), n_words)
        n_words -= count
        words = []
        for _ in range(count):
            length = 60 if rng.random() < 0.02 else rng.randint(1, 20)
            t += rng.choice([0.0, 0.05, 0.3, 1.5])
            duration = rng.choice([0.0, 0.2, 0.6])
            words.append(word("x" * length, t, t + duration))
            t += duration
        with_words = rng.random() < 0.9
        segments.append({"start": words[0]["start"], "end": t, "text": " ".join(w["word"] for w in words),
                         "words": words if with_words else []})
        t += 0.1
    return make_result(segments)


def parse_srt(text):
    """[(start ms, end ms, lines)], checking the numbering."""
    def ms(stamp):
        hms, millis = stamp.split(",")
        hours, minutes, seconds = map(int, hms.split(":"))
        return ((hours * 60 + minutes) * 60 + seconds) * 1000 + int(millis)

    cues = []
    for number, block in enumerate(text.split("\n\n")[:-1], 1):
        index, times, *lines = block.split("\n")
        assert int(index) == number
        start, end = times.split(" --> ")
        cues.append((ms(start), ms(end), lines))
    return cues


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32), max_line_chars=st.integers(1, 60), max_line_count=st.integers(1, 3))
def test_cue_invariants_on_a_long_result(seed, max_line_chars, max_line_count):
    result = long_result(seed)
    srt = render("srt", result, max_line_chars=max_line_chars, max_line_count=max_line_count)
    cues = parse_srt(srt)
    # (text, segment number, starts after a long pause) of every word
    words, previous_end = [], None
    for number, segment in enumerate(result["segments"]):
        spread = [{"word": t, "start": None, "end": None} for t in segment["text"].split()]
        for w in segment["words"] or spread:
            pause = None not in (w["start"], previous_end) and w["start"] - previous_end > 1.0
            words.append((w["word"], number, pause))
            previous_end = w["end"]
        previous_end = None
    assert [w for _, _, lines in cues for line in lines for w in line.split()] == [w for w, _, _ in words]
    for start, end, lines in cues:
        assert start < end
        assert 1 <= len(lines) <= max_line_count
        assert all(len(line) <= max_line_chars or " " not in line for line in lines)
    assert all(end <= next_start for (_, end, _), (next_start, _, _) in zip(cues, cues[1:]))
    # a cue ends at a segment's end or a pause, else only when full: the next word fits neither line nor cue
    first_word = 0
    for _, _, lines in cues[:-1]:
        first_word += sum(len(line.split()) for line in lines)
        text, segment, pause = words[first_word]
        if segment == words[first_word - 1][1] and not pause:
            assert len(lines) == max_line_count and len(lines[-1]) + 1 + len(text) > max_line_chars
    assert len(result["segments"]) <= len(cues) <= len(words)
    most_per_cue = (max_line_chars + 1) * max_line_count  # counting a line's words as min(len, limit) + 1
    assert len(cues) >= sum(min(len(w), max_line_chars) + 1 for w, _, _ in words) / most_per_cue
    vtt = render("vtt", result, max_line_chars=max_line_chars, max_line_count=max_line_count)
    assert vtt == "WEBVTT\n\n" + "".join(block.split("\n", 1)[1].replace(",", ".") + "\n\n"
                                         for block in srt.split("\n\n")[:-1])


def test_empty_result_writes_valid_empty_files(tmp_path):
    paths = get_writer("all")(EMPTY, tmp_path / "empty", "u")
    contents = {path.suffix[1:]: path.read_text(encoding="utf-8") for path in paths}
    assert contents == {"txt": "", "json": json.dumps(EMPTY) + "\n", "jsonl": "", "srt": "",
                        "vtt": "WEBVTT\n\n", "tsv": "start\tend\ttext\n", "ctm": ""}


def test_all_writes_seven_files_in_new_folders(tmp_path):
    stem = tmp_path / "out" / "sub" / "talk.v2"
    writer = get_writer("all")
    assert isinstance(writer, AllWriter) and writer.extensions == FORMATS
    paths = writer(RESULT, stem, "talk")
    assert paths == output_paths("all", stem) == [tmp_path / "out" / "sub" / f"talk.v2.{f}" for f in FORMATS]
    assert sorted(p.name for p in stem.parent.iterdir()) == sorted(p.name for p in paths)
    assert (stem.parent / "talk.v2.srt").read_text(encoding="utf-8") == render("srt", RESULT)


def test_one_format_writes_its_file(tmp_path):
    writer = get_writer("srt")
    assert writer.extension == "srt"
    assert writer(RESULT, tmp_path / "talk", "talk") == output_paths("srt", tmp_path / "talk") == [
        tmp_path / "talk.srt"]


def test_unknown_format():
    for call in (lambda: get_writer("docx"), lambda: output_paths("docx", "x")):
        with pytest.raises(ValueError) as error:
            call()
        assert str(error.value) == (
            "unknown output format 'docx'; choose from: txt, json, jsonl, srt, vtt, tsv, ctm, all")
    with pytest.raises(ValueError, match="max_line_chars"):
        get_writer("srt", max_line_chars=0)


def test_a_failed_write_leaves_no_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError):
        get_writer("txt")(RESULT, tmp_path / "file" / "talk", "talk")
    assert [p.name for p in tmp_path.iterdir()] == ["file"]
    assert (tmp_path / "file").read_text() == "x"


def test_a_write_failing_midway_keeps_the_old_file(tmp_path, monkeypatch):
    (tmp_path / "talk.srt").write_text("old")

    def half_then_fail(self, text, encoding=None):
        with open(self, "w", encoding=encoding) as f:
            f.write(text[: len(text) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(pathlib.Path, "write_text", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        get_writer("srt")(RESULT, tmp_path / "talk", "talk")
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["talk.srt"]
    assert (tmp_path / "talk.srt").read_text() == "old"


def test_all_writes_nothing_when_a_format_rejects_the_result(tmp_path):
    with pytest.raises(ValueError):
        get_writer("all")(RESULT, tmp_path / "talk", "bad id")
    assert list(tmp_path.iterdir()) == []


def test_no_torch_import():
    code = "import sys, asr.writers; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
