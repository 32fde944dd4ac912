import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from asr.model import ModelConfig

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_train.py"


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_train", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_flop_formula_by_hand():
    flops = _bench_module().train_flops_per_frame
    # 1 bidirectional LSTM layer, H = 4, input I = 2H = 8: 2 directions x 24·4·(8+4) = 2304;
    # stacking projection 2 frames x 80 mels -> 8: 6·160·8 = 7680; output 8 -> 10: 6·8·10 = 480
    config = ModelConfig(vocab_size=10, num_layers=1, hidden_size=4, subsampling_factor=2)
    assert flops(config) == 2304 + 7680 + 480
    # large, x4, 500 units: 5 layers x 2 directions x 24·1024·3072 + 6·320·2048 + 6·2048·500
    large = ModelConfig.from_size("large", 500, subsampling_factor=4)
    assert flops(large) == 10 * 24 * 1024 * 3072 + 6 * 320 * 2048 + 6 * 2048 * 500
    with pytest.raises(ValueError, match="stacking"):
        flops(ModelConfig(vocab_size=10, subsampling="conv"))


def test_cpu_smoke_run_prints_table_then_json():
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--size", "tiny", "--steps", "2",
         "--warmup", "1", "--durations", "0.3", "1", "--max-batch-seconds", "2", "--pool", "200",
         "--peak-tflops", "1"],
        capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()

    summary = json.loads(lines[-1])
    assert {"device", "ours", "reference", "speedup"} <= set(summary)
    assert summary["device"].startswith("cpu")
    for impl in ("ours", "reference"):
        metrics = summary[impl]
        assert set(metrics) == {"audio_h_per_gpu_h", "mfu", "tflops"}
        assert metrics["audio_h_per_gpu_h"] > 0 and metrics["tflops"] > 0
        assert metrics["mfu"] == pytest.approx(metrics["tflops"], rel=2e-3)  # peak 1 TFLOP/s
    ratio = summary["ours"]["audio_h_per_gpu_h"] / summary["reference"]["audio_h_per_gpu_h"]
    assert summary["speedup"] == pytest.approx(ratio, rel=2e-3)  # values rounded to 4 digits

    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines
            if line.startswith("| x")]
    assert {(row[0], row[1]) for row in rows} == {
        ("x4 bpe500", "ours"), ("x4 bpe500", "reference"),
        ("x2 chars", "ours"), ("x2 chars", "reference")}
    assert all(row[-1] == "-" for row in rows)  # no GPU memory on CPU
