"""A recipe's final results: `exp/results.json`, a printed WER/CER table and `exp/RESULTS.md`.

The stages agree on these file names in EXP_DIR, per scored set (a set name plus the recipe's
tag, e.g. `dev-clean` or `dev-greedy`):

    wer-summary-<set>.json   `asr score --json-out`: counts, WER and its 95% CI, CER
    decode-time-<set>.json   `asr decode --timing-out`: audio and wall-clock seconds, device (RTFx)

RESULTS.md holds the environment (date, git commit, torch, CPU, GPU), a summary table, then per
set sclite's table (`Snt Wrd` counts, then `Corr Sub Del Ins Err S.Err` in % of the reference
words, S.Err in % of the sentences), the WER with its 95% bootstrap interval and the RTFx.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
from pathlib import Path

from asr.atomic import write_text

SUMMARY = "wer-summary-{}.json"
TIMING = "decode-time-{}.json"
RESULTS_JSON = "results.json"
RESULTS_MD = "RESULTS.md"


def _summary(exp_dir: Path, name: str) -> dict:
    path = exp_dir / SUMMARY.format(name)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; run the recipe's scoring stage first")
    return json.loads(path.read_text())


def _timing(exp_dir: Path, name: str) -> dict | None:
    path = exp_dir / TIMING.format(name)
    return json.loads(path.read_text()) if path.is_file() else None


def collect_results(exp_dir: str | Path, model: str | Path, sets: list[str]) -> dict:
    """Read each set's `wer-summary-<set>.json` (and `decode-time-<set>.json`, when there) into one
    dict, written to EXP_DIR/results.json: {set: {wer, cer, ref_words, n_utts, wer_95ci, rtfx}}."""
    exp_dir = Path(exp_dir)
    results: dict = {}
    for name in sets:
        summary, timing = _summary(exp_dir, name), _timing(exp_dir, name)
        results[name] = {k: summary[k] for k in ("wer", "cer", "ref_words", "n_utts")}
        results[name]["wer_95ci"] = summary.get("wer_95ci")
        results[name]["rtfx"] = timing["rtfx"] if timing else None
    results["model"] = str(model)
    write_text(exp_dir / RESULTS_JSON, json.dumps(results, indent=2) + "\n")
    return results


def markdown_table(header: list[str], rows: list[list], align: str = "") -> str:
    """A markdown table; `align` has one letter per column, l or r (default: l, then r)."""
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---" if a == "l" else "--:" for a in align]
    return "\n".join("| " + " | ".join(map(str, row)) + " |" for row in [header, rule, *rows])


def format_table(results: dict, sets: list[str]) -> str:
    rows = [[name, results[name]["n_utts"], results[name]["ref_words"], f"{100 * results[name]['wer']:.2f}",
             f"{100 * results[name]['cer']:.2f}"] for name in sets]
    return markdown_table(["set", "utterances", "words", "WER %", "CER %"], rows)


def _run(command: list[str], cwd: Path) -> str:
    try:
        out = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _cpu() -> str:
    model = ""
    if Path("/proc/cpuinfo").is_file():
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        model = names[0] if names else ""
    model = model or platform.processor() or platform.machine()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}, {os.cpu_count()} cores ({usable} usable by this process)"


def _gpus() -> str:
    import torch

    if not torch.cuda.is_available():
        return "none"
    return ", ".join(f"{torch.cuda.get_device_name(i)} "
                     f"({torch.cuda.get_device_properties(i).total_memory / 2**30:.0f} GiB)"
                     for i in range(torch.cuda.device_count()))


def environment() -> dict[str, str]:
    """Where the results were made: date, the asr source's git commit, versions, CPU and GPUs."""
    source = Path(__file__).resolve().parent
    commit = _run(["git", "rev-parse", "HEAD"], source)
    if commit and _run(["git", "status", "--porcelain", "--untracked-files=no"], source):
        commit += " (with uncommitted changes)"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "git commit": commit or "unknown (not a git checkout)",
        "python": platform.python_version(),
        "torch": importlib.metadata.version("torch"),
        "CPU": _cpu(),
        "GPU": _gpus(),
    }


def _pct(count: int, total: int) -> str:
    return f"{100 * count / total:.1f}" if total else "-"


def _set_section(name: str, summary: dict, timing: dict | None) -> list[str]:
    s, words = summary, summary["ref_words"]
    errors = s["substitutions"] + s["deletions"] + s["insertions"]
    table = markdown_table(
        ["Snt", "Wrd", "Corr", "Sub", "Del", "Ins", "Err", "S.Err"],
        [[s["n_utts"], words, *(_pct(c, words) for c in (s["hits"], s["substitutions"], s["deletions"],
                                                         s["insertions"], errors)),
          _pct(s["sentence_errors"], s["n_utts"])]], "r" * 8)
    lo, hi = s["wer_95ci"]
    lines = [f"## {name}", "", table, "",
             f"WER {100 * s['wer']:.2f}% (95% CI {100 * lo:.2f}-{100 * hi:.2f}, bootstrap over utterances), "
             f"CER {100 * s['cer']:.2f}%, normalisation {s.get('normalization', '?')}."]
    if timing:
        lines.append(f"RTFx {timing['rtfx']:.1f}: {timing['audio_seconds']:.1f} s of audio decoded in "
                     f"{timing['seconds']:.2f} s on {timing['device']} ({timing['decoder']}).")
    else:
        lines.append(f"RTFx: not measured (no {TIMING.format(name)}; `asr decode --timing-out` writes it).")
    return lines + [""]


def format_markdown(exp_dir: str | Path, model: str | Path, sets: list[str],
                    env: dict[str, str] | None = None) -> str:
    """RESULTS.md (see the module docstring) from EXP_DIR's score and timing files."""
    exp_dir = Path(exp_dir)
    data = {name: (_summary(exp_dir, name), _timing(exp_dir, name)) for name in sets}
    env = environment() if env is None else env
    summary = [[name, f"{100 * s['wer']:.2f}", f"{100 * s['wer_95ci'][0]:.2f}-{100 * s['wer_95ci'][1]:.2f}",
                f"{100 * s['cer']:.2f}", f"{t['rtfx']:.1f}" if t else "-"] for name, (s, t) in data.items()]
    lines = [f"# Results: {exp_dir.resolve().parent.name}", "",
             f"Model `{model}`, scored by `asr score` (sclite's alignment and percentages).", "",
             "## Environment", "", markdown_table(["", ""], [[k, v] for k, v in env.items()], "ll"), "",
             "## Summary", "", markdown_table(["set", "WER %", "95% CI", "CER %", "RTFx"], summary), ""]
    for name, (s, t) in data.items():
        lines += _set_section(name, s, t)
    return "\n".join(lines)


def write_markdown(exp_dir: str | Path, model: str | Path, sets: list[str],
                   path: str | Path | None = None) -> Path:
    """Write RESULTS.md (default EXP_DIR/RESULTS.md); returns its path."""
    path = Path(path) if path else Path(exp_dir) / RESULTS_MD
    write_text(path, format_markdown(exp_dir, model, sets))
    return path
