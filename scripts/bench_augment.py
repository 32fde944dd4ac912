"""Augmentation cost: each augmentation alone and the recipe mix, against loading without augmentation.

    python scripts/bench_augment.py                   # 50 utterances of 3-8 s
    python scripts/bench_augment.py --utterances 200 --repeats 3

Writes synthetic utterances (voiced harmonics and noise, 16 kHz, 16-bit wav) to a temporary
folder, then on one thread, for each setting, reads every file with `asr.audio.load_audio`
and augments it with a generator seeded by (seed, utterance), as a training loader does:
  none        load_audio only: the named alternative every ratio is relative to
  speed, reverb, telephone, gain, noise-babble, noise-coloured
              one augmentation with probability 1 (babble talkers: the same utterances)
  recipe      the `robust` preset, recipes/english's: speed=0.5,noise=0.4,reverb=0.3,telephone=0.15,gain=0.5
Each setting runs `--repeats` passes and keeps the fastest (the first pass also fills the
babble cache). The room impulse response bank is simulated before timing; its build time is
reported on its own. Prints a table, then one JSON line: {"rows": [{"setting", "aug_ms_per_s",
"load_ms_per_s", "x_realtime", "throughput_vs_none"}], "rir_bank_s", "audio_s", "utterances"}.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from asr.audio import load_audio, save_audio
from asr.augment import PRESETS, AugmentConfig, Augmenter

RATE = 16000
SETTINGS = {
    "none": AugmentConfig(),
    "speed": AugmentConfig(speed_prob=1.0),
    "reverb": AugmentConfig(reverb_prob=1.0),
    "noise-babble": AugmentConfig(noise_prob=1.0, babble_share=1.0),
    "noise-coloured": AugmentConfig(noise_prob=1.0, babble_share=0.0),
    "telephone": AugmentConfig(telephone_prob=1.0),
    "gain": AugmentConfig(gain_prob=1.0),
    "recipe": AugmentConfig.parse(PRESETS["robust"]),
}


def make_utterances(folder: Path, n: int, seed: int) -> tuple[list[str], float]:
    """`n` wav files of 3-8 s: syllable-rate voiced harmonics over a little noise."""
    rng = np.random.default_rng(seed)
    paths, total = [], 0.0
    for i in range(n):
        seconds = rng.uniform(3.0, 8.0)
        t = np.arange(int(seconds * RATE)) / RATE
        f0 = rng.uniform(90, 220) * (1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.3, 1.0) * t))
        phase = 2 * np.pi * np.cumsum(f0) / RATE
        voiced = sum(np.sin(k * phase) / k for k in range(1, 25))
        envelope = np.sin(2 * np.pi * rng.uniform(3, 5) * t) ** 2
        wave = 0.1 * envelope * voiced + 0.01 * rng.standard_normal(t.size)
        paths.append(str(folder / f"utt{i:04d}.wav"))
        save_audio(paths[-1], wave, RATE)
        total += seconds
    return paths, total


def one_pass(augmenter: Augmenter, paths: list[str], seed: int) -> tuple[float, float]:
    """Seconds spent loading and augmenting every file once."""
    load = aug = 0.0
    for i, path in enumerate(paths):
        start = time.perf_counter()
        wave = load_audio(path, RATE)
        mid = time.perf_counter()
        out = augmenter(wave, np.random.default_rng([seed, i]))
        aug += time.perf_counter() - mid
        load += mid - start
        assert torch.isfinite(out).all()
    return load, aug


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--utterances", type=int, default=50)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        paths, audio_s = make_utterances(Path(tmp), args.utterances, args.seed)
        start = time.perf_counter()
        Augmenter(SETTINGS["reverb"], RATE, seed=args.seed).rirs  # noqa: B018 (builds the bank)
        rir_bank_s = time.perf_counter() - start
        rows = []
        for name, config in SETTINGS.items():
            augmenter = Augmenter(config, RATE, babble_paths=paths, seed=args.seed)
            load, aug = min((one_pass(augmenter, paths, args.seed) for _ in range(args.repeats)),
                            key=sum)
            rows.append({"setting": name, "aug_ms_per_s": round(1000 * aug / audio_s, 3),
                         "load_ms_per_s": round(1000 * load / audio_s, 3),
                         "x_realtime": round(audio_s / (load + aug), 1)})
    base = rows[0]["x_realtime"]
    for row in rows:
        row["throughput_vs_none"] = round(row["x_realtime"] / base, 3)
    print(f"{args.utterances} utterances, {audio_s:.0f} s of audio, 1 thread; "
          f"RIR bank (24 rooms) simulated in {rir_bank_s:.1f} s\n")
    print("| setting        | augment ms per s audio | load ms per s | x realtime | throughput vs none |")
    print("|----------------|-----------------------:|--------------:|-----------:|-------------------:|")
    for r in rows:
        print(f"| {r['setting']:<14} | {r['aug_ms_per_s']:22.2f} | {r['load_ms_per_s']:13.2f} "
              f"| {r['x_realtime']:10,.0f} | {r['throughput_vs_none']:18.3f} |")
    summary = {"rows": rows, "rir_bank_s": round(rir_bank_s, 2), "audio_s": round(audio_s, 1),
               "utterances": args.utterances, "seed": args.seed}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
