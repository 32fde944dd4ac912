"""`asr prepare --report MANIFEST`: what a manifest holds and what training on it will meet.

Hours, utterances, speakers and a duration histogram (text, and a PNG); characters the
tokenizer cannot spell (after the training normaliser); utterances CTC cannot align (fewer
output frames at the model's subsampling than their tokens need); missing or unreadable audio
and durations that disagree with the file; the disk space training will take. Features are
computed inside the model on the fly, so they take none; checkpoints do.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np

from asr.audio import AudioError, audio_duration
from asr.config import ModelConfig
from asr.text import CharTokenizer, normalize

HOP_SECONDS = 0.01  # feature frames
BINS = [0, 1, 2, 5, 10, 15, 20, 30, 60, math.inf]  # duration histogram edges, seconds
LISTED = 10  # problem utterances named in the text report


def output_frames(seconds: float, config: ModelConfig) -> int:
    """Model output frames for `seconds` of audio (as CTCModel.output_lengths computes them)."""
    frames = int(round(seconds * config.sample_rate)) // int(HOP_SECONDS * config.sample_rate) + 1
    if config.subsampling == "stack":
        return frames // config.subsampling_factor
    for stride in {1: (1, 1), 2: (2, 1), 4: (2, 2)}[config.subsampling_factor]:
        frames = (frames - 1) // stride + 1
    return frames


def checkpoint_megabytes(config: ModelConfig) -> tuple[float, float]:
    """(model file, training checkpoint with Adam's two moments) sizes in MB, fp32."""
    from asr.model import CTCModel

    params = sum(p.numel() for p in CTCModel(config).parameters())
    return 4 * params / 1e6, 3 * 4 * params / 1e6


def manifest_report(manifest: str | Path, tokenizer: CharTokenizer | None = None,
                    config: ModelConfig | None = None, epochs: int = 10) -> dict:
    """Everything `asr prepare --report` prints, as a dict."""
    from asr.data import ctc_min_frames, read_manifest

    tokenizer = tokenizer or CharTokenizer()
    config = config or ModelConfig.from_size("small", len(tokenizer))
    rows = read_manifest(manifest)
    durations = np.array([r["duration"] for r in rows], dtype=float)
    oov, infeasible, missing, unreadable, mismatched = Counter(), [], [], [], []
    for row in rows:
        text = normalize(row["text"])
        oov.update(ch for ch in text if ch not in tokenizer.vocab)
        frames, needed = output_frames(row["duration"], config), ctc_min_frames(tokenizer.encode(text))
        if needed > frames:
            infeasible.append({"id": row["id"], "frames": frames, "needed": needed})
        path = Path(row["audio_filepath"])
        if not path.exists():
            missing.append(row["id"])
            continue
        try:
            seconds = audio_duration(path)
        except AudioError as err:
            unreadable.append({"id": row["id"], "error": str(err)})
            continue
        if seconds == 0:
            unreadable.append({"id": row["id"], "error": f"{path}: the file holds no samples"})
        elif abs(seconds - row["duration"]) > 0.05:
            mismatched.append({"id": row["id"], "manifest": row["duration"], "file": round(seconds, 3)})
    model_mb, checkpoint_mb = checkpoint_megabytes(config)
    counts, _ = np.histogram(durations, bins=BINS)
    return {
        "manifest": str(manifest), "utterances": len(rows), "hours": round(durations.sum() / 3600, 3),
        "speakers": len({r.get("speaker", "unknown") for r in rows}),
        "duration_seconds": {name: round(float(f(durations)) if len(rows) else 0.0, 3)
                             for name, f in (("min", np.min), ("median", np.median), ("max", np.max))},
        "histogram": [{"from": lo, "to": hi, "utterances": int(n)}
                      for lo, hi, n in zip(BINS, BINS[1:], counts)],
        "oov_characters": dict(oov.most_common()),
        "ctc_infeasible": infeasible, "missing": missing, "unreadable": unreadable,
        "duration_mismatch": mismatched,
        "model": {"subsampling": config.subsampling, "subsampling_factor": config.subsampling_factor,
                  "layers": config.num_layers, "hidden_size": config.hidden_size},
        "disk_mb": {"features": 0, "best_model": round(model_mb, 1),
                    "per_epoch_checkpoint": round(checkpoint_mb, 1),
                    "training": round(model_mb + epochs * checkpoint_mb, 1), "epochs": epochs},
    }


def format_report(report: dict) -> str:
    """The report as text: a summary, the histogram as bars, then each problem with examples."""
    d = report["duration_seconds"]
    lines = [f"{report['manifest']}: {report['utterances']} utterances, {report['hours']} h, "
             f"{report['speakers']} speakers; durations {d['min']}-{d['max']} s (median {d['median']})",
             "duration histogram:"]
    most = max((b["utterances"] for b in report["histogram"]), default=0) or 1
    for b in report["histogram"]:
        label = f"{b['from']:g}-{b['to']:g} s" if math.isfinite(b["to"]) else f">= {b['from']:g} s"
        lines.append(f"  {label:>9} {b['utterances']:7d} {'#' * round(40 * b['utterances'] / most)}")
    oov = report["oov_characters"]
    examples = ", ".join(f"{c!r} x{n}" for c, n in list(oov.items())[:LISTED])
    lines.append(f"characters outside the tokenizer: {len(oov)}" + (f" ({examples})" if oov else ""))
    m = report["model"]
    problems = [("utterances CTC cannot align at "
                 f"{m['subsampling']} x{m['subsampling_factor']} (too short for their tokens)",
                 [f"{u['id']} ({u['frames']} frames, {u['needed']} needed)"
                  for u in report["ctc_infeasible"]]),
                ("missing audio files", report["missing"]),
                ("unreadable audio files", [f"{u['id']} ({u['error']})" for u in report["unreadable"]]),
                ("durations that disagree with the file by > 50 ms",
                 [f"{u['id']} ({u['manifest']} vs {u['file']} s)" for u in report["duration_mismatch"]])]
    for title, items in problems:
        more = f", ... ({len(items) - LISTED} more)" if len(items) > LISTED else ""
        lines.append(f"{title}: {len(items)}" + (": " + ", ".join(items[:LISTED]) + more if items else ""))
    disk = report["disk_mb"]
    lines.append(f"disk: features 0 MB (computed in the model), best model {disk['best_model']} MB, "
                 f"{disk['per_epoch_checkpoint']} MB per epoch-N.pt: {disk['training']} MB for "
                 f"{disk['epochs']} epochs")
    return "\n".join(lines)


def plot_histogram(report: dict, path: str | Path) -> None:
    """The duration histogram as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from asr.atomic import atomic_path

    labels = [f"{b['from']:g}-{b['to']:g}" if math.isfinite(b["to"]) else f">{b['from']:g}"
              for b in report["histogram"]]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar(labels, [b["utterances"] for b in report["histogram"]])
    ax.set_xlabel("duration (s)")
    ax.set_ylabel("utterances")
    ax.set_title(f"{Path(report['manifest']).name}: {report['utterances']} utterances, {report['hours']} h")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
