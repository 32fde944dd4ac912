"""`asr benchmark`: WER, CER and speed of models x decoders x test sets, in one table.

Each (model, decoder, set) is decoded as `asr decode` decodes it (audio reading, features,
acoustic model and search, in `asr.inference.decode_dataset`) after an untimed warm-up on
the set's first utterances, and scored as `asr score` scores it. RTFx is the audio seconds
decoded divided by the wall-clock seconds that took. Writes benchmark.md, benchmark.json and
benchmark.png (WER against RTFx) into --out-dir.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from asr.atomic import atomic_path, write_text
from asr.decode import registry

if TYPE_CHECKING:  # torch is imported only when the command runs: the CLI starts fast
    import torch

log = logging.getLogger(__name__)
WARMUP_UTTS = 8


def add_parser(sub) -> None:
    """Add the `benchmark` command to an argparse subparsers object."""
    p = sub.add_parser("benchmark", help="WER/CER and RTFx of models x decoders x sets, in one table")
    p.add_argument("--models", nargs="+", required=True, metavar="CKPT", help="checkpoints")
    p.add_argument("--sets", nargs="+", required=True, metavar="MANIFEST", help="JSONL manifests")
    p.add_argument("--decoders", nargs="+", default=["auto"], choices=["auto", *registry.names()],
                   metavar="DECODER", help=f"{', '.join(registry.names())} or auto (as `asr decode`: "
                                           "beam with the model's tuned LM if `asr tune-lm` saved one, "
                                           "else greedy)")
    p.add_argument("--out-dir", required=True, help="for benchmark.md, .json and .png")
    p.add_argument("--names", nargs="+", metavar="NAME",
                   help="model names, one per model (default: folder/stem of the checkpoint)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--beam-size", type=int, default=registry.BEAM_SIZE.default)
    p.add_argument("--max-batch-seconds", type=float, default=300.0)


def _short_names(paths: list[str], parts: int) -> list[str]:
    """The last `parts` components of each path, without suffix; more where names collide."""
    full = [Path(p).resolve().with_suffix("") for p in paths]
    for n in range(parts, max(len(p.parts) for p in full) + 1):
        names = ["/".join(p.parts[-n:]) for p in full]
        if len(set(names)) == len(names):
            return names
    raise ValueError(f"a file is given twice in {' '.join(paths)}; give each once")


def _decoders(state: dict, checkpoint: str, names: list[str], tokenizer, beam_size: int) -> dict:
    """{label: decoder}: each of `names` built as `asr decode --decoder NAME --beam-size
    BEAM_SIZE` builds it (asr.decoding.decoder_settings), labelled with "+LM" when it uses the
    model's saved LM."""
    from asr.decoding import decoder_settings

    out = {}
    for name, options in (decoder_settings(n, state, checkpoint, beam_size=beam_size) for n in names):
        label = f"{name}+LM" if options.get("lm") else name
        if label not in out:
            out[label] = registry.build_decoder(name, tokenizer, **options)
    return out


def _timed_decode(model, tokenizer, dataset, decoder, max_batch_seconds, device):
    """decode_dataset's {id: text} and its wall-clock seconds (CUDA work included)."""
    import torch

    from asr.inference import decode_dataset

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    hyps = decode_dataset(model, tokenizer, dataset, decoder, max_batch_seconds)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return hyps, time.perf_counter() - start


def benchmark_rows(models: list[str], names: list[str], sets: dict[str, list[dict]],
                   decoders: list[str], device: torch.device, beam_size: int = 10,
                   max_batch_seconds: float = 300.0, normalize: Callable[[str], str] | None = None,
                   keep_hyps: bool = False) -> list[dict]:
    """One row per (model, decoder, set); `sets` maps names to read manifests. Scored with
    `normalize` (default asr.text.normalize, `asr score`'s default); with `keep_hyps` each
    row also holds its hypotheses, {id: text}, under "hyps"."""
    from asr.checkpoint import load_checkpoint, model_from_state
    from asr.data import SpeechDataset
    from asr.score import score
    from asr.text import normalize as english

    normalize = normalize or english

    rows = []
    for path, model_name in zip(models, names):
        state = load_checkpoint(path)
        model, tokenizer = model_from_state(state, device)
        params = sum(p.numel() for p in model.parameters())
        rate = model.config.sample_rate
        data = {s: (SpeechDataset(entries, tokenizer, rate, s),
                    SpeechDataset(entries[:WARMUP_UTTS], tokenizer, rate, s))
                for s, entries in sets.items()}
        for label, decoder in _decoders(state, path, decoders, tokenizer, beam_size).items():
            for set_name, (dataset, warmup) in data.items():
                _timed_decode(model, tokenizer, warmup, decoder, max_batch_seconds, device)
                hyps, seconds = _timed_decode(model, tokenizer, dataset, decoder,
                                              max_batch_seconds, device)
                report = score({e["id"]: e["text"] for e in dataset.entries}, hyps, normalize)
                audio = sum(float(e["duration"]) for e in dataset.entries if e["id"] in hyps)
                rows.append({
                    "model": model_name, "decoder": label, "set": set_name, "utts": report.n_utts,
                    "skipped": len(dataset) - len(hyps),
                    "skipped_ids": [e["id"] for e in dataset.entries if e["id"] not in hyps],
                    "ref_words": report.ref_words, "wer": report.wer, "cer": report.cer,
                    "audio_seconds": audio, "seconds": seconds, "rtfx": audio / seconds,
                    "params": params, "device": str(device), "checkpoint": str(path)})
                if keep_hyps:
                    rows[-1]["hyps"] = hyps
                log.info("%s %s %s: WER %.2f%%, RTFx %.1f", model_name, label, set_name,
                         100 * report.wer, audio / seconds)
    return rows


