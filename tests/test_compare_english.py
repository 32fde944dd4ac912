"""scripts/compare_english.py on a tiny untrained model with a saved LM: rows, columns, and
numbers equal to `asr score` of `asr decode` (and of PocketSphinx's hypotheses)."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from asr import cli
from asr.checkpoint import model_state, save_atomic
from asr.decoding import save_lm_weights
from asr.lm import build_arpa
from asr.model import CTCModel, ModelConfig
from asr.text import CharTokenizer

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_english.py"
HAS_POCKETSPHINX = importlib.util.find_spec("pocketsphinx") is not None


def _script():
    spec = importlib.util.spec_from_file_location("compare_english", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def setup(tmp_path, noise_corpus):
    """A checkpoint with a tuned bigram LM, and two small sets."""
    tokenizer = CharTokenizer()
    torch.manual_seed(0)
    model = CTCModel(ModelConfig.from_size("tiny", len(tokenizer), hidden_size=32))
    ckpt = tmp_path / "exp" / "best.pt"
    save_atomic(model_state(model, tokenizer), ckpt)
    build_arpa(["ab ba", "cab ab", "ba cab ab"], 2, tmp_path / "exp" / "lm.arpa")
    save_lm_weights(ckpt, "beam", str(tmp_path / "exp" / "lm.arpa"),
                    {"alpha": 0.5, "beta": 0.0, "oov_penalty": -5.0})
    return ckpt, {"dev": noise_corpus("dev", 3, seed=1), "test": noise_corpus("test", 2, seed=2)}


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _asr_score(ref: Path, hyp: Path, tmp_path: Path) -> dict:
    out = tmp_path / "score.json"
    assert cli.main(["score", str(ref), str(hyp), "--json-out", str(out)]) == 0
    return json.loads(out.read_text())


@pytest.mark.parametrize("pocketsphinx", [False, pytest.param(True, marks=pytest.mark.skipif(
    not HAS_POCKETSPHINX, reason="pocketsphinx is not installed"))])
def test_table_rows_and_numbers_equal_asr_decode_and_score(setup, tmp_path, capsys, pocketsphinx):
    ckpt, sets = setup
    out = tmp_path / "compare"
    summary = _script().main([
        "--models", f"tiny={ckpt}", f"gone={tmp_path / 'missing.pt'}",
        "--sets", *(f"{name}={path}" for name, path in sets.items()), "--out-dir", str(out),
        "--device", "cpu", "--beam-size", "4", "--pocketsphinx" if pocketsphinx else "--no-pocketsphinx"])
    printed = capsys.readouterr()
    assert "skipping model gone:" in printed.err and "missing.pt: checkpoint not found" in printed.err
    assert json.loads(printed.out.strip().splitlines()[-1]) == json.loads(json.dumps(summary))
    assert json.loads((out / "compare.json").read_text()) == json.loads(json.dumps(summary))
    assert summary["skipped_models"] == {"gone": str(tmp_path / "missing.pt")}

    md = (out / "compare.md").read_text()
    assert printed.out.startswith(md)
    lines = md.split("\n\n")[0].splitlines()
    assert lines[0] == "| system | dev WER % | dev CER % | test WER % | test CER % |"
    systems = ["tiny greedy", "tiny beam+LM"] + ["pocketsphinx"] * pocketsphinx
    assert [_cells(line)[0] for line in lines[2:]] == systems
    rows = summary["rows"]
    assert [(r["system"], r["set"]) for r in rows] == [(s, n) for s in systems for n in sets]

    for row in rows:
        manifest, hyps = sets[row["set"]], Path(row["hyps_file"])
        if row["model"] == "tiny":  # the same set decoded by `asr decode`
            decoded = tmp_path / "decoded.jsonl"
            decoder = {"tiny greedy": "greedy", "tiny beam+LM": "auto"}[row["system"]]
            assert cli.main(["decode", "--model", str(ckpt), "--manifest", str(manifest), "--out",
                             str(decoded), "--decoder", decoder, "--beam-size", "4",
                             "--device", "cpu"]) == 0
            assert decoded.read_text() == hyps.read_text()
        report = _asr_score(manifest, hyps, tmp_path)
        assert (row["wer"], row["cer"], row["utts"]) == (report["wer"], report["cer"], report["n_utts"])
        cells = next(_cells(ln) for ln in lines if _cells(ln)[0] == row["system"])
        column = 1 + 2 * list(sets).index(row["set"])
        assert cells[column:column + 2] == [f"{100 * report['wer']:.2f}", f"{100 * report['cer']:.2f}"]


def test_missing_set_is_named_and_nothing_left_fails(setup, tmp_path):
    ckpt, sets = setup
    script = _script()
    with pytest.raises(FileNotFoundError, match="nope.jsonl: manifest not found; fix the path"):
        script.main(["--models", str(ckpt), "--sets", str(tmp_path / "nope.jsonl"),
                     "--out-dir", str(tmp_path / "c")])
    with pytest.raises(SystemExit, match="nothing to compare"):
        script.main(["--models", f"a={tmp_path / 'none.pt'}", "--sets", str(sets["dev"]),
                     "--no-pocketsphinx", "--out-dir", str(tmp_path / "c")])
    with pytest.raises(ValueError, match="not distinct"):
        script.main(["--models", f"a={ckpt}", f"a={ckpt}", "--sets", str(sets["dev"]),
                     "--out-dir", str(tmp_path / "c")])
    assert not (tmp_path / "c").exists()
