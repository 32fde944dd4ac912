"""Decoding accuracy and speed on the same log-probs: our decoders (the registry's; beam on CPU and
GPU) and pyctcdecode.

    python scripts/bench_decode.py        # recipes/synth: its model, test set and tuned LM
    python scripts/bench_decode.py --model recipes/digits/exp/best.pt \\
        --manifest recipes/digits/data/test.jsonl --lm digits.arpa --threads 2 --passes 3

The model runs once (asr.inference.compute_log_probs, on the GPU when there is one); the log-probs
are repeated to at least --min-utterances (ids get a "~rN" suffix) and every decoder decodes these
same tensors at each --beams width. Our decoders are the ones asr.decode.registry names, built
with asr.decode.build_decoder: greedy (best path, once, beam null); beam (BeamSearchDecoder with
the LM; also on the GPU with --device auto/cuda when there is one); flashlight
(FlashlightDecoder: lexicon = the LM's words, all tokens, beam_threshold 50). pyctcdecode:
build_ctcdecoder with kenlm, decode() per utterance with its default pruning: token_min_logp -5,
beam_prune_logp -10, history pruning; unk_score_offset = our oov_penalty.

One alpha, beta and OOV penalty for all LM decoders (default: the beam weights `asr tune-lm`
saved in the model, else the registry's defaults), on the same scale, alpha * ln P_LM + beta per word:
beam works in natural logs; pyctcdecode's LanguageModel.score is alpha * log10 P *
LOG_BASE_CHANGE_FACTOR + beta with LOG_BASE_CHANGE_FACTOR = 1 / log10(e) = ln 10 (its
language_model.py and constants.py, 0.5.0); flashlight's lexicon search outputs no OOV words.
FlashlightDecoder hands flashlight lm_weight = alpha * ln 10 for KenLM's log10 scores.

Fair threads: the CPU decoders all run in the same --threads spawned worker processes, each
single-threaded (torch.set_num_threads(1), OMP_NUM_THREADS=1) with a fixed share of the utterances
(sorted by length, dealt round-robin). A worker builds its decoder (reads the LM) and decodes a few
utterances untimed, then all start together at a barrier; utt/s = utterances / the slowest
worker's decode time (the fastest of --passes such passes). Our decoders decode
length-sorted batches of --batch-size (asr.inference.decode_log_probs), pyctcdecode one utterance
at a time; beam on the GPU runs in this process, batches of --gpu-batch-size.

WER: asr.score.score with asr.text.normalize. Prints a table, then one JSON line, last on stdout:
{"rows": [{"decoder", "device", "beam", "wer" (a fraction), "utt_per_s"}, ...], "utterances",
"lm", "alpha", "beta", "oov_penalty", "threads", ...}. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import math
import multiprocessing as mp
import os
import sys
import time
import traceback

import numpy as np
import torch

from asr.checkpoint import load_checkpoint, model_from_state
from asr.data import SpeechDataset, read_manifest
from asr.decode import build_decoder, get_spec, names
from asr.decode.registry import OOV_PENALTY, resolve_options
from asr.decoding import saved_lm
from asr.inference import compute_log_probs, decode_log_probs
from asr.score import score
from asr.text import CharTokenizer, normalize
from asr.tokenizers import tokenizer_from_dict

log = logging.getLogger("bench_decode")

DECODERS = [*names(), "pyctcdecode"]
LM_DECODERS = {*names(uses_lm=True), "pyctcdecode"}
PACKAGES = {"flashlight": "flashlight", "pyctcdecode": "pyctcdecode"}  # decoder -> module to import
WARMUP_UTTERANCES = 8  # decoded untimed by each worker (the longest of its share) before the barrier


def repeat_log_probs(log_probs: dict[str, torch.Tensor], refs: dict[str, str],
                     min_utterances: int) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The set repeated until it has at least `min_utterances`; repeat r > 0 gets ids "ID~rR"."""
    repeats = max(1, math.ceil(min_utterances / len(log_probs)))
    out_lp, out_refs = {}, {}
    for r in range(repeats):
        for utt_id, lp in log_probs.items():
            key = utt_id if r == 0 else f"{utt_id}~r{r}"
            out_lp[key], out_refs[key] = lp, refs[utt_id]
    return out_lp, out_refs


