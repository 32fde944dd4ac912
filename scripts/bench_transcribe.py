"""Transcription end to end: speed, memory and accuracy of our engines (torch fp32 and int8, ONNX
Runtime, the GPU) and PocketSphinx on the same audio, plus a 1-hour recording and word times.

    python scripts/bench_transcribe.py        # recipes/synth: its model and test set, and the hour
    python scripts/bench_transcribe.py --limit 20 --long-minutes 0.5 --no-hour    # a quick look

Inputs, all written as 16 kHz 16-bit WAV into a temporary folder except the first:
- utterances: the manifest's files, one file each (transcribe_many over all of them);
- long files: the same utterances one after another, each after a random 0.5-1.5 s pause of quiet
  noise (Gaussian, rms 1e-4), cut into files of about --long-minutes each (a file holds whole
  utterances; its reference is their texts joined);
- the hour (--hour, on by default): the utterances repeated, with such pauses, to >= 60 minutes
  (--hour-minutes).

Systems, each input kind run by a fresh process of its own (this script with a hidden --worker
flag, so that peak RSS is that run's): fp32, int8 and onnx load the model with
asr.engines.load_for_inference (torch; torch with dynamic int8; ONNX Runtime on a folder that
asr.export.export_model wrote with --onnx before any timing), cuda is fp32 on the GPU (with
--device auto when there is one, or --device cuda); all four transcribe with
asr.transcription.transcribe_many, greedy decoding and the default options (energy VAD, 30 s
segments), torch/onnxruntime using --threads threads. pocketsphinx (PyPI `pocketsphinx`, its
en-us model, dictionary and LM as asr.pocketsphinx_baseline loads them) decodes each file as one
utterance, in --threads processes (it is single-threaded).

Per row: RTFx = audio seconds / wall seconds, with loading excluded and included. Loading is
the imports, load_for_inference (or pocketsphinx's Decoder and its processes) and one untimed
warm-up transcription of the first utterance (one-time kernel and CUDA set-up). Peak RSS is the
worker's peak resident set (VmHWM in /proc/self/status: ru_maxrss would include the parent's
peak, which Linux carries into a child over fork and exec; pocketsphinx in several processes:
the sum of the peaks of the worker and of its processes that decoded a file). WER is
asr.score.score with asr.text.normalize against the manifest texts, file by file.

The hour is transcribed by fp32. Its words are given to utterances by time (a word belongs to
the utterance whose stretch, up to the middle of the pauses on either side, holds its midpoint)
and scored utterance by utterance, next to the WER of the same utterances transcribed one by one
(fp32's utterance files): the difference shows what stitching long audio loses.

Word start error (fp32): the reference starts are asr.transcription.word_timings of each
reference text's tokens force-aligned to the model's log-probs of its utterance file
(asr.inference.compute_log_probs); the hypothesis starts come from the utterance files'
transcripts, and from the long files' (words given to utterances by time as above, minus the
utterance's offset in its long file). Words that asr.align.align_words marks correct are
paired; reported: the median and 90th percentile of |start difference| in ms.

Prints a markdown table, the hour and word-time lines, then one JSON line, last on stdout:
{"rows": [{"system", "device", "input", "rtfx" (loading excluded), "rtfx_with_load",
"peak_rss_mb", "wer" (a fraction)}, ...], "hour": {...} or null, "word_start_error_ms":
{"utterances": {"median", "p90", "words"}, "long files": {...}}, "threads", "cpu", "gpu",
"audio_seconds": {input: seconds}, ...}. Progress goes to stderr.

Heavy modules (torch, asr.*) are imported inside functions: a worker's imports count in its
loading time and its memory holds only what its system needs (pocketsphinx runs without torch).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

log = logging.getLogger("bench_transcribe")

SYSTEMS = ["fp32", "int8", "onnx", "cuda", "pocketsphinx"]
ENGINES = {"fp32": {"engine": "torch"}, "int8": {"engine": "torch", "quantize": "int8"},
           "onnx": {"engine": "onnx"}, "cuda": {"engine": "torch", "device": "cuda"}}
RATE = 16000  # of the written recordings, and pocketsphinx's
PAUSE_SECONDS = (0.5, 1.5)
NOISE_RMS = 1e-4  # the pauses' noise floor


@dataclass
class Utterance:
    id: str
    path: str
    text: str
    seconds: float = 0.0


@dataclass
class Part:
    """An utterance inside a recording: `key` is unique within the recording's set."""

    key: str
    utt: Utterance
    offset: float  # seconds from the recording's start


