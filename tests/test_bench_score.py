"""scripts/bench_score.py: the three scorers on the same random pairs, and its JSON line."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "scripts" / "bench_score.py"


def test_bench_score_rows_and_rates():
    out = subprocess.run([sys.executable, str(SCRIPT), "--utterances", "3000", "--seed", "3"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    summary = json.loads(out.strip().splitlines()[-1])
    rows = {r["scorer"]: r for r in summary["rows"]}
    assert list(rows) == ["ours", "jiwer-batch", "jiwer-loop"] and summary["utterances"] == 3000
    assert rows["jiwer-batch"]["wer"] == rows["jiwer-loop"]["wer"] > 0.1
    # sclite's costs never give fewer errors than jiwer's minimum edit distance
    assert rows["jiwer-loop"]["wer"] <= rows["ours"]["wer"] < rows["jiwer-loop"]["wer"] + 0.002
    assert rows["jiwer-loop"]["cer"] <= rows["ours"]["cer"] < rows["jiwer-loop"]["cer"] + 0.002
    assert all(r["utt_per_s"] > 0 for r in rows.values())
    assert "| ours " in out
