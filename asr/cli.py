"""`asr <command>`: argument parsing only; the work lives in the library modules."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from asr.benchmark import add_parser as _add_benchmark
from asr.benchmark import run as _run_benchmark
from asr.config import SIZES, ModelConfig
from asr.export import add_parser as _add_export
from asr.export import run as _run_export
from asr.kaldi_data import add_parser as _add_export_data
from asr.kaldi_data import run as _run_export_data
from asr.sweep import add_parser as _add_sweep
from asr.sweep import run as _run_sweep


def _add_train(sub) -> None:
    from asr.train_options import add_train_options

    p = sub.add_parser("train", help="train a BiLSTM-CTC model on JSONL manifests",
                       description="Train on one device, or on many with "
                                   "`torchrun --nproc_per_node N -m asr.cli train ...`.")
    add_train_options(p)


def _run_train(args) -> int:
    from asr.train import train
    from asr.train_options import train_config

    result = train(train_config(args))
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"best dev WER {100 * result['best_wer']:.2f}% after {result['epochs']} epochs")
    return 0


def _add_decoder_options(p) -> None:
    from asr.decode import registry

    p.add_argument("--model", required=True,
                   help="a model folder from `asr export` (e.g. exp/model) or a checkpoint (exp/best.pt)")
    p.add_argument("--decoder", default="auto", choices=["auto", *registry.names()],
                   help="auto: beam with the model's tuned LM if `asr tune-lm` saved one, else greedy; "
                        + "; ".join(f"{n}: {spec.help}" for n, spec in registry.DECODERS.items()))
    for option in registry.all_options():
        users = [n for n, spec in registry.DECODERS.items() if option.name in spec.option_names]
        p.add_argument(option.flag, type=option.type,
                       help=f"{option.help}, for {', '.join(users)} (default: the model's, saved by "
                            f"`asr tune-lm`, else {'none' if option.default is None else option.default})")
    p.add_argument("--no-lm", action="store_true", help="ignore the LM saved with the model")
    p.add_argument("--device", default="auto")


def _load(args):
    from asr.checkpoint import load_checkpoint, model_from_state
    from asr.decode import build_decoder, registry
    from asr.decoding import decoder_settings
    from asr.inference import pick_device

    state = load_checkpoint(args.model)
    model, tokenizer = model_from_state(state, pick_device(args.device))
    given = {o.name: getattr(args, o.name) for o in registry.all_options()}
    name, options = decoder_settings(args.decoder, state, args.model, no_lm=args.no_lm, **given)
    decoder = build_decoder(name, tokenizer, **options)
    if options:
        print(f"decoding: {name}, " + ", ".join(f"{k} {v}" for k, v in options.items()), file=sys.stderr)
    return model, tokenizer, decoder


def _add_decode(sub) -> None:
    p = sub.add_parser("decode", help="decode a manifest to a hypotheses JSONL")
    _add_decoder_options(p)
    p.add_argument("--manifest", required=True)
    p.add_argument("--out", required=True, help='hypotheses JSONL: {"id", "text"} per line')
    p.add_argument("--max-batch-seconds", type=float, default=300.0)
    p.add_argument("--max-utterance-seconds", type=float,
                   help="longer files are skipped and named, their audio never read whole (default 600; "
                        "`asr transcribe` cuts long recordings at pauses)")
    p.add_argument("--timing-out", metavar="PATH",
                   help="also write the decode's speed here as JSON: audio and wall-clock seconds (audio "
                        "reading, features, model and search; not loading the model), RTFx, device, decoder")


def _run_decode(args) -> int:
    import time

    import torch

    from asr.atomic import write_text
    from asr.data import MAX_UTTERANCE_SECONDS, SpeechDataset, read_manifest, write_jsonl
    from asr.inference import decode_dataset, model_device

    model, tokenizer, decoder = _load(args)
    dataset = SpeechDataset(read_manifest(args.manifest), tokenizer, model.config.sample_rate,
                            args.manifest, args.max_utterance_seconds or MAX_UTTERANCE_SECONDS)
    device = model_device(model)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    hyps = decode_dataset(model, tokenizer, dataset, decoder, args.max_batch_seconds)
    sync()
    seconds = time.perf_counter() - start
    write_jsonl(args.out, [{"id": k, "text": v} for k, v in hyps.items()])
    skipped = len(dataset) - len(hyps)
    print(f"wrote {len(hyps)} hypotheses to {args.out}"
          + (f"; {skipped} unreadable files skipped (see the warnings)" if skipped else ""),
          file=sys.stderr)
    if args.timing_out:
        audio = sum(float(e["duration"]) for e in dataset.entries if e["id"] in hyps)
        where = (f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda"
                 else f"cpu, {torch.get_num_threads()} CPU threads")
        write_text(args.timing_out, json.dumps({
            "manifest": args.manifest, "utterances": len(hyps), "audio_seconds": round(audio, 3),
            "seconds": round(seconds, 4), "rtfx": audio / seconds if seconds else None, "device": where,
            "decoder": type(decoder).__name__ + (" + LM" if getattr(decoder, "lm", None) else ""),
            "model": args.model}) + "\n")
    return 0


def _add_scoring_inputs(p) -> None:
    p.add_argument("--normalize", choices=["none", "basic", "english"],
                   help="text normaliser for both sides (default: none when an input is a trn or Kaldi "
                        "text file, as sclite scores them; english, the training normaliser that spells "
                        "out numbers, when all are JSONL)")
    p.add_argument("--ref-format", choices=["jsonl", "kaldi", "trn"], help="default: detected")
    p.add_argument("--hyp-format", choices=["jsonl", "kaldi", "trn"], help="default: detected")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")


def _add_score(sub) -> None:
    p = sub.add_parser("score", help="WER/CER of hypotheses against references (sclite's alignment)")
    p.add_argument("ref", help="references: JSONL manifest, Kaldi text or sclite trn file")
    p.add_argument("hyp", help="hypotheses: JSONL, Kaldi text or trn file")
    _add_scoring_inputs(p)
    p.add_argument("--format", default="text", choices=["text", "json", "markdown"])
    p.add_argument("--json", action="store_const", const="json", dest="format",
                   help="the same as --format json")
    p.add_argument("--json-out", metavar="PATH", help="also write the JSON report to PATH")
    p.add_argument("--max-alignments", type=int, default=20,
                   help="per-utterance alignments shown in the text report")


def _score_files(ref: str, hyp: str, args):
    """Score `hyp` against `ref`. Without --normalize, first sets args.normalize from the formats
    of every input (compare's two hypotheses too, so that A and B are scored alike)."""
    from asr.score import score
    from asr.text import NORMALIZERS
    from asr.transcripts import default_normalization, read_speakers, read_transcripts, transcript_format

    if args.normalize is None:
        hyps = [getattr(args, name) for name in ("hyp", "hyp_a", "hyp_b") if hasattr(args, name)]
        args.normalize = default_normalization(transcript_format(ref, args.ref_format),
                                               *(transcript_format(h, args.hyp_format) for h in hyps))
    refs, hyps = read_transcripts(ref, args.ref_format), read_transcripts(hyp, args.hyp_format)
    try:
        return score(refs, hyps, NORMALIZERS[args.normalize], speakers=read_speakers(ref),
                     normalization=args.normalize, seed=args.seed)
    except ValueError as err:  # no reference words
        raise ValueError(f"{ref}: {err}") from None


def _run_score(args) -> int:
    from asr.atomic import write_text
    from asr.score import format_markdown, format_report

    report = _score_files(args.ref, args.hyp, args)
    if args.json_out:
        write_text(args.json_out, json.dumps(report.to_dict()) + "\n")
    if args.format == "json":
        print(json.dumps(report.to_dict()))
    elif args.format == "markdown":
        print(format_markdown(report))
    else:
        print(format_report(report, max_alignments=args.max_alignments))
    return 0


def _add_compare(sub) -> None:
    p = sub.add_parser("compare", help="is system A better than B? paired bootstrap and MAPSSWE")
    p.add_argument("--ref", required=True, help="references (JSONL, Kaldi text or trn)")
    p.add_argument("hyp_a", help="hypotheses of system A")
    p.add_argument("hyp_b", help="hypotheses of system B")
    _add_scoring_inputs(p)
    p.add_argument("--draws", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _run_compare(args) -> int:
    from asr.significance import mapsswe, paired_bootstrap

    a, b = (_score_files(args.ref, hyp, args) for hyp in (args.hyp_a, args.hyp_b))
    errors_a, words = a.per_utterance()
    errors_b, _ = b.per_utterance()
    result = {
        "a": {"hyp": args.hyp_a, "wer": a.wer, "wer_95ci": list(a.wer_interval), "missing": len(a.missing)},
        "b": {"hyp": args.hyp_b, "wer": b.wer, "wer_95ci": list(b.wer_interval), "missing": len(b.missing)},
        "utterances": a.n_utts, "ref_words": a.ref_words, "normalization": args.normalize,
        "paired_bootstrap": paired_bootstrap(errors_a, errors_b, words, args.draws, args.seed),
        "mapsswe": mapsswe([u.ops for u in a.utterances], [u.ops for u in b.utterances]),
    }
    if args.json:
        print(json.dumps(result))
        return 0
    boot, test = result["paired_bootstrap"], result["mapsswe"]
    for name, r in (("A", result["a"]), ("B", result["b"])):
        lo, hi = r["wer_95ci"]
        print(f"{name}: WER {100 * r['wer']:.2f}% (95% CI {100 * lo:.2f}-{100 * hi:.2f})  {r['hyp']}")
    lo, hi = boot["diff_95ci"]
    print(f"{a.n_utts} utterances, {a.ref_words} reference words, normalisation {args.normalize}")
    print(f"paired bootstrap ({boot['draws']} resamples, seed {boot['seed']}): P(A better) = "
          f"{boot['p_a_better']:.3f}, WER A - B 95% CI {100 * lo:+.2f} to {100 * hi:+.2f} points")
    print(f"MAPSSWE: {test['segments']} segments, mean errors A - B per segment {test['mean_diff']:+.3f}, "
          f"Z = {test['z']:.2f}, p = {test['p_value']:.4f} (two-sided)")
    return 0


def _add_transcribe(sub) -> None:
    from asr.transcription import TranscribeOptions
    from asr.writers import FORMATS

    default = TranscribeOptions()
    p = sub.add_parser("transcribe", help="transcribe audio files and folders into text, subtitles, "
                                          "word timings",
                       description="Inputs: audio files, folders (searched recursively), JSONL "
                                   "manifests, list files. With --output-dir, outputs and a ledger go "
                                   "there and a re-run resumes; `torchrun --nproc_per_node N -m asr.cli "
                                   "transcribe ...` shares the files among N processes.")
    _add_decoder_options(p)
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="audio file, folder, JSONL manifest, or list file (.txt/.lst/.scp)")
    p.add_argument("--output-dir", "-o", help="write each file's outputs and ledger.jsonl here "
                                              "(default: print the text)")
    p.add_argument("--format", "-f", default="all", help=f"output formats, comma-separated: "
                   f"{', '.join(FORMATS)} or all (default); without --output-dir: text or json")
    p.add_argument("--overwrite", action="store_true", help="redo files the ledger says are done")
    p.add_argument("--max-segment-seconds", type=float, default=default.max_segment_seconds,
                   help="long audio is split at pauses into pieces of at most this length")
    p.add_argument("--vad", default=default.vad, choices=["energy", "silero", "auto"],
                   help="pause finder: frame energy, Silero VAD (pip install 'asr[vad]'), or auto")
    p.add_argument("--batch-seconds", type=float, default=default.batch_seconds,
                   help="padded audio seconds per forward batch (default: 60 on CPU, 300 on GPU)")
    p.add_argument("--max-line-chars", type=int, default=42, help="subtitle line width")
    p.add_argument("--max-line-count", type=int, default=2, help="lines per subtitle cue")
    p.add_argument("--engine", default="torch", choices=["torch", "onnx"],
                   help="onnx: ONNX Runtime on the CPU (the folder's model.onnx from `asr export "
                        "--onnx`, else exported on the fly)")
    p.add_argument("--quantize", choices=["int8"], help="dynamic int8 LSTM and linear layers (CPU)")
    p.add_argument("--threads", type=int, help="CPU threads (default: all this process may use)")


def _run_transcribe(args) -> int:
    from asr.batch_transcribe import RunSummary, collect_inputs, results, transcribe_to_dir
    from asr.decode import registry
    from asr.distributed import init_distributed
    from asr.engines import default_threads
    from asr.transcription import load_recognizer

    dist = init_distributed("cpu" if args.engine == "onnx" or args.quantize else args.device)
    threads = args.threads or max(1, default_threads() // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    recognizer = load_recognizer(
        args.model, decoder=args.decoder, engine=args.engine, quantize=args.quantize,
        device=str(dist.device), threads=threads, no_lm=args.no_lm,
        **{o.name: getattr(args, o.name) for o in registry.all_options()})
    items = collect_inputs(args.inputs)
    options = {"max_segment_seconds": args.max_segment_seconds, "vad": args.vad,
               "batch_seconds": args.batch_seconds}
    if args.output_dir is None:
        if dist.enabled:
            raise ValueError("under torchrun the processes share the files: give --output-dir")
        return _print_transcripts(results(recognizer, items, options), len(items), args.format)
    formats = ["all"] if args.format == "all" else args.format.split(",")
    summary = transcribe_to_dir(
        recognizer, items, args.output_dir, formats, overwrite=args.overwrite,
        writer_options={"max_line_chars": args.max_line_chars, "max_line_count": args.max_line_count},
        transcribe_options=options, rank=dist.rank, world_size=dist.world_size, barrier=dist.barrier)
    total = RunSummary.combine(dist.gather(summary))
    dist.close()
    if dist.is_main:
        print(f"asr transcribe: {total.line(args.output_dir)}", file=sys.stderr)
    return 1 if total.failed else 0


def _print_transcripts(results, count: int, fmt: str) -> int:
    """Print each file's text (or JSON result) to stdout; errors to stderr; 1 if any failed."""
    failed = 0
    for item, result in results:
        if isinstance(result, str):
            failed += 1
            print(f"asr: error: {result}", file=sys.stderr)
        elif fmt == "json":
            print(json.dumps({"id": item.id, "audio_filepath": item.path, **result}, ensure_ascii=False),
                  flush=True)
        else:
            print(result["text"] if count == 1 else f"{item.id}: {result['text']}", flush=True)
    if failed:
        print(f"asr: {failed} of {count} files failed", file=sys.stderr)
    return 1 if failed else 0


def _add_prepare(sub) -> None:
    from asr import corpora

    p = sub.add_parser("prepare", help="prepare a corpus: manifests (and audio) under --out; or "
                                       "--report on a manifest",
                       description="`asr prepare NAME --help` lists the corpus's options. "
                                   "`asr prepare --report MANIFEST` checks a manifest before training.")
    p.add_argument("corpus", nargs="?", choices=corpora.names())
    p.add_argument("options", nargs=argparse.REMAINDER, help="--out DIR and the corpus's options")
    report = p.add_argument_group("report (instead of a corpus)")
    report.add_argument("--report", metavar="MANIFEST", help="hours, speakers, durations, characters "
                        "the tokenizer lacks, utterances CTC cannot align, bad files, disk needed")
    report.add_argument("--model", help="take the tokenizer and model shape from this model")
    report.add_argument("--size", default="small", choices=list(SIZES), help="else this model size")
    report.add_argument("--subsampling", default="stack", choices=["stack", "conv"])
    report.add_argument("--subsampling-factor", type=int, default=2)
    report.add_argument("--epochs", type=int, default=10, help="epochs of checkpoints to count")
    report.add_argument("--png", help="write the duration histogram here (default: beside the manifest)")
    report.add_argument("--json", action="store_true", help="print the report as JSON")


def _run_prepare(args) -> int:
    from asr import corpora

    if args.report:
        return _run_report(args)
    if args.corpus is None:
        raise ValueError("name a corpus (asr prepare NAME --out DIR) or give --report MANIFEST")
    options = vars(corpora.option_parser(args.corpus).parse_args(args.options))
    for split, path in corpora.prepare(args.corpus, options.pop("out"), **options).items():
        print(f"{split}: {path}")
    return 0


def _run_report(args) -> int:
    from pathlib import Path

    from asr.report import format_report, manifest_report, plot_histogram
    from asr.text import CharTokenizer
    from asr.tokenizers import tokenizer_from_dict

    if args.model:
        from asr.checkpoint import load_checkpoint

        state = load_checkpoint(args.model)
        tokenizer = tokenizer_from_dict(state["tokenizer"])
        config = ModelConfig.from_dict(state["config"])
    else:
        tokenizer = CharTokenizer()
        config = ModelConfig.from_size(args.size, len(tokenizer), subsampling=args.subsampling,
                                       subsampling_factor=args.subsampling_factor)
    report = manifest_report(args.report, tokenizer, config, args.epochs)
    png = Path(args.png or Path(args.report).with_suffix(".durations.png"))
    plot_histogram(report, png)
    print(json.dumps(report) if args.json else format_report(report) + f"\nhistogram: {png}")
    return 0


def _add_combine(sub) -> None:
    p = sub.add_parser("combine", help="combine JSONL manifests into one (audio paths relative to it)")
    p.add_argument("out", help="the manifest to write, e.g. data/train.jsonl")
    p.add_argument("inputs", nargs="+", help="the manifests to combine (ids must differ)")


def _run_combine(args) -> int:
    from asr.data import combine_manifests

    print(f"{args.out}: {combine_manifests(args.out, args.inputs)} utterances", file=sys.stderr)
    return 0


def _add_average(sub) -> None:
    p = sub.add_parser("average", help="average the weights of several checkpoints of one run")
    p.add_argument("checkpoints", nargs="+",
                   help="checkpoints (e.g. exp/epoch-{13..15}.pt), or an EXP_DIR: its last epochs")
    p.add_argument("--last", type=int, default=3, help="epoch-N.pt files taken from an EXP_DIR")
    p.add_argument("--out", required=True, help="the averaged model, e.g. exp/avg.pt")


def _run_average(args) -> int:
    from pathlib import Path

    from asr.checkpoint import average_checkpoints, save_atomic
    from asr.train import checkpoint_files

    paths = []
    for path in map(Path, args.checkpoints):
        paths += checkpoint_files(path, "epoch")[-args.last:] if path.is_dir() else [path]
    save_atomic(average_checkpoints(paths), args.out)
    print(f"averaged {', '.join(p.name for p in paths)} into {args.out}", file=sys.stderr)
    return 0


def _add_results(sub) -> None:
    p = sub.add_parser("results", help="collect a recipe's scores into EXP_DIR/results.json (and RESULTS.md)",
                       description="Reads EXP_DIR/wer-summary-<set>.json (asr score --json-out) and, when "
                                   "there, decode-time-<set>.json (asr decode --timing-out) for each set.")
    p.add_argument("exp_dir")
    p.add_argument("--model", required=True, help="the recipe's final model path")
    p.add_argument("--sets", nargs="+", default=["dev", "test"])
    p.add_argument("--markdown", nargs="?", const="", metavar="PATH",
                   help="also write RESULTS.md (default path EXP_DIR/RESULTS.md): the environment, then per "
                        "set sclite's table, the WER with its 95%% CI, and the RTFx")


def _run_results(args) -> int:
    from asr.results import collect_results, format_table, write_markdown

    print(format_table(collect_results(args.exp_dir, args.model, args.sets), args.sets))
    if args.markdown is not None:
        print(f"wrote {write_markdown(args.exp_dir, args.model, args.sets, args.markdown or None)}",
              file=sys.stderr)
    return 0


def _add_lm(sub) -> None:
    p = sub.add_parser("lm", help="word n-gram LMs: build an ARPA file, measure perplexity")
    lm = p.add_subparsers(dest="lm_command", required=True)
    b = lm.add_parser("build", help="estimate a modified Kneser-Ney n-gram LM, write ARPA",
                      description="TEXT holds one sentence per line; it is normalised like the "
                                  "training transcripts (asr.text.normalize).")
    b.add_argument("text", help="training text, one sentence per line ('-': stdin)")
    b.add_argument("--order", type=int, default=3)
    b.add_argument("--out", required=True, help="the ARPA file, e.g. exp/lm/3gram.arpa")
    b.add_argument("--prune", type=int, nargs="+", metavar="MIN_COUNT",
                   help="per order from 1-grams, the smallest (adjusted) count an n-gram needs to be "
                        "kept; 1-grams are never pruned, the last value repeats: 0 1 2")
    q = lm.add_parser("ppl", help="perplexity of an ARPA LM on text (</s> included, as kenlm)")
    q.add_argument("lm", help="ARPA file; its tensors are cached beside it in LM.pt")
    q.add_argument("text", help="one sentence per line ('-': stdin)")
    q.add_argument("--no-cache", dest="cache", action="store_false", help="neither read nor write LM.pt")
    q.add_argument("--json", action="store_true", help="print a JSON summary instead")


def _run_lm(args) -> int:
    from asr.lm import NgramLM, build_arpa
    from asr.textfiles import iter_lines

    text = sys.stdin if args.text == "-" else iter_lines(args.text)  # a bad line names file:line
    if args.lm_command == "build":
        build_arpa(text, args.order, args.out, args.prune, source=args.text)  # logs its summary
    else:
        r = NgramLM.from_arpa(args.lm, cache=args.cache).evaluate(text)
        print(json.dumps(r) if args.json else
              f"{r['sentences']} sentences, {r['words']} words, {r['oovs']} OOVs: "
              f"log10 {r['log10']:.2f}, perplexity {r['perplexity']:.2f}")
    return 0


def _add_tune_lm(sub) -> None:
    from asr.decode import registry

    with_oov = [n for n, spec in registry.DECODERS.items() if "oov_penalty" in spec.option_names]
    p = sub.add_parser("tune-lm", help="search the LM weight and word bonus on a dev set; "
                                       "the best are saved in the model and used by default")
    p.add_argument("--model", required=True, help="checkpoint; rewritten with the tuned weights")
    p.add_argument("--manifest", required=True, help="dev manifest (never the test set)")
    p.add_argument("--lm", required=True, help="word n-gram LM (ARPA)")
    p.add_argument("--decoder", default="beam", choices=registry.names(uses_lm=True))
    p.add_argument("--beam-size", type=int, default=registry.BEAM_SIZE.default)
    p.add_argument("--alphas", type=float, nargs="+", help="LM weights to try")
    p.add_argument("--betas", type=float, nargs="+", help="word bonuses to try")
    p.add_argument("--oov-penalties", type=float, nargs="+",
                   help="penalties for a word outside the LM's vocabulary to try "
                        f"({', '.join(with_oov)} only)")
    p.add_argument("--no-save", dest="save", action="store_false", help="only print the table")
    p.add_argument("--device", default="auto")


def _run_tune_lm(args) -> int:
    from asr.checkpoint import load_model
    from asr.data import SpeechDataset, read_manifest
    from asr.decoding import save_lm_weights
    from asr.inference import compute_log_probs, pick_device
    from asr.tune import reweighted, tune_lm, weight_grid, weight_values

    model, tokenizer = load_model(args.model, pick_device(args.device))
    dataset = SpeechDataset(read_manifest(args.manifest), tokenizer, model.config.sample_rate,
                            args.manifest)
    decoder_for = reweighted(args.decoder, tokenizer, beam_size=args.beam_size, lm=args.lm)
    log_probs = compute_log_probs(model, dataset)  # the acoustic model runs once
    refs = {e["id"]: e["text"] for e in dataset.entries}
    values = weight_values(args.decoder, alpha=args.alphas, beta=args.betas,
                           oov_penalty=args.oov_penalties)
    rows = tune_lm(log_probs, refs, tokenizer, decoder_for, weight_grid(**values))
    names = list(values)
    print("| " + " | ".join(names) + " | WER % | CER % |\n" + "|---:" * (len(names) + 2) + "|")
    for row in rows:
        print("| " + " | ".join(f"{row[k]:g}" for k in names) +
              f" | {100 * row['wer']:.2f} | {100 * row['cer']:.2f} |")
    best = {k: rows[0][k] for k in names}
    if args.save:
        save_lm_weights(args.model, args.decoder, args.lm,
                        {**best, "beam_size": args.beam_size, "tuned_on": args.manifest})
        print(f"saved {', '.join(f'{k} {v:g}' for k, v in best.items())} and the LM in {args.model}",
              file=sys.stderr)
    return 0


COMMANDS = {
    "train": (_add_train, _run_train),
    "decode": (_add_decode, _run_decode),
    "score": (_add_score, _run_score),
    "compare": (_add_compare, _run_compare),
    "benchmark": (_add_benchmark, _run_benchmark),
    "transcribe": (_add_transcribe, _run_transcribe),
    "average": (_add_average, _run_average),
    "prepare": (_add_prepare, _run_prepare),
    "combine": (_add_combine, _run_combine),
    "results": (_add_results, _run_results),
    "lm": (_add_lm, _run_lm),
    "tune-lm": (_add_tune_lm, _run_tune_lm),
    "export": (_add_export, _run_export),
    "export-data": (_add_export_data, _run_export_data),
    "sweep": (_add_sweep, _run_sweep),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="asr", description="BiLSTM-CTC speech recognition")
    sub = parser.add_subparsers(dest="command", required=True)
    for add, _ in COMMANDS.values():
        add(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return COMMANDS[args.command][1](args)
    except (ValueError, OSError) as err:  # user-caused: bad path, manifest, audio; a full disk
        print(f"asr: error: {_one_line(err)}", file=sys.stderr)
        return 2


def _one_line(err: Exception) -> str:
    """The error as one line; an OSError of the system's as "PATH: what went wrong"."""
    if isinstance(err, OSError) and err.strerror and (err.filename or err.filename2):
        return (f"{err.filename2 or err.filename}: {err.strerror}; check the path, its permissions "
                "and the free space")
    return "; ".join(line.strip() for line in str(err).splitlines() if line.strip())


if __name__ == "__main__":
    sys.exit(main())