@dataclass
class Recording:
    id: str
    path: str
    seconds: float
    parts: list[Part]

    @property
    def text(self) -> str:
        return " ".join(p.utt.text for p in self.parts)


# ---- recordings ------------------------------------------------------------------------------


def write_pause(f: soundfile.SoundFile, rng: np.random.Generator) -> int:
    """Write a random pause of quiet noise; its length in samples."""
    from asr.audio import to_pcm16

    n = int(round(rng.uniform(*PAUSE_SECONDS) * RATE))
    f.write(to_pcm16(NOISE_RMS * rng.standard_normal(n)))
    return n


def write_recording(path: Path, utts: list[Utterance], waves: dict[str, np.ndarray],
                    rng: np.random.Generator, min_seconds: float = 0.0) -> Recording:
    """`utts` one after another, each after a pause (and a pause at the end), cycling through
    them until the recording lasts `min_seconds`; repeat r > 0 of an utterance has key "ID~rR"."""
    parts, at = [], 0
    with soundfile.SoundFile(path, "w", RATE, 1, "PCM_16") as f:
        n = 0
        while n < len(utts) or at < min_seconds * RATE:
            utt, repeat = utts[n % len(utts)], n // len(utts)
            at += write_pause(f, rng)
            parts.append(Part(utt.id if repeat == 0 else f"{utt.id}~r{repeat}", utt, at / RATE))
            f.write(waves[utt.id])
            at += len(waves[utt.id])
            n += 1
        at += write_pause(f, rng)
    return Recording(path.stem, str(path), at / RATE, parts)


def split_evenly(utts: list[Utterance], minutes: float) -> list[list[Utterance]]:
    """Consecutive groups of about `minutes` each (pauses included), of about equal length."""
    mean_pause = sum(PAUSE_SECONDS) / 2
    lengths = np.array([u.seconds + mean_pause for u in utts])
    n = max(1, round(lengths.sum() / (60 * minutes)))
    middles = np.cumsum(lengths) - lengths / 2
    group = np.minimum((n * middles / lengths.sum()).astype(int), n - 1)
    return [[u for u, g in zip(utts, group) if g == k] for k in range(n) if (group == k).any()]


def read_waves(utts: list[Utterance]) -> dict[str, np.ndarray]:
    """Each utterance as 16 kHz 16-bit samples; sets its `seconds`."""
    from asr.audio import load_audio, to_pcm16

    waves = {}
    for utt in utts:
        waves[utt.id] = to_pcm16(load_audio(utt.path, RATE))
        utt.seconds = len(waves[utt.id]) / RATE
    return waves


def build_recordings(utts: list[Utterance], long_minutes: float, hour: float | None,
                     folder: Path) -> tuple[list[Recording], Recording | None]:
    """The long files and (unless `hour` is None) the hour recording of `hour` minutes, written
    into `folder`."""
    waves = read_waves(utts)
    rng = np.random.default_rng(0)
    groups = split_evenly(utts, long_minutes)
    long_files = [write_recording(folder / f"long{k:03d}.wav", group, waves, rng)
                  for k, group in enumerate(groups)]
    hour_file = write_recording(folder / "hour.wav", utts, waves, rng, 60 * hour) if hour else None
    return long_files, hour_file


