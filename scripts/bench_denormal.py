"""Training-step time on the CPU with and without flushing denormal floats to zero.

    python scripts/bench_denormal.py recipes/synth/exp/epoch-5.pt recipes/synth/data/train.jsonl

A trained model's gradients and activations include denormal floats (below 1.2e-38), which
x86 CPUs compute with microcode, many times slower. `asr train` sets
torch.set_flush_denormal(True); this times one forward and backward pass (CTC loss) of the
checkpoint's model (asr.train.forward_backward) on `--utterances` training utterances of the
manifest, alternating the setting (the named alternative: PyTorch's default, no flushing),
`--repeats` steps each, on one thread. Prints one line per setting, then one JSON line:
{"rows": [{"flush_denormal", "seconds_per_step"}], "audio_s"}.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from asr.checkpoint import load_checkpoint, model_from_state
from asr.data import SpeechDataset, collate, read_manifest
from asr.train import forward_backward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="a trained model, e.g. recipes/synth/exp/epoch-5.pt")
    parser.add_argument("manifest", help="its training manifest (JSONL)")
    parser.add_argument("--utterances", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, tokenizer = model_from_state(load_checkpoint(args.checkpoint))
    model.train()
    dataset = SpeechDataset(read_manifest(args.manifest)[: args.utterances], tokenizer,
                            model.config.sample_rate, args.manifest)
    batch = collate([dataset[i] for i in range(len(dataset))])

    cpu, no_amp = torch.device("cpu"), torch.amp.GradScaler("cpu", enabled=False)

    def step() -> None:  # as asr.train does it, less the optimizer (the weights stay put)
        model.zero_grad(set_to_none=True)
        forward_backward(model, batch, cpu, no_amp, len(batch["ids"]))

    rows = []
    for flush in (False, True, False, True):
        torch.set_flush_denormal(flush)
        step()  # warm-up
        start = time.perf_counter()
        for _ in range(args.repeats):
            step()
        rows.append({"flush_denormal": flush,
                     "seconds_per_step": (time.perf_counter() - start) / args.repeats})
        print(f"flush_denormal={flush}: {rows[-1]['seconds_per_step']:.2f} s per step", flush=True)
    audio = sum(float(e["duration"]) for e in dataset.entries)
    print(json.dumps({"rows": rows, "audio_s": round(audio, 2)}))


if __name__ == "__main__":
    main()
