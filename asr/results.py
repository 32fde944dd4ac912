"""A recipe's final results: `exp/results.json` and a printed WER/CER table."""

from __future__ import annotations

import json
from pathlib import Path

from asr.atomic import write_text


def collect_results(exp_dir: str | Path, model: str | Path, sets: list[str]) -> dict:
    """Read `wer-summary-<set>.json` (from `asr score --json`) for each set into one dict."""
    exp_dir = Path(exp_dir)
    results: dict = {}
    for name in sets:
        path = exp_dir / f"wer-summary-{name}.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; run the recipe's scoring stage first")
        summary = json.loads(path.read_text())
        results[name] = {k: summary[k] for k in ("wer", "cer", "ref_words", "n_utts")}
    results["model"] = str(model)
    write_text(exp_dir / "results.json", json.dumps(results, indent=2) + "\n")
    return results


def format_table(results: dict, sets: list[str]) -> str:
    lines = ["| set | utterances | words | WER % | CER % |", "|---|---:|---:|---:|---:|"]
    for name in sets:
        r = results[name]
        lines.append(f"| {name} | {r['n_utts']} | {r['ref_words']} | "
                     f"{100 * r['wer']:.2f} | {100 * r['cer']:.2f} |")
    return "\n".join(lines)