def split_shares(log_probs: dict[str, torch.Tensor], n: int) -> list[list[str]]:
    """`n` shares of the ids: sorted by length and dealt round-robin (equal length mixes)."""
    ids = sorted(log_probs, key=lambda i: len(log_probs[i]))
    return [ids[k::n] for k in range(n)]


def pack(log_probs: dict[str, torch.Tensor], ids: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """One share as (ids, lengths (N,), frames concatenated (sum T, V) float32): cheap to send
    to a spawned process (a dict of tensors would go through one shared-memory file each)."""
    lengths = np.array([len(log_probs[i]) for i in ids], dtype=np.int64)
    frames = torch.cat([log_probs[i] for i in ids]).numpy()
    return ids, lengths, frames


def unpack(ids: list[str], lengths: np.ndarray, frames: np.ndarray) -> dict[str, torch.Tensor]:
    chunks = torch.from_numpy(frames).split(lengths.tolist())
    return dict(zip(ids, chunks, strict=True))


def build(spec: dict, tokenizer: CharTokenizer):
    """A function {id: log-probs (T, V)} -> {id: text} for the decoder `spec` names."""
    name, beam, batch_size = spec["decoder"], spec["beam"], spec["batch_size"]
    if name in names():
        decoder = our_decoder(spec, tokenizer)
        return lambda share: decode_log_probs(share, decoder, tokenizer, batch_size)
    if name == "pyctcdecode":
        from pyctcdecode import build_ctcdecoder

        labels = ["" if i == tokenizer.blank_id else t for i, t in enumerate(tokenizer.vocab)]
        decoder = build_ctcdecoder(labels, kenlm_model_path=spec["lm"], alpha=spec["alpha"],
                                   beta=spec["beta"], unk_score_offset=spec["oov_penalty"])
        return lambda share: {i: decoder.decode(lp.numpy(), beam_width=beam) for i, lp in share.items()}
    raise ValueError(f"unknown decoder {name!r}")


def our_decoder(spec: dict, tokenizer: CharTokenizer):
    """The registry's decoder `spec` names, with the spec's settings it has options for."""
    settings = {"beam_size": spec["beam"], "lm": spec["lm"], "alpha": spec["alpha"],
                "beta": spec["beta"], "oov_penalty": spec["oov_penalty"]}
    options = get_spec(spec["decoder"]).option_names
    return build_decoder(spec["decoder"], tokenizer, **{k: v for k, v in settings.items() if k in options})


def has_beam(name: str) -> bool:
    return name == "pyctcdecode" or "beam_size" in get_spec(name).option_names


def worker(rank: int, share: tuple, tokenizer_state: dict, conn, barrier) -> None:
    """Decode this worker's share for each spec received on `conn`; None ends the loop.

    Replies ("ok", {id: text}, decode seconds of each pass) or ("error", traceback)."""
    os.dup2(2, 1)  # libraries that print (kenlm) must not reach the parent's stdout
    torch.set_num_threads(1)
    tokenizer = tokenizer_from_dict(tokenizer_state)
    log_probs = unpack(*share)
    longest = sorted(log_probs, key=lambda i: -len(log_probs[i]))[:WARMUP_UTTERANCES]
    warmup = {i: log_probs[i] for i in longest}
    while (spec := conn.recv()) is not None:
        try:
            decode = build(spec, tokenizer)
            decode(warmup)
            seconds = []
            for _ in range(spec["passes"]):
                barrier.wait()
                start = time.perf_counter()
                texts = decode(log_probs)
                seconds.append(time.perf_counter() - start)
            conn.send(("ok", texts, seconds))
        except BaseException:
            barrier.abort()  # the other workers stop waiting and report the broken barrier
            conn.send(("error", f"worker {rank}, {spec['decoder']} beam {spec['beam']}:\n"
                                f"{traceback.format_exc()}"))


class Workers:
    """`n` single-threaded spawned processes, each holding one share of the utterances."""

    def __init__(self, shares: list[tuple], tokenizer_state: dict):
        ctx = mp.get_context("spawn")  # no fork after CUDA or OpenMP in this process
        self.barrier = ctx.Barrier(len(shares))
        self.conns, self.procs = [], []
        saved = os.environ.get("OMP_NUM_THREADS")
        os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the children at start
        try:
            for rank, share in enumerate(shares):
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=worker, args=(rank, share, tokenizer_state, child, self.barrier),
                                   daemon=True)
                proc.start()
                child.close()
                self.conns.append(parent)
                self.procs.append(proc)
        finally:
            if saved is None:
                del os.environ["OMP_NUM_THREADS"]
            else:
                os.environ["OMP_NUM_THREADS"] = saved

    def run(self, spec: dict) -> tuple[dict[str, str], float]:
        """All shares decoded with `spec`: ({id: text}, seconds): per pass, the slowest worker's
        decode time (all start together); the fastest pass."""
        for conn in self.conns:
            conn.send(spec)
        texts, seconds, errors = {}, [], []
        for conn, proc in zip(self.conns, self.procs):
            while not conn.poll(1.0):
                if not proc.is_alive():
                    raise SystemExit(f"worker {proc.name} died (exit code {proc.exitcode})")
            reply = conn.recv()
            if reply[0] == "ok":
                texts.update(reply[1])
                seconds.append(reply[2])
            else:
                errors.append(reply[1])
        if errors:  # the first is the cause; the others name the broken barrier
            broken = [e for e in errors if "BrokenBarrierError" not in e]
            raise SystemExit("decoding failed in " + (broken or errors)[0])
        return texts, min(max(worker) for worker in zip(*seconds))

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(None)
            except OSError:
                pass
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()


