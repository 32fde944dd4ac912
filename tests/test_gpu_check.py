"""scripts/gpu_check.sh --smoke: every step of the GPU check, on the CPU with tiny sizes."""

import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_gpu_check_smoke_writes_one_table_and_json_line(tmp_path):
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--smoke", "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary == json.loads((tmp_path / "summary.json").read_text())
    assert summary["pytest_gpu"].get("failed", 0) == 0
    training = summary["training"]
    assert training["epochs"] == 1 and 0 < training["train_hours"] < 0.1
    assert training["audio_h_per_gpu_h"] > 0 and 0 <= training["dev_wer"] <= 1
    for config in ("x4 bpe500", "x2 chars"):
        result = summary["bench_train"][config]
        assert result["ours"]["audio_h_per_gpu_h"] > 0 and result["reference"]["audio_h_per_gpu_h"] > 0
    (decoding,) = summary["decoding"]  # one beam width in smoke mode
    assert decoding["utt_per_s"] > 0 and decoding["flashlight_utt_per_s"] > 0
    table = (tmp_path / "summary.md").read_text()
    assert table in done.stdout and "| bench_train x4 bpe500: MFU, peak GiB |" in table
    assert set(summary["met"]) == {"speedup", "mfu", "decode_vs_flashlight"}
