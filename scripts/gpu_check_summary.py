"""The table and JSON line of scripts/gpu_check.sh, from the files its steps wrote.

    python scripts/gpu_check_summary.py OUT TRAIN_MANIFEST EPOCHS

Writes OUT/summary.md and OUT/summary.json and prints both (the JSON last). Targets (issue 14):
ours >= 5x the reference in audio-hours per GPU-hour and MFU >= 25% for `large` (bench_train's
x4 configuration), GPU beam search with the LM >= 20x flashlight on the CPU (bench_decode, at
each beam width).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

TARGETS = {"speedup": 5.0, "mfu": 0.25, "decode_vs_flashlight": 20.0}


def last_json(path: Path) -> dict:
    return json.loads(path.read_text().strip().splitlines()[-1])


def pytest_counts(path: Path) -> dict:
    text = path.read_text()
    return {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|error)", text)}


def training(out: Path, manifest: Path, epochs: int) -> dict:
    text = (out / "train.txt").read_text()
    hours = sum(json.loads(line)["duration"] for line in manifest.read_text().splitlines()) / 3600
    start, end = map(float, re.search(r"^start (\S+) end (\S+)$", text, re.M).groups())
    wer = re.search(r"best dev WER ([\d.]+)% after (\d+) epochs", text)
    return {"train_hours": round(hours, 3), "epochs": epochs, "seconds": round(end - start, 1),
            "audio_h_per_gpu_h": round(hours * epochs / ((end - start) / 3600), 1),
            "dev_wer": float(wer.group(1)) / 100 if wer else None}


def decoding(rows: list[dict]) -> list[dict]:
    """Per beam width: our beam search on the GPU (or CPU in smoke mode) against flashlight."""
    found = []
    for row in rows:
        if row["decoder"] != "beam" or row["beam"] is None:
            continue
        flashlight = next((r for r in rows
                           if r["decoder"] == "flashlight" and r["beam"] == row["beam"]), None)
        if flashlight and (row["device"] == "cuda" or not any(r["device"] == "cuda" for r in rows)):
            found.append({"beam": row["beam"], "device": row["device"], "utt_per_s": row["utt_per_s"],
                          "wer": row["wer"], "flashlight_utt_per_s": flashlight["utt_per_s"],
                          "flashlight_wer": flashlight["wer"],
                          "speedup": round(row["utt_per_s"] / flashlight["utt_per_s"], 2)})
    return found


def main() -> None:
    out, manifest, epochs = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    bench_train, bench_decode = last_json(out / "bench_train.txt"), last_json(out / "bench_decode.txt")
    summary = {"device": bench_train["device"], "pytest_gpu": pytest_counts(out / "pytest_gpu.txt"),
               "training": training(out, manifest, epochs), "bench_train": bench_train["configs"],
               "decoding": decoding(bench_decode["rows"]), "targets": TARGETS}
    headline = bench_train["configs"][next(iter(bench_train["configs"]))]
    mfu = headline["ours"]["mfu"]
    t = summary["training"]
    rows = [("pytest -m gpu", ", ".join(f"{n} {k}" for k, n in summary["pytest_gpu"].items()), "all pass"),
            ("synth run: audio h per GPU h, end to end",
             f"{t['audio_h_per_gpu_h']:,} ({t['train_hours']} h x {t['epochs']} epochs in "
             f"{t['seconds']} s)", ""),
            ("synth run: dev WER after its epochs",
             "-" if t["dev_wer"] is None else f"{100 * t['dev_wer']:.2f}%", "")]
    for label, config in bench_train["configs"].items():
        ours, ref = config["ours"], config["reference"]
        mfu_text = "-" if ours["mfu"] is None else f"{100 * ours['mfu']:.1f}%"
        rows += [(f"bench_train {label}: audio h per GPU h, ours / reference",
                  f"{ours['audio_h_per_gpu_h']:,} / {ref['audio_h_per_gpu_h']:,} = {config['speedup']}x",
                  ">= 5x" if label == next(iter(bench_train["configs"])) else ""),
                 (f"bench_train {label}: MFU, peak GiB", f"{mfu_text}, {ours['peak_mem_gib']}",
                  ">= 25%" if label == next(iter(bench_train["configs"])) else "")]
    for d in summary["decoding"]:
        rows.append((f"beam {d['beam']} with the LM ({d['device']}) vs flashlight (CPU), utt/s",
                     f"{d['utt_per_s']:,} vs {d['flashlight_utt_per_s']:,} = {d['speedup']}x "
                     f"(WER {100 * d['wer']:.2f}% vs {100 * d['flashlight_wer']:.2f}%)", ">= 20x"))
    summary["met"] = {
        "speedup": headline["speedup"] >= TARGETS["speedup"],
        "mfu": mfu is not None and mfu >= TARGETS["mfu"],
        "decode_vs_flashlight": bool(summary["decoding"]) and all(
            d["speedup"] >= TARGETS["decode_vs_flashlight"] for d in summary["decoding"]),
    }
    table = [f"GPU check on {summary['device']}", "", "| check | measured | target |", "|---|---|---|"]
    table += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    (out / "summary.md").write_text("\n".join(table) + "\n")
    (out / "summary.json").write_text(json.dumps(summary) + "\n")
    print("\n".join(table))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