def words_by_utterance(words: list[list], parts: list[Part]) -> dict[str, list[list]]:
    """A recording's words [word, start, end] given to its parts by time: a part owns the
    stretch up to the middle of the pauses around it; times become relative to the part."""
    ends = [p.offset + p.utt.seconds for p in parts]
    bounds = [(end + p.offset) / 2 for end, p in zip(ends, parts[1:])]
    out: dict[str, list[list]] = {p.key: [] for p in parts}
    for word, start, end in words:
        part = parts[int(np.searchsorted(bounds, (start + end) / 2))]
        out[part.key].append([word, start - part.offset, end - part.offset])
    return out


# ---- workers ---------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak resident set: VmHWM where /proc has it (ru_maxrss on Linux carries
    the parent's peak over fork and exec into a child started by a large parent), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale / 1024


class OurSystem:
    """A model loaded with asr.engines.load_for_inference, transcribing with greedy decoding."""

    def __init__(self, spec: dict):
        from asr.decode import greedy_decode
        from asr.engines import load_for_inference
        from asr.transcription import Recognizer

        model, tokenizer, _ = load_for_inference(spec["model"], **ENGINES[spec["system"]],
                                                 threads=spec["threads"])
        self.recognizer = Recognizer(model, tokenizer, greedy_decode)
        self.words = spec["words"]

    def transcribe(self, files: list[list[str]]) -> dict[str, dict]:
        """{key: {"text", "words": [[word, start, end], ...] (with spec["words"])} or {"error"}}."""
        from asr.transcription import transcribe_many

        out = {}
        for key, result in transcribe_many(self.recognizer, [tuple(f) for f in files]):
            if isinstance(result, str):
                out[key] = {"error": result}
                continue
            out[key] = {"text": result["text"]}
            if self.words:
                out[key]["words"] = [[w["word"], w["start"], w["end"]]
                                     for segment in result["segments"] for w in segment["words"]]
        return out

    def peak_rss_mb(self) -> float:
        return peak_rss_mb()

    def close(self) -> None:
        pass


def read_pcm16(path: str) -> np.ndarray:
    """16 kHz mono 16-bit samples; other rates and channel counts go through asr.audio (torch)."""
    info = soundfile.info(path)
    if info.samplerate == RATE and info.channels == 1:
        return soundfile.read(path, dtype="int16")[0]
    from asr.audio import load_audio, to_pcm16

    return to_pcm16(load_audio(path, RATE))


