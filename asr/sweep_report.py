"""A sweep's results under its folder: results.md (the trials, parameter importances, the best
trial's `asr train` command), plots (optimisation history, parallel coordinates, slice) and
best.pt, a copy of the best trial's model."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

from asr.atomic import atomic_path, write_text

PLOTS = ("optimization_history", "parallel_coordinate", "slice")


def _value(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def trials_table(study) -> str:
    trials = study.get_trials(deepcopy=False)
    names = sorted({name for t in trials for name in t.params})
    rows = ["| trial | state | dev WER % | epochs | seconds | " + " | ".join(names) + " | note |",
            "|--:|---|--:|--:|--:|" + "--:|" * len(names) + "---|"]
    for t in trials:
        wer = t.value if t.value is not None else (t.intermediate_values or {}).get(
            max(t.intermediate_values or [0]), None)
        rows.append(" | ".join([
            f"| {t.number}", t.state.name.lower(), "" if wer is None else f"{100 * wer:.2f}",
            str(t.user_attrs.get("epochs", "")), str(t.user_attrs.get("seconds", "")),
            *(_value(t.params[n]) if n in t.params else "" for n in names),
            t.user_attrs.get("note", "")]) + " |")
    return "\n".join(rows)


def importances(study) -> str:
    import optuna

    try:
        found = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError) as err:  # too few finished trials
        return f"(not computed: {err})"
    return "\n".join(["| parameter | importance |", "|---|--:|"]
                     + [f"| {name} | {value:.3f} |" for name, value in found.items()])


def save_plots(study, exp_dir: Path) -> list[str]:
    """PNG plots of the finished trials; returns the file names written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from optuna.visualization import matplotlib as plots

    written = []
    for name in PLOTS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
            try:
                axes = getattr(plots, f"plot_{name}")(study, target_name="dev WER (fraction)")
            except ValueError:  # nothing finished yet
                continue
        figure = np.ravel(axes)[0].figure
        with atomic_path(exp_dir / f"{name}.png") as tmp:
            figure.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
        plt.close(figure)
        written.append(f"{name}.png")
    return written


def write_report(study, exp_dir: Path) -> Path:
    """results.md, the plots and best.pt; returns results.md's path."""
    from optuna.trial import TrialState

    states = [t.state for t in study.get_trials(deepcopy=False)]
    summary = ", ".join(f"{states.count(s)} {s.name.lower()}" for s in TrialState if s in states)
    lines = [f"# Sweep `{study.study_name}`: {len(states)} trials ({summary})"]
    if TrialState.COMPLETE in states:
        best = study.best_trial
        checkpoint = exp_dir / f"trial-{best.number}" / "best.pt"
        if checkpoint.is_file():
            with atomic_path(exp_dir / "best.pt") as tmp:
                shutil.copyfile(checkpoint, tmp)
        lines += [f"Best: trial {best.number}, dev WER {100 * best.value:.2f}%; its model is "
                  f"{exp_dir / 'best.pt'}, trained by", "", "```", best.user_attrs["command"], "```"]
    lines += ["", "## Trials", "", trials_table(study), "", "## Parameter importances", "",
              importances(study), "", "## Plots", ""]
    lines += [f"![{name}]({name})" for name in save_plots(study, exp_dir)]
    path = exp_dir / "results.md"
    write_text(path, "\n".join(lines) + "\n")
    return path