def run_gpu(log_probs: dict[str, torch.Tensor], spec: dict, tokenizer: CharTokenizer,
            device: torch.device) -> tuple[dict[str, str], float]:
    """Beam search on the GPU in this process: ({id: text}, the fastest pass's decode seconds,
    after a warm-up batch of the longest utterances)."""
    decoder = our_decoder(spec, tokenizer)
    longest = sorted(log_probs, key=lambda i: -len(log_probs[i]))[:spec["batch_size"]]
    decode_log_probs({i: log_probs[i] for i in longest}, decoder, tokenizer, spec["batch_size"], device)
    seconds = []
    for _ in range(spec["passes"]):
        torch.cuda.synchronize(device)
        start = time.perf_counter()
        texts = decode_log_probs(log_probs, decoder, tokenizer, spec["batch_size"], device)
        torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - start)
    return texts, min(seconds)


def fmt(value: float | None) -> str:
    """Three significant digits, or whole numbers from 100 on; "-" for None."""
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def default_threads() -> int:
    """CPU cores this process may use (taskset and cgroups' cpusets included)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="recipes/synth/exp/best.pt", help="checkpoint")
    p.add_argument("--manifest", default="recipes/synth/data/test.jsonl", help="utterances to decode")
    p.add_argument("--lm", help="ARPA word LM (default: the one `asr tune-lm` saved in the model)")
    p.add_argument("--alpha", type=float, help="LM weight (default: tuned in the model, else 0.5)")
    p.add_argument("--beta", type=float, help="word bonus (default: tuned in the model, else 1.0)")
    p.add_argument("--oov-penalty", type=float,
                   help=f"OOV word penalty (default: tuned in the model, else {OOV_PENALTY.default:g})")
    p.add_argument("--min-utterances", type=int, default=1000,
                   help="repeat the set's log-probs until there are this many (default 1000)")
    p.add_argument("--beams", type=int, nargs="+", default=[10, 50], help="beam widths (default 10 50)")
    p.add_argument("--threads", type=int, default=default_threads(),
                   help="single-threaded worker processes per CPU decoder (default: the CPU cores "
                        "this process may use)")
    p.add_argument("--decoders", nargs="+", default=DECODERS, choices=DECODERS,
                   help="which to run (default all)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto: beam on the CPU, and also on the GPU when there is one; cpu: CPU only; "
                        "cuda: also on the GPU, which must be there")
    p.add_argument("--passes", type=int, default=1,
                   help="time each decoder this many times over all utterances, keep the fastest "
                        "(default 1; more on a busy machine)")
    p.add_argument("--batch-size", type=int, default=256,
                   help="utterances per batch on the CPU (our decoders; default 256)")
    p.add_argument("--gpu-batch-size", type=int, default=512,
                   help="utterances per batch for beam on the GPU (default 512)")
    args = p.parse_args(argv)
    if min(args.min_utterances, args.threads, args.passes, *args.beams) < 1:
        p.error("--min-utterances, --threads, --passes and --beams must be at least 1")
    if args.batch_size < 1 or args.gpu_batch_size < 1:
        p.error("--batch-size and --gpu-batch-size must be at least 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is visible; use --device auto or cpu")
    args.decoders = list(dict.fromkeys(args.decoders))
    args.beams = list(dict.fromkeys(args.beams))
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="bench: %(message)s")
    for name, module in PACKAGES.items():
        if name in args.decoders and importlib.util.find_spec(module) is None:
            raise SystemExit(f"--decoders {name} needs the {module} package (pip install "
                             f"{'flashlight-text kenlm' if name == 'flashlight' else 'pyctcdecode kenlm'})"
                             f", or leave {name} out of --decoders")
    state = load_checkpoint(args.model)
    use_lm = bool(LM_DECODERS & set(args.decoders))
    lm_path = args.lm or saved_lm(state, args.model)
    if use_lm and not lm_path:
        raise SystemExit(f"{args.model} holds no LM (run the recipe through its LM tuning stage, "
                         "`asr tune-lm`) and no --lm was given: pass --lm LM.arpa")
    if use_lm and not os.path.isfile(lm_path):
        raise SystemExit(f"language model {lm_path} not found; pass --lm LM.arpa")
    weights = resolve_options("beam", state.get("decoding", {}).get("beam"), alpha=args.alpha,
                              beta=args.beta, oov_penalty=args.oov_penalty)
    alpha, beta, oov_penalty = weights["alpha"], weights["beta"], weights["oov_penalty"]
    gpu = args.device != "cpu" and torch.cuda.is_available() and "beam" in args.decoders
    device = torch.device("cuda" if torch.cuda.is_available() and args.device != "cpu" else "cpu")

    torch.set_num_threads(args.threads)
    model, tokenizer = model_from_state(state, device)
    dataset = SpeechDataset(read_manifest(args.manifest), tokenizer, model.config.sample_rate,
                            args.manifest)
    log.info("log-probs of %d utterances on %s", len(dataset), device)
    base = compute_log_probs(model, dataset)
    if not base:
        raise SystemExit(f"{args.manifest}: no readable utterance")
    del model
    texts = {e["id"]: e["text"] for e in dataset.entries}
    # at least one utterance per worker
    log_probs, refs = repeat_log_probs(base, {i: texts[i] for i in base},
                                       max(args.min_utterances, args.threads))
    frames = sum(len(lp) for lp in log_probs.values())
    log.info("%d utterances (%d distinct, %d repeats), %d frames; LM %s, alpha %g, beta %g",
             len(log_probs), len(base), len(log_probs) // len(base), frames, lm_path, alpha, beta)
    if "beam" in args.decoders:  # read the ARPA once here, so that workers load its cache
        from asr.lm import NgramLM

        NgramLM.from_arpa(lm_path)

    runs = [(name, None) for name in args.decoders if not has_beam(name)]
    runs += [(name, beam) for beam in args.beams for name in args.decoders if has_beam(name)]
    rows = []
    shares = [pack(log_probs, ids) for ids in split_shares(log_probs, args.threads)]
    workers = Workers(shares, tokenizer.to_dict())
    try:
        for name, beam in runs:
            spec = {"decoder": name, "beam": beam, "lm": lm_path if name in LM_DECODERS else None,
                    "alpha": alpha, "beta": beta, "oov_penalty": oov_penalty,
                    "batch_size": args.batch_size, "passes": args.passes}
            for dev in ["cpu", "cuda"] if name == "beam" and gpu else ["cpu"]:
                log.info("%s, %s, beam %s ...", name, dev, beam or "-")
                if dev == "cpu":
                    hyps, seconds = workers.run(spec)
                else:
                    hyps, seconds = run_gpu(log_probs, {**spec, "batch_size": args.gpu_batch_size},
                                            tokenizer, torch.device("cuda"))
                report = score(refs, hyps, normalize)
                if report.missing:
                    raise SystemExit(f"{name} on {dev}: no hypothesis for {len(report.missing)} ids")
                rows.append({"decoder": name, "device": dev, "beam": beam, "wer": report.wer,
                             "utt_per_s": len(log_probs) / seconds})
                log.info("%s, %s, beam %s: WER %.2f%%, %.1f utt/s (%.2f s)", name, dev, beam or "-",
                         100 * report.wer, rows[-1]["utt_per_s"], seconds)
    finally:
        workers.close()

    flashlight = {r["beam"]: r["utt_per_s"] for r in rows if r["decoder"] == "flashlight"}
    cpu_name = f"{args.threads} single-threaded worker process{'es' if args.threads > 1 else ''}"
    if gpu:
        cpu_name += f"; GPU {torch.cuda.get_device_name()}"
    print(f"Decoding {len(log_probs)} utterances ({len(base)} distinct, {frames / len(log_probs):.0f} "
          f"frames each on average) of {args.manifest}; LM {lm_path or '-'}, alpha {alpha:g}, "
          f"beta {beta:g}, OOV penalty {oov_penalty:g}; CPU decoders: {cpu_name}\n")
    print("| decoder     | device | beam | threads | WER %  |   utt/s | x flashlight |")
    print("|-------------|--------|-----:|--------:|-------:|--------:|-------------:|")
    for r in rows:
        ref = flashlight.get(r["beam"])
        threads = args.threads if r["device"] == "cpu" else "-"
        print(f"| {r['decoder']:<11} | {r['device']:<6} | {r['beam'] or '-':>4} | {threads:>7} "
              f"| {100 * r['wer']:6.2f} | {fmt(r['utt_per_s']):>7} "
              f"| {fmt(r['utt_per_s'] / ref) if ref else '-':>12} |")
    print()
    print("x flashlight: utt/s over flashlight's (CPU) at the same beam. utt/s: utterances over the "
          "wall time of the slowest worker, decoding only")
    by_key = {(r["decoder"], r["device"], r["beam"]): r for r in rows}
    for beam in args.beams:
        ours, other = by_key.get(("beam", "cpu", beam)), by_key.get(("flashlight", "cpu", beam))
        notes = []
        if ours and other:
            notes.append(f"beam - flashlight WER {100 * (ours['wer'] - other['wer']):+.2f} pp, "
                         f"speed x{ours['utt_per_s'] / other['utt_per_s']:.3g}")
        if ours and (other := by_key.get(("pyctcdecode", "cpu", beam))):
            notes.append(f"beam / pyctcdecode speed x{ours['utt_per_s'] / other['utt_per_s']:.3g}")
        if notes:
            print(f"beam {beam}, CPU: " + "; ".join(notes))

    summary = {"rows": [{**r, "wer": round(r["wer"], 6), "utt_per_s": float(f"{r['utt_per_s']:.4g}")}
                        for r in rows],
               "utterances": len(log_probs), "distinct_utterances": len(base), "frames": frames,
               "lm": lm_path, "alpha": alpha, "beta": beta, "oov_penalty": oov_penalty,
               "threads": args.threads,
               "batch_size": args.batch_size, "passes": args.passes, "model": args.model,
               "manifest": args.manifest}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
