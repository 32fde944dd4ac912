"""Scoring speed: `asr.score.score` against jiwer called once per utterance, on the same pairs.

    python scripts/bench_score.py                  # 100,000 utterances
    python scripts/bench_score.py --utterances 20000 --seed 1

Makes random reference/hypothesis pairs (5-30 words over a 5,000-word vocabulary, about 15%
word errors), then times, in one process, each of:
  ours         asr.score.score: sclite alignment of every pair's words and characters, the
               full report (counts, confusions, per-utterance alignments)
  jiwer-batch  jiwer.process_words and jiwer.process_characters, one call each over all pairs
  jiwer-loop   the same two calls once per utterance, the counts summed (the common loop)
Prints a table, then one JSON line: {"rows": [{"scorer", "seconds", "utt_per_s", "wer", "cer"}],
"utterances", "seed"}. Rates may differ slightly: jiwer minimises the number of edits,
sclite's costs (substitution 4, insertion/deletion 3) may choose an alignment with more.
"""

from __future__ import annotations

import argparse
import json
import random
import time

import jiwer

from asr.score import score


def make_pairs(n: int, seed: int) -> tuple[dict[str, str], dict[str, str]]:
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(5000)]
    refs, hyps = {}, {}
    for i in range(n):
        ref = rng.choices(vocab, k=rng.randint(5, 30))
        hyp = []
        for word in ref:
            roll = rng.random()
            if roll >= 0.05:  # else deleted
                hyp.append(rng.choice(vocab) if roll < 0.12 else word)
            if rng.random() < 0.03:
                hyp.append(rng.choice(vocab))
        uid = f"spk{i % 100}-utt{i}"
        refs[uid], hyps[uid] = " ".join(ref), " ".join(hyp)
    return refs, hyps


def timed(fn) -> tuple[float, tuple[float, float]]:
    start = time.perf_counter()
    rates = fn()
    return time.perf_counter() - start, rates


def rates(words, chars) -> tuple[float, float]:
    def rate(out) -> float:
        return (out.substitutions + out.deletions + out.insertions) / (
            out.substitutions + out.deletions + out.hits)
    return rate(words), rate(chars)


def jiwer_loop(refs: dict[str, str], hyps: dict[str, str]) -> tuple[float, float]:
    totals = [[0, 0], [0, 0]]  # words, characters: errors, reference length
    for uid, ref in refs.items():
        for k, out in enumerate((jiwer.process_words(ref, hyps[uid]),
                                 jiwer.process_characters(ref, hyps[uid]))):
            totals[k][0] += out.substitutions + out.deletions + out.insertions
            totals[k][1] += out.substitutions + out.deletions + out.hits
    return totals[0][0] / totals[0][1], totals[1][0] / totals[1][1]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--utterances", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    refs, hyps = make_pairs(args.utterances, args.seed)
    keys = list(refs)
    ref_list, hyp_list = [refs[k] for k in keys], [hyps[k] for k in keys]
    runs = {
        "ours": lambda: (lambda r: (r.wer, r.cer))(score(refs, hyps)),
        "jiwer-batch": lambda: rates(jiwer.process_words(ref_list, hyp_list),
                                     jiwer.process_characters(ref_list, hyp_list)),
        "jiwer-loop": lambda: jiwer_loop(refs, hyps),
    }
    rows = []
    for name, fn in runs.items():
        seconds, (wer, cer) = timed(fn)
        rows.append({"scorer": name, "seconds": round(seconds, 3), "utt_per_s": round(len(refs) / seconds),
                     "wer": round(wer, 6), "cer": round(cer, 6)})
    loop = next(r["seconds"] for r in rows if r["scorer"] == "jiwer-loop")
    print(f"{len(refs):,} utterances, seed {args.seed}\n")
    print("| scorer      | seconds |    utt/s | WER %  | CER %  | x jiwer-loop |")
    print("|-------------|--------:|---------:|-------:|-------:|-------------:|")
    for r in rows:
        print(f"| {r['scorer']:<11} | {r['seconds']:7.2f} | {r['utt_per_s']:8,} | {100 * r['wer']:6.2f} "
              f"| {100 * r['cer']:6.2f} | {loop / r['seconds']:12.2f} |")
    summary = {"rows": rows, "utterances": len(refs), "seed": args.seed}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
