"""English systems side by side: our models (greedy, beam search with their LM) and PocketSphinx.

    python scripts/compare_english.py \\
        --models synth=recipes/synth/exp/best.pt english=recipes/english/exp/best.pt \\
        --sets synth-test=recipes/synth/data/test.jsonl librivox=data/librivox/test.jsonl \\
        --out-dir exp/compare [--no-pocketsphinx] [--device auto]

Every model is decoded by asr.benchmark.benchmark_rows, which decodes as `asr decode` does:
`--decoder greedy`, and `--decoder beam`, beam search with the LM and weights the model holds
(what `--decoder auto` picks once `asr tune-lm` saved them; "+LM" in the row's name when the
model has an LM). PocketSphinx (asr.pocketsphinx_baseline: its default US English acoustic
model, dictionary and trigram LM) decodes the same audio in the same run. Every system is
scored by asr.score with the same normaliser (--normalize, `asr score`'s default english);
unreadable audio counts as deletions. A model whose checkpoint is missing is skipped, said so.

Writes DIR/compare.md (one row per system, WER and CER % per set), DIR/compare.json and each
system's hypotheses, DIR/hyps/<system>/<set>.jsonl (for `asr score` and `asr compare`);
prints the table, then one JSON line, last on stdout: {"rows": [{"system", "set", "wer",
"cer" (fractions), "utts", "ref_words", "skipped", "rtfx", ...}], "sets", "models",
"skipped_models", "normalize", "device"}. Progress and skip messages go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

log = logging.getLogger("compare_english")
DECODERS = ["greedy", "beam"]


def parse_named(values: list[str], what: str, parts: int) -> dict[str, str]:
    """{name: path} from NAME=PATH items; a bare PATH is named after its last `parts` parts."""
    from asr.benchmark import _short_names

    pairs = [v.split("=", 1) if "=" in v else [None, v] for v in values]
    bare = [path for name, path in pairs if name is None]
    auto = iter(_short_names(bare, parts) if bare else [])
    named = [(next(auto) if name is None else name, path) for name, path in pairs]
    names = [name for name, _ in named]
    if len(set(names)) < len(names) or not all(names):
        raise ValueError(f"--{what}: names {' '.join(map(repr, names))} are empty or not distinct; "
                         "give each NAME=PATH a name of its own")
    return dict(named)


def pocketsphinx_rows(sets: dict[str, list[dict]], normalize, jobs: int = 1) -> list[dict]:
    """One benchmark-shaped row per set for PocketSphinx (`jobs` processes), hypotheses
    under "hyps"."""
    from asr.pocketsphinx_baseline import decode_manifest
    from asr.score import score

    rows = []
    for set_name, entries in sets.items():
        start = time.perf_counter()
        hyps = decode_manifest(entries, jobs)
        seconds = time.perf_counter() - start
        report = score({e["id"]: e["text"] for e in entries}, hyps, normalize)
        audio = sum(float(e["duration"]) for e in entries if e["id"] in hyps)
        skipped = [e["id"] for e in entries if e["id"] not in hyps]
        rows.append({"model": "pocketsphinx", "decoder": "en-us", "set": set_name,
                     "utts": report.n_utts, "skipped": len(skipped), "skipped_ids": skipped,
                     "ref_words": report.ref_words, "wer": report.wer, "cer": report.cer,
                     "audio_seconds": audio, "seconds": seconds, "rtfx": audio / seconds,
                     "device": "cpu", "hyps": hyps})
        log.info("pocketsphinx %s: WER %.2f%%", set_name, 100 * report.wer)
    return rows


def system_name(row: dict) -> str:
    return "pocketsphinx" if row["model"] == "pocketsphinx" else f"{row['model']} {row['decoder']}"


def format_table(rows: list[dict], set_names: list[str]) -> str:
    """Markdown: one line per system, WER % and CER % columns per set."""
    by_key = {(system_name(r), r["set"]): r for r in rows}
    systems = list(dict.fromkeys(system_name(r) for r in rows))
    lines = ["| system | " + " | ".join(f"{s} WER % | {s} CER %" for s in set_names) + " |",
             "|---|" + "--:|--:|" * len(set_names)]
    for system in systems:
        cells = []
        for s in set_names:
            r = by_key.get((system, s))
            cells += [f"{100 * r['wer']:.2f}", f"{100 * r['cer']:.2f}"] if r else ["-", "-"]
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="*", default=[], metavar="NAME=CKPT", help="checkpoints")
    p.add_argument("--sets", nargs="+", required=True, metavar="NAME=MANIFEST", help="JSONL manifests")
    p.add_argument("--out-dir", required=True, help="for compare.md, compare.json and hyps/")
    p.add_argument("--decoders", nargs="+", default=DECODERS, choices=["greedy", "beam", "auto"],
                   help="as `asr decode --decoder` (default: greedy beam)")
    p.add_argument("--pocketsphinx", action=argparse.BooleanOptionalAction, default=True,
                   help="also decode every set with PocketSphinx (default: yes)")
    p.add_argument("--normalize", default="english", choices=["none", "basic", "english"],
                   help="text normaliser for both sides, as `asr score --normalize` (default english)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--jobs", type=int, default=os.cpu_count(), help="pocketsphinx processes")
    p.add_argument("--beam-size", type=int, default=10)
    p.add_argument("--max-batch-seconds", type=float, default=300.0)
    args = p.parse_args(argv)

    import torch

    from asr.atomic import write_text
    from asr.benchmark import benchmark_rows
    from asr.data import read_manifest, write_jsonl
    from asr.inference import pick_device
    from asr.text import NORMALIZERS

    set_paths = parse_named(args.sets, "sets", 1)
    model_paths = parse_named(args.models, "models", 2)
    sets = {}
    for name, path in set_paths.items():
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: manifest not found; fix the path given to --sets "
                                    "or run the recipe's data stage first")
        sets[name] = read_manifest(path)
        if not sets[name]:
            raise ValueError(f"{path}: the manifest holds no utterances; pass a non-empty set")
    skipped_models = {}
    for name, path in list(model_paths.items()):
        if not Path(path).exists():
            skipped_models[name] = model_paths.pop(name)
            print(f"skipping model {name}: {path}: checkpoint not found; train it first or fix "
                  "the path given to --models", file=sys.stderr)
    if args.pocketsphinx:
        try:
            import pocketsphinx  # noqa: F401
        except ImportError:
            args.pocketsphinx = False
            print("skipping pocketsphinx: not installed; `pip install pocketsphinx` or pass "
                  "--no-pocketsphinx", file=sys.stderr)
    if not model_paths and not args.pocketsphinx:
        raise SystemExit("nothing to compare: no checkpoint found and pocketsphinx is off")

    normalize = NORMALIZERS[args.normalize]
    device = pick_device(args.device)
    rows = benchmark_rows(list(model_paths.values()), list(model_paths), sets, args.decoders, device,
                          args.beam_size, args.max_batch_seconds, normalize, keep_hyps=True)
    if args.pocketsphinx:
        rows += pocketsphinx_rows(sets, normalize, args.jobs)

    out = Path(args.out_dir)
    for row in rows:
        row["system"] = system_name(row)
        hyps = row.pop("hyps")
        row["hyps_file"] = str(out / "hyps" / row["system"].replace(" ", "-") / f"{row['set']}.jsonl")
        write_jsonl(row["hyps_file"], [{"id": uid, "text": text} for uid, text in hyps.items()])
    table = format_table(rows, list(sets))
    words = {r["set"]: (r["utts"], r["ref_words"]) for r in rows}
    note = ("\nWER and CER in %, scored by asr.score after the " + args.normalize + " normaliser; "
            "unreadable audio counts as deletions. Sets: "
            + "; ".join(f"{s} ({words[s][0]} utterances, {words[s][1]} words, {set_paths[s]})"
                        for s in sets if s in words) + ". Models: "
            + ("; ".join(f"{n} ({path})" for n, path in model_paths.items()) or "none")
            + (". Skipped (checkpoint missing): " + ", ".join(skipped_models) if skipped_models else "")
            + f". Beam size {args.beam_size} (\"beam+LM\": with the model's saved LM and weights; "
            f"\"beam\": the model saved no LM); device {device}.\n")
    summary = {"rows": rows, "sets": set_paths, "models": model_paths,
               "skipped_models": skipped_models, "normalize": args.normalize, "device": str(device),
               "decoders": args.decoders, "beam_size": args.beam_size, "torch": torch.__version__}
    write_text(out / "compare.md", table + note)
    write_text(out / "compare.json", json.dumps(summary, indent=1) + "\n")
    print(table + note)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="compare: %(message)s")
    try:
        main()
    except (ValueError, FileNotFoundError) as err:  # bad input: one line, no traceback
        sys.exit(f"compare: error: {err}")
