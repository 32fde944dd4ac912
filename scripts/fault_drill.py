#!/usr/bin/env python
"""Fault drill: every `asr` command against bad audio, text, manifests, models and LMs.

Each bad input is written as a real file under a work folder; a tiny model is trained on 30
espeak-ng utterances (`asr train --size tiny`, under a minute on one core); then the real CLI
runs on each case as a subprocess with a timeout, and the case is classified:

- handled: exit 0 with the right output, or a non-zero exit with one `asr: error:` line that
  names the file (and line, for text files) and no traceback; batch commands finish and name
  every bad item;
- crashed: a traceback, an unexpected exit status, a wrong output, or an unclear message;
- hung: the command ran past its timeout (its process group is killed);
- data_lost: a partial output left behind, or an earlier good output changed or removed.

Prints a table (case, expected, outcome, detail) and, last, one JSON line
{"tried", "handled", "crashed", "hung", "data_lost"}; exits 1 unless every case was handled.

    python scripts/fault_drill.py [--only PATTERN] [--keep DIR] [--list] [--timeout S]

The cases live in scripts/drill/ by what is bad (`audio`, `inputs`, `files`; training faults
in scripts/training_faults.py). A case is `Case(name, expected, run)` in `drill.core.CASES`:
`run(drill)` returns an Outcome. Add cases with `@case(name, expected)` or
`CASES.append(Case(...))`; `Drill` gives them the work folder, the model, speech and the `asr`
runner; `refused`, `accepted` and `Guard` judge the results.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import training_faults  # noqa: E402
from drill import audio, files, inputs  # noqa: E402,F401 (registers their cases, in this order)
from drill.core import CASES, TIMEOUT, Case, Drill, Outcome, crashed  # noqa: E402

# --- training faults (scripts/training_faults.py) --------------------------------------------

def _training_case(run: Callable[[Path], tuple[str, str]], drill: Drill) -> Outcome:
    return Outcome(*run(drill.folder("training-faults")))


for _name, _expected, _run in training_faults.CASES:
    CASES.append(Case(_name, _expected, partial(_training_case, _run)))


# --- running the drill ----------------------------------------------------------------------

def run_case(drill: Drill, item: Case) -> Outcome:
    """The case's outcome; an exception in the drill itself counts as a crash of the case."""
    try:
        return item.run(drill)
    except SystemExit:
        raise
    except Exception as err:  # noqa: BLE001 (reported in the table)
        return crashed(f"drill error: {type(err).__name__}: {err}"[:200])


def print_table(rows: list[tuple[Case, Outcome, float]]) -> None:
    width = max(len(c.name) for c, _, _ in rows)
    print(f"{'case':<{width}}  {'outcome':<9}  {'s':>5}  expected / detail")
    for item, outcome, seconds in rows:
        print(f"{item.name:<{width}}  {outcome.status:<9}  {seconds:5.1f}  {item.expected}")
        if outcome.detail:
            print(f"{'':<{width}}  {'':<9}  {'':>5}    -> {outcome.detail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", metavar="PATTERN", help="run the cases whose name matches this glob "
                        "(or contains it), e.g. 'audio/*' or lm/")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (the model and long "
                        "recordings made there are reused by the next run)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds per command")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args(argv)
    chosen = [c for c in CASES if not args.only or fnmatch.fnmatch(c.name, args.only) or args.only in c.name]
    if args.list:
        print("\n".join(f"{c.name}: {c.expected}" for c in chosen))
        return 0
    root = Path(args.keep or tempfile.mkdtemp(prefix="asr-fault-drill-")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    drill, rows = Drill(root, args.timeout), []
    try:
        for item in chosen:
            start = time.monotonic()
            outcome = run_case(drill, item)
            rows.append((item, outcome, time.monotonic() - start))
            print(f"[{len(rows)}/{len(chosen)}] {item.name}: {outcome.status}", file=sys.stderr, flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print_table(rows)
    counts = {s: sum(o.status == s for _, o, _ in rows) for s in ("handled", "crashed", "hung", "data_lost")}
    print(json.dumps({"tried": len(rows), **counts}))
    return 0 if counts["handled"] == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