def _format_table(rows: list[dict]) -> str:
    """The rows as a markdown table (rates in %)."""
    lines = ["| model | decoder | set | utts | skipped | WER % | CER % | RTFx | params | device |",
             "|---|---|---|--:|--:|--:|--:|--:|--:|---|"]
    lines += [f"| {r['model']} | {r['decoder']} | {r['set']} | {r['utts']} | {r['skipped']} | "
              f"{100 * r['wer']:.2f} | {100 * r['cer']:.2f} | {r['rtfx']:.1f} | "
              f"{r['params'] / 1e6:.2f} M | {r['device']} |" for r in rows]
    return "\n".join(lines) + "\n"


def _plot(rows: list[dict], path: str | Path) -> None:
    """WER % against RTFx (log scale): colour by set, marker by model and decoder."""
    from matplotlib.figure import Figure  # Agg, without pyplot's global state
    from matplotlib.lines import Line2D
    from matplotlib.ticker import StrMethodFormatter

    sets = list(dict.fromkeys(r["set"] for r in rows))
    systems = list(dict.fromkeys(f"{r['model']} {r['decoder']}" for r in rows))
    colour = {s: f"C{i % 10}" for i, s in enumerate(sets)}
    marker = {s: "osD^vP*X<>"[i % 10] for i, s in enumerate(systems)}
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for r in rows:
        if r["rtfx"] > 0:
            ax.scatter(r["rtfx"], 100 * r["wer"], s=60, color=colour[r["set"]],
                       marker=marker[f"{r['model']} {r['decoder']}"])
    ax.set(xscale="log", ylim=(0, None), xlabel="RTFx (audio seconds per wall-clock second, log scale)",
           ylabel="WER %", title="WER against decoding speed")
    ax.grid(True, which="both", alpha=0.3)
    speeds = [r["rtfx"] for r in rows if r["rtfx"] > 0]
    ax.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))  # 100, not 10^2
    if speeds and max(speeds) < 10 * min(speeds):  # under a decade: label the minor ticks too
        ax.xaxis.set_minor_formatter(StrMethodFormatter("{x:g}"))
    ax.legend(handles=[Line2D([], [], ls="", marker="o", color=colour[s], label=f"set {s}") for s in sets]
              + [Line2D([], [], ls="", marker=marker[s], color="gray", label=s) for s in systems],
              fontsize="small")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)


def run(args) -> int:
    """Check the inputs, benchmark, write benchmark.md/.json/.png and print the table."""
    import torch

    from asr.data import read_manifest
    from asr.inference import pick_device

    for path in args.models:
        if not Path(path).exists():
            raise FileNotFoundError(f"{path}: model not found; fix the path given to --models "
                                    "(e.g. recipes/digits/exp/model) or train the model first")
    for path in args.sets:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: manifest not found; fix the path given to --sets "
                                    "or run the recipe's data stage first")
    if args.names and (len(args.names) != len(args.models) or len(set(args.names)) < len(args.names)):
        raise ValueError(f"--names gives {len(args.names)} names for {len(args.models)} models; "
                         "give one distinct name per model, in the same order")
    sets = {}
    for name, path in zip(_short_names(args.sets, 1), args.sets):
        sets[name] = read_manifest(path)
        if not sets[name]:
            raise ValueError(f"{path}: the manifest holds no utterances; pass a non-empty set")
    names = args.names or _short_names(args.models, 2)
    device = pick_device(args.device)
    rows = benchmark_rows(args.models, names, sets, args.decoders, device, args.beam_size,
                          args.max_batch_seconds)

    settings = {"device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
                "decoders": args.decoders, "beam_size": args.beam_size,
                "max_batch_seconds": args.max_batch_seconds, "warmup_utts": WARMUP_UTTS,
                "models": dict(zip(names, args.models)), "sets": dict(zip(sets, args.sets))}
    table = _format_table(rows)
    note = (f"\nDevice {device}, torch threads {settings['threads']}, beam {args.beam_size}. RTFx: audio "
            "seconds / wall-clock seconds of decoding (audio reading, features, model, search), "
            f"after a warm-up on {WARMUP_UTTS} utterances. WER/CER as `asr score`; skipped "
            "(unreadable) utterances count as deletions.\n")
    out = Path(args.out_dir)
    write_text(out / "benchmark.md", table + note)
    write_text(out / "benchmark.json", json.dumps({"settings": settings, "rows": rows}, indent=1) + "\n")
    _plot(rows, out / "benchmark.png")
    print(table, end="")
    return 0
