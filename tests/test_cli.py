import json
import subprocess
import sys

import torch

from asr.checkpoint import model_state, save_atomic
from asr.model import CTCModel, ModelConfig
from asr.text import CharTokenizer


def _asr(*args):
    return subprocess.run([sys.executable, "-m", "asr.cli", *args], capture_output=True,
                          text=True, timeout=120)


def test_help_lists_the_commands():
    out = _asr("--help").stdout
    for command in ("train", "decode", "score", "transcribe"):
        assert command in out


def test_score_json_summary(tmp_path):
    ref, hyp = tmp_path / "ref.txt", tmp_path / "hyp.jsonl"
    ref.write_text("a The cat sat.\nb One 2 three\n")
    hyp.write_text(json.dumps({"id": "a", "text": "the hat sat on"}) + "\n")
    proc = _asr("score", "--json", str(ref), str(hyp), "--normalize", "english")  # Kaldi ref: default none
    summary = json.loads(proc.stdout)
    # a: 1 substitution + 1 insertion; b: missing hypothesis = 3 deletions
    assert (summary["substitutions"], summary["deletions"], summary["insertions"]) == (1, 3, 1)
    assert summary["ref_words"] == 6 and abs(summary["wer"] - 5 / 6) < 1e-9
    assert summary["missing"] == ["b"]


def test_user_errors_are_one_line_without_traceback(tmp_path):
    proc = _asr("decode", "--model", str(tmp_path / "none.pt"), "--manifest", "m.jsonl",
                "--out", str(tmp_path / "h.jsonl"))
    assert proc.returncode == 2
    assert "none.pt: checkpoint not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_average_takes_the_last_epochs_of_an_exp_dir(tmp_path):
    tokenizer = CharTokenizer()
    for epoch in (2, 3, 10):  # numeric order: epoch-10 is the newest
        torch.manual_seed(epoch)
        model = CTCModel(ModelConfig.from_size("tiny", len(tokenizer)))
        save_atomic(model_state(model, tokenizer), tmp_path / f"epoch-{epoch}.pt")
    proc = _asr("average", str(tmp_path), "--last", "2", "--out", str(tmp_path / "avg.pt"))
    assert proc.returncode == 0, proc.stderr
    assert "epoch-3.pt, epoch-10.pt" in proc.stderr
    weights = {e: torch.load(tmp_path / f"epoch-{e}.pt", weights_only=True)["model"]
               for e in (3, 10)}
    averaged = torch.load(tmp_path / "avg.pt", weights_only=True)["model"]
    name = "rnn.rnn.weight_hh_l0"
    assert torch.allclose(averaged[name], (weights[3][name] + weights[10][name]) / 2)
