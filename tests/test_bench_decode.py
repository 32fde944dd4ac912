import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from asr.checkpoint import model_state, save_atomic
from asr.data import SpeechDataset, read_manifest
from asr.decode import build_decoder
from asr.inference import compute_log_probs, decode_log_probs
from asr.lm import build_arpa
from asr.model import CTCModel, ModelConfig
from asr.score import score
from asr.text import CharTokenizer, normalize

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_decode.py"
TEXTS = ["one two", "three", "two one three"]


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_decode", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tiny_setup(tmp_path):
    """An untrained tiny model, 3 noise utterances with texts and a bigram LM, in tmp_path."""
    torch.manual_seed(0)
    tokenizer = CharTokenizer()
    model = CTCModel(ModelConfig.from_size("tiny", len(tokenizer)))
    save_atomic(model_state(model, tokenizer), tmp_path / "model.pt")
    rng = np.random.default_rng(0)
    rows = []
    for i, text in enumerate(TEXTS):
        seconds = 0.4 + 0.2 * i
        path = tmp_path / f"utt{i}.wav"
        soundfile.write(path, 0.1 * rng.standard_normal(int(16000 * seconds)), 16000)
        rows.append({"id": f"utt{i}", "audio_filepath": str(path), "duration": seconds, "text": text})
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    build_arpa(TEXTS + ["one one two", "three two"], order=2, out=tmp_path / "lm.arpa")
    return tmp_path


def test_repeat_and_shares():
    bench = _bench_module()
    lp = {"a": torch.zeros(3, 2), "b": torch.zeros(1, 2), "c": torch.zeros(2, 2)}
    repeated, refs = bench.repeat_log_probs(lp, {"a": "x", "b": "y", "c": "z"}, 7)
    assert list(repeated) == ["a", "b", "c", "a~r1", "b~r1", "c~r1", "a~r2", "b~r2", "c~r2"]
    assert refs["c~r2"] == "z" and repeated["a~r1"] is lp["a"]
    shares = bench.split_shares(repeated, 2)
    assert sorted(sum(shares, [])) == sorted(repeated) and abs(len(shares[0]) - len(shares[1])) <= 1
    packed = bench.unpack(*bench.pack(repeated, shares[1]))
    assert list(packed) == shares[1] and all(torch.equal(packed[i], repeated[i]) for i in packed)


def test_needs_an_lm(tiny_setup):
    with pytest.raises(SystemExit, match="--lm"):
        _bench_module().main(["--model", str(tiny_setup / "model.pt"),
                              "--manifest", str(tiny_setup / "test.jsonl"), "--decoders", "beam"])


def test_smoke_run_prints_table_then_json(tiny_setup):
    model_path, manifest, lm = (str(tiny_setup / f) for f in ("model.pt", "test.jsonl", "lm.arpa"))
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--model", model_path, "--manifest", manifest, "--lm", lm,
         "--min-utterances", "6", "--beams", "2", "--threads", "1", "--alpha", "0.5", "--beta", "1"],
        capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary["utterances"] == 6 and summary["threads"] == 1 and summary["lm"] == lm
    gpu = torch.cuda.is_available()
    expected = {("greedy", "cpu", None), ("beam", "cpu", 2), ("flashlight", "cpu", 2),
                ("pyctcdecode", "cpu", 2)} | ({("beam", "cuda", 2)} if gpu else set())
    rows = {(r["decoder"], r["device"], r["beam"]): r for r in summary["rows"]}
    assert len(rows) == len(summary["rows"]) and set(rows) == expected
    for row in summary["rows"]:
        assert set(row) == {"decoder", "device", "beam", "wer", "utt_per_s"}
        assert 0 <= row["wer"] < float("inf") and row["utt_per_s"] > 0
    table = [line for line in lines if line.startswith("| ") and "---" not in line]
    assert len(table) == 1 + len(expected)  # the header, then one line per row

    # the same decoders run here, in one process, on the same log-probs give the same WERs
    bench = _bench_module()
    state = torch.load(model_path, weights_only=True)
    tokenizer = CharTokenizer.from_dict(state["tokenizer"])
    model = CTCModel(ModelConfig.from_dict(state["config"]))
    model.load_state_dict(state["model"])
    model.to("cuda" if gpu else "cpu")  # the script runs the model on the GPU when there is one
    dataset = SpeechDataset(read_manifest(manifest), tokenizer, 16000)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the script with --threads 1: the same sums, bit for bit
    try:
        base = compute_log_probs(model, dataset)
    finally:
        torch.set_num_threads(threads)
    log_probs, refs = bench.repeat_log_probs(base, dict(zip([f"utt{i}" for i in range(3)], TEXTS)), 6)
    decoders = {"greedy": build_decoder("greedy"),
                "beam": build_decoder("beam", tokenizer, beam_size=2, lm=lm, alpha=0.5, beta=1.0),
                "flashlight": build_decoder("flashlight", tokenizer, beam_size=2, lm=lm, alpha=0.5, beta=1.0)}
    for name, decoder in decoders.items():
        hyps = decode_log_probs(log_probs, decoder, tokenizer, batch_size=64)
        beam = None if name == "greedy" else 2
        assert rows[(name, "cpu", beam)]["wer"] == pytest.approx(score(refs, hyps, normalize).wer,
                                                                 abs=1e-6), name
