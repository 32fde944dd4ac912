"""`asr benchmark` on a tiny untrained model with a saved LM, two sets and two decoders."""

import argparse
import json
import shutil

import pytest
import torch

from asr import cli
from asr.benchmark import add_parser, run
from asr.checkpoint import model_state, save_atomic
from asr.decoding import save_lm_weights
from asr.lm import build_arpa
from asr.model import CTCModel, ModelConfig
from asr.score import read_transcripts, score
from asr.text import CharTokenizer, normalize


def _benchmark(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    return run(parser.parse_args(["benchmark", *argv]))


@pytest.fixture
def setup(tmp_path, noise_corpus):
    """A checkpoint with a tuned bigram LM, and two sets with the same file stem (one holds
    an unreadable file)."""
    tokenizer = CharTokenizer()
    torch.manual_seed(0)
    model = CTCModel(ModelConfig.from_size("tiny", len(tokenizer), hidden_size=32))
    ckpt = tmp_path / "exp" / "best.pt"
    save_atomic(model_state(model, tokenizer), ckpt)
    build_arpa(["ab ba", "cab ab", "ba cab ab"], 2, tmp_path / "exp" / "lm.arpa")
    save_lm_weights(ckpt, "beam", str(tmp_path / "exp" / "lm.arpa"),
                    {"alpha": 0.5, "beta": 0.0, "oov_penalty": -5.0})
    dev = noise_corpus("dev", 4, seed=1)
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    with dev.open("a") as f:
        f.write(json.dumps({"id": "bad", "audio_filepath": str(tmp_path / "bad.wav"),
                            "duration": 1.0, "text": "ab ba"}) + "\n")
    other = tmp_path / "other" / "dev.jsonl"
    other.parent.mkdir()
    shutil.move(noise_corpus("test", 3, seed=2), other)  # audio paths are absolute
    return ckpt, [dev, other]


def test_benchmark_rows_match_asr_decode_and_score(setup, tmp_path, capsys):
    ckpt, sets = setup
    out = tmp_path / "bench"
    assert _benchmark("--models", str(ckpt), "--sets", *map(str, sets), "--decoders", "auto",
                      "greedy", "--out-dir", str(out), "--device", "cpu", "--beam-size", "4") == 0
    assert capsys.readouterr().out == (out / "benchmark.md").read_text().split("\n\n")[0] + "\n"
    result = json.loads((out / "benchmark.json").read_text())
    rows = result["rows"]
    assert result["settings"]["threads"] == torch.get_num_threads()
    set_names = [f"{tmp_path.name}/dev", "other/dev"]  # the stems collide
    assert [(r["model"], r["decoder"], r["set"]) for r in rows] == [
        ("exp/best", d, s) for d in ("beam+LM", "greedy") for s in set_names]
    assert (out / "benchmark.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    n_params = sum(p.numel() for p in CTCModel(ModelConfig.from_size(
        "tiny", len(CharTokenizer()), hidden_size=32)).parameters())
    for row in rows:
        manifest = sets[set_names.index(row["set"])]
        hyp = tmp_path / "hyp.jsonl"  # the same set decoded and scored by `asr decode`, `asr score`
        decoder = {"beam+LM": "auto", "greedy": "greedy"}[row["decoder"]]
        assert cli.main(["decode", "--model", str(ckpt), "--manifest", str(manifest), "--out", str(hyp),
                         "--decoder", decoder, "--beam-size", "4", "--device", "cpu"]) == 0
        hyps = read_transcripts(hyp)
        assert any(hyps.values())  # a real comparison, not empty against empty
        report = score(read_transcripts(manifest), hyps, normalize)
        assert (row["wer"], row["cer"], row["utts"]) == (report.wer, report.cer, report.n_utts)
        assert row["skipped_ids"] == (["bad"] if row["set"] == set_names[0] else [])
        assert row["skipped"] == len(row["skipped_ids"])
        durations = [json.loads(line)["duration"] for line in manifest.read_text().splitlines()]
        assert row["audio_seconds"] == pytest.approx(sum(durations) - len(row["skipped_ids"]))
        assert row["rtfx"] > 0 and row["rtfx"] == pytest.approx(row["audio_seconds"] / row["seconds"])
        assert row["params"] == n_params and row["device"] == "cpu"
    assert "| exp/best | beam+LM | other/dev | 3 | 0 |" in (out / "benchmark.md").read_text()


def test_missing_files_and_bad_names_are_named(setup, tmp_path):
    ckpt, sets = setup
    out = str(tmp_path / "bench")
    with pytest.raises(FileNotFoundError, match="nope.jsonl: manifest not found; fix the path"):
        _benchmark("--models", str(ckpt), "--sets", str(sets[0]), str(tmp_path / "nope.jsonl"),
                   "--out-dir", out)
    with pytest.raises(FileNotFoundError, match="none.pt: model not found"):
        _benchmark("--models", str(tmp_path / "none.pt"), "--sets", str(sets[0]), "--out-dir", out)
    with pytest.raises(ValueError, match="--names gives 2 names for 1 models"):
        _benchmark("--models", str(ckpt), "--sets", str(sets[0]), "--names", "a", "b", "--out-dir", out)
    assert not (tmp_path / "bench").exists()  # nothing decoded or written