def sphinx_decode(decoder, path: str) -> dict:
    """asr.pocketsphinx_baseline.decode_wave on a file, without its torch import: one whole
    utterance, full_utt."""
    try:
        pcm = read_pcm16(path)
    except (RuntimeError, ValueError, soundfile.LibsndfileError) as err:
        return {"error": f"{path}: {err}"}
    decoder.start_utt()
    decoder.process_raw(pcm.astype("<i2").tobytes(), no_search=False, full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    return {"text": hyp.hypstr if hyp is not None else ""}


_sphinx = None  # a pocketsphinx pool process's decoder


def _sphinx_init() -> None:
    from asr.pocketsphinx_baseline import make_decoder

    global _sphinx
    _sphinx = make_decoder()


def _sphinx_task(item: list[str]) -> tuple[str, dict, int, float]:
    """(key, result, this process's id, its peak RSS MB) in a pool process."""
    return item[0], sphinx_decode(_sphinx, item[1]), os.getpid(), peak_rss_mb()


class SphinxSystem:
    """PocketSphinx's default English decoder: in this process, or in `threads` processes."""

    def __init__(self, spec: dict):
        import multiprocessing

        from asr.pocketsphinx_baseline import make_decoder

        self.jobs, self.peaks = spec["threads"], {}
        if self.jobs == 1:
            self.decoder = make_decoder()
        else:
            self.pool = multiprocessing.get_context("spawn").Pool(self.jobs, initializer=_sphinx_init)

    def transcribe(self, files: list[list[str]]) -> dict[str, dict]:
        if self.jobs == 1:
            return {key: sphinx_decode(self.decoder, path) for key, path in files}
        longest_first = sorted(files, key=lambda f: -soundfile.info(f[1]).frames)
        out = {}
        for key, result, pid, rss in self.pool.imap_unordered(_sphinx_task, longest_first):
            out[key] = result
            self.peaks[pid] = max(rss, self.peaks.get(pid, 0.0))
        return {key: out[key] for key, _ in files}

    def peak_rss_mb(self) -> float:
        return peak_rss_mb() + sum(self.peaks.values())

    def close(self) -> None:
        if self.jobs > 1:
            self.pool.close()
            self.pool.join()


def run_worker(spec_path: str) -> int:
    """Load the spec's system, warm it up on one file, time the transcription of its files;
    write {"load_seconds", "seconds", "peak_rss_mb", "results"} to spec["out"]."""
    os.dup2(2, 1)  # whatever libraries print goes to stderr, not the benchmark's stdout
    start = time.perf_counter()
    spec = json.loads(Path(spec_path).read_text())
    system = SphinxSystem(spec) if spec["system"] == "pocketsphinx" else OurSystem(spec)
    system.transcribe([["warm-up", spec["warmup"]]])
    loaded = time.perf_counter()
    results = system.transcribe(spec["files"])
    done = time.perf_counter()
    system.close()
    out = {"load_seconds": loaded - start, "seconds": done - loaded, "peak_rss_mb": system.peak_rss_mb(),
           "results": results}
    Path(spec["out"]).write_text(json.dumps(out))
    return 0


def run_system(system: str, label: str, files: list[tuple[str, str]], args, folder: Path,
               model: str, words: bool = False) -> dict:
    """Run `system` on `files` ([(key, path)]) in a fresh process; its output (run_worker's)."""
    spec_path = folder / f"spec-{system}-{label.replace(' ', '-')}.json"
    spec = {"system": system, "model": model, "threads": args.threads, "files": files,
            "warmup": args.warmup, "words": words,
            "out": str(spec_path.with_suffix(".out.json"))}
    spec_path.write_text(json.dumps(spec))
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    log.info("%s on %s (%d files) ...", system, label, len(files))
    run = subprocess.run([sys.executable, __file__, "--worker", str(spec_path)], env=env,
                         stdout=sys.stderr, check=False)
    if run.returncode != 0:
        raise SystemExit(f"{system} on {label} failed (exit code {run.returncode}); see above")
    out = json.loads(Path(spec["out"]).read_text())
    errors = {k: r["error"] for k, r in out["results"].items() if "error" in r}
    for key, error in list(errors.items())[:5]:
        log.warning("%s on %s: %s failed: %s", system, label, key, error)
    if errors:
        log.warning("%s on %s: %d files failed (scored as empty transcripts)", system, label, len(errors))
    return out


# ---- scoring ---------------------------------------------------------------------------------


def texts(out: dict) -> dict[str, str]:
    return {key: r["text"] for key, r in out["results"].items() if "text" in r}


def wer(refs: dict[str, str], hyps: dict[str, str]) -> float:
    from asr.score import score
    from asr.text import normalize

    return score(refs, hyps, normalize).wer


def make_row(system: str, label: str, out: dict, refs: dict[str, str], audio_seconds: float) -> dict:
    row = {"system": system, "device": "cuda" if system == "cuda" else "cpu", "input": label,
           "rtfx": audio_seconds / out["seconds"],
           "rtfx_with_load": audio_seconds / (out["seconds"] + out["load_seconds"]),
           "peak_rss_mb": out["peak_rss_mb"], "wer": wer(refs, texts(out))}
    log.info("%s on %s: RTFx %.1f (%.1f with loading), peak RSS %.0f MB, WER %.2f%%", system, label,
             row["rtfx"], row["rtfx_with_load"], row["peak_rss_mb"], 100 * row["wer"])
    return row


def reference_word_starts(model_path: str, utts: list[Utterance], threads: int) -> dict[str, list]:
    """{utterance id: [[word, start s], ...]}: the reference text's tokens force-aligned to
    the fp32 model's log-probs of the utterance file."""
    from asr.data import SpeechDataset
    from asr.engines import load_for_inference
    from asr.inference import compute_log_probs
    from asr.transcription import Recognizer, word_timings

    model, tokenizer, _ = load_for_inference(model_path, threads=threads)
    entries = [{"id": u.id, "audio_filepath": u.path, "duration": u.seconds, "text": u.text} for u in utts]
    dataset = SpeechDataset(entries, tokenizer, model.config.sample_rate)
    log_probs = compute_log_probs(model, dataset)
    frame_seconds = Recognizer(model, tokenizer, None).frame_seconds
    return {e["id"]: [[w["word"], w["start"]] for w in word_timings(log_probs[e["id"]], tokens, tokenizer,
                                                                     frame_seconds)]
            for e, tokens in zip(dataset.entries, dataset.tokens) if e["id"] in log_probs}


def start_errors_ms(refs: dict[str, list], hyps: dict[str, list]) -> np.ndarray:
    """|hypothesis start - reference start| in ms of every word pair the word alignment of
    each utterance marks correct; words are [word, start, ...]."""
    from asr.align import CORRECT, DELETION, INSERTION, align_words, split_ops

    ids = list(refs)
    ops, counts = align_words([[w[0] for w in refs[i]] for i in ids],
                              [[w[0] for w in hyps.get(i, [])] for i in ids])
    errors = []
    for utt_id, pair in zip(ids, split_ops(ops, counts)):
        r = h = 0
        for op in pair.tolist():
            if op == CORRECT:
                errors.append(abs(hyps[utt_id][h][1] - refs[utt_id][r][1]))
            r, h = r + (op != INSERTION), h + (op != DELETION)
    return 1000 * np.array(errors)


def error_stats(errors_ms: np.ndarray) -> dict:
    if not len(errors_ms):
        return {"median": None, "p90": None, "words": 0}
    return {"median": round(float(np.median(errors_ms)), 1),
            "p90": round(float(np.percentile(errors_ms, 90)), 1), "words": len(errors_ms)}


def long_file_words(out: dict, long_files: list[Recording]) -> dict[str, list]:
    """{utterance key: [[word, start, end], ...]} from the long files' transcripts."""
    words = {}
    for rec in long_files:
        words.update(words_by_utterance(out["results"].get(rec.id, {}).get("words", []), rec.parts))
    return words


def hour_summary(out: dict, hour: Recording, one_by_one: dict[str, str]) -> dict:
    """The hour's RTFx, memory and WER (per utterance, words given by time) next to the
    one-by-one WER of the same utterances."""
    words = words_by_utterance(out["results"].get(hour.id, {}).get("words", []), hour.parts)
    refs = {p.key: p.utt.text for p in hour.parts}
    stitched = wer(refs, {key: " ".join(w[0] for w in ws) for key, ws in words.items()})
    alone = wer(refs, {p.key: one_by_one[p.utt.id] for p in hour.parts if p.utt.id in one_by_one})
    return {"minutes": round(hour.seconds / 60, 2), "utterances": len(hour.parts),
            "rtfx": round(hour.seconds / out["seconds"], 2),
            "rtfx_with_load": round(hour.seconds / (out["seconds"] + out["load_seconds"]), 2),
            "peak_rss_mb": round(out["peak_rss_mb"], 1), "wer": round(stitched, 6),
            "wer_one_by_one": round(alone, 6), "difference_points": round(100 * (stitched - alone), 3)}


# ---- the run ---------------------------------------------------------------------------------


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def default_threads() -> int:
    """CPU cores this process may use (taskset and cgroups' cpusets included); as
    asr.engines.default_threads, without importing torch into every worker."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def read_utterances(manifests: list[str], limit: int | None) -> list[Utterance]:
    from asr.data import read_manifest

    utts = [Utterance(e["id"], e["audio_filepath"], e["text"]) for m in manifests for e in read_manifest(m)]
    utts = utts[:limit]
    if len({u.id for u in utts}) < len(utts):
        raise SystemExit("utterance ids repeat across the manifests; give them distinct ids")
    if not utts:
        raise SystemExit("no utterances to transcribe")
    return utts


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="recipes/synth/exp/best.pt", help="checkpoint or exported folder")
    p.add_argument("--manifest", nargs="+", action="extend",
                   help="JSONL manifests of utterances (repeatable; default recipes/synth/data/test.jsonl)")
    p.add_argument("--limit", type=int, help="only the first N utterances")
    p.add_argument("--threads", type=int, default=default_threads(),
                   help="torch/onnxruntime threads, pocketsphinx processes (default: the CPU cores "
                        "this process may use)")
    p.add_argument("--long-minutes", type=float, default=10.0,
                   help="length of each long file, minutes (default 10)")
    p.add_argument("--hour", action=argparse.BooleanOptionalAction, default=True,
                   help="also transcribe a >= 60 minute recording with fp32 (default: yes)")
    p.add_argument("--hour-minutes", type=float, default=60.0,
                   help="the hour recording's length, minutes (default 60; less for a smoke test)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto: the cuda row when there is a GPU; cpu: none; cuda: the GPU must be there")
    p.add_argument("--systems", nargs="+", choices=SYSTEMS, default=SYSTEMS,
                   help="which to run (default all; fp32 always runs: the hour and word times use it)")
    p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one system (a spec file)
    args = p.parse_args(argv)
    args.manifest = args.manifest or ["recipes/synth/data/test.jsonl"]
    if args.limit is not None and args.limit < 1 or args.threads < 1:
        p.error("--limit and --threads must be at least 1")
    if min(args.long_minutes, args.hour_minutes) <= 0:
        p.error("--long-minutes and --hour-minutes must be above 0")
    return args


def pick_systems(args) -> list[str]:
    import torch

    gpu = torch.cuda.is_available()
    if args.device == "cuda" and not gpu:
        raise SystemExit("--device cuda: no CUDA device is visible; use --device auto or cpu")
    wanted = {"fp32", *args.systems} - (set() if gpu and args.device != "cpu" else {"cuda"})
    return [s for s in SYSTEMS if s in wanted]


def run_all(args, systems: list[str], utts: list[Utterance], folder: Path) -> dict:
    """Write the recordings, then run every system on every input kind, and fp32 on the hour."""
    log.info("writing the long files%s of %d utterances", " and the hour" if args.hour else "", len(utts))
    long_files, hour = build_recordings(utts, args.long_minutes, args.hour_minutes if args.hour else None,
                                        folder)
    args.warmup = utts[0].path
    inputs = {"utterances": ([(u.id, u.path) for u in utts], {u.id: u.text for u in utts}),
              "long files": ([(r.id, r.path) for r in long_files], {r.id: r.text for r in long_files})}
    audio = {"utterances": sum(u.seconds for u in utts), "long files": sum(r.seconds for r in long_files)}
    models = {s: args.model for s in systems}
    if "onnx" in systems:
        from asr.export import export_model

        log.info("exporting %s to ONNX", args.model)
        logging.getLogger("onnxscript").setLevel(logging.WARNING)  # its optimizer's INFO lines
        models["onnx"] = str(export_model(args.model, folder / "onnx-model", onnx=True))
    rows, outputs = [], {}
    for system in systems:
        for label, (files, refs) in inputs.items():
            outputs[system, label] = run_system(system, label, files, args, folder, models[system],
                                                words=system == "fp32")
            rows.append(make_row(system, label, outputs[system, label], refs, audio[label]))
    hour_out = run_system("fp32", "hour", [(hour.id, hour.path)], args, folder, args.model,
                          words=True) if hour else None
    return {"rows": rows, "outputs": outputs, "audio": audio, "long_files": long_files, "hour": hour,
            "hour_out": hour_out}


def word_start_errors(args, utts: list[Utterance], run: dict) -> dict:
    """fp32's word start errors on the utterance files and on the long files."""
    log.info("reference word times: forced alignment of %d utterances", len(utts))
    refs = reference_word_starts(args.model, utts, args.threads)
    results = run["outputs"]["fp32", "utterances"]["results"]
    hyps = {"utterances": {key: r.get("words", []) for key, r in results.items()},
            "long files": long_file_words(run["outputs"]["fp32", "long files"], run["long_files"])}
    return {label: error_stats(start_errors_ms(refs, words)) for label, words in hyps.items()}


def main(argv: list[str] | None = None) -> dict | int:
    args = parse_args(argv)
    if args.worker:
        return run_worker(args.worker)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="bench: %(message)s")
    systems = pick_systems(args)
    utts = read_utterances(args.manifest, args.limit)
    with tempfile.TemporaryDirectory(prefix="bench_transcribe-") as tmp:
        run = run_all(args, systems, utts, Path(tmp))
    hour = run["hour"]
    one_by_one = texts(run["outputs"]["fp32", "utterances"])
    summary = {"rows": [round_row(r) for r in run["rows"]],
               "hour": hour_summary(run["hour_out"], hour, one_by_one) if hour else None,
               "word_start_error_ms": word_start_errors(args, utts, run),
               "threads": args.threads, "cpu": cpu_name(), "gpu": gpu_name() if "cuda" in systems else None,
               "audio_seconds": {**{k: round(v, 2) for k, v in run["audio"].items()},
                                 "hour": round(hour.seconds, 2) if hour else None},
               "utterances": len(utts), "long_files": len(run["long_files"]),
               "long_minutes": args.long_minutes, "model": args.model, "manifests": args.manifest}
    print_report(summary)
    print(json.dumps(summary))
    return summary


def gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name()


def round_row(row: dict) -> dict:
    return {**row, "rtfx": round(row["rtfx"], 2), "rtfx_with_load": round(row["rtfx_with_load"], 2),
            "peak_rss_mb": round(row["peak_rss_mb"], 1), "wer": round(row["wer"], 6)}


def fmt_ms(stats: dict) -> str:
    if not stats["words"]:
        return "no correct words"
    return f"median {stats['median']:.0f} ms, p90 {stats['p90']:.0f} ms ({stats['words']} words)"


def print_report(summary: dict) -> None:
    audio = summary["audio_seconds"]
    print(f"Transcribing {summary['utterances']} utterances ({audio['utterances'] / 60:.1f} min) of "
          f"{', '.join(summary['manifests'])} with {summary['model']}, as the files themselves and as "
          f"{summary['long_files']} long files ({audio['long files'] / 60:.1f} min with pauses); "
          f"{summary['threads']} threads on {summary['cpu']}"
          + (f"; GPU {summary['gpu']}" if summary["gpu"] else "") + "\n")
    print("| system       | device | input      | RTFx incl. load | RTFx excl. load | peak RSS MB | WER %  |")
    print("|--------------|--------|------------|----------------:|----------------:|------------:|-------:|")
    for r in summary["rows"]:
        print(f"| {r['system']:<12} | {r['device']:<6} | {r['input']:<10} | {r['rtfx_with_load']:>15,.1f} "
              f"| {r['rtfx']:>15,.1f} | {r['peak_rss_mb']:>11,.0f} | {100 * r['wer']:6.2f} |")
    print()
    print("RTFx: audio seconds / wall seconds; loading = imports, model load and one warm-up file. "
          "pocketsphinx: one process per thread, decoding whole files.")
    hour = summary["hour"]
    if hour:
        print(f"Hour recording ({hour['minutes']:.1f} min, {hour['utterances']} utterances, fp32): RTFx "
              f"{hour['rtfx']:.1f} ({hour['rtfx_with_load']:.1f} with loading), peak RSS "
              f"{hour['peak_rss_mb']:.0f} MB; WER {100 * hour['wer']:.2f}% stitched vs "
              f"{100 * hour['wer_one_by_one']:.2f}% one by one ({hour['difference_points']:+.2f} points)")
    timing = summary["word_start_error_ms"]
    print(f"Word start error vs forced alignment (fp32, correct words): utterance files "
          f"{fmt_ms(timing['utterances'])}; long files {fmt_ms(timing['long files'])}")


if __name__ == "__main__":
    result = main()
    sys.exit(result if isinstance(result, int) else 0)
