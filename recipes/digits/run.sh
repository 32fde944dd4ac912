#!/usr/bin/env bash
# Connected digits (like TIDIGITS) on synthetic espeak-ng speech; runs on a laptop CPU.
#
#   bash recipes/digits/run.sh [--stage N] [--stop-stage N] [--nj N] [--device cpu|cuda] [--ngpu N] [--onnx true]
#
# Stages: 0 synthesise data/ (train voices differ from dev and test voices),
#         1 train exp/, 2 decode dev and test, 3 score and write exp/results.json,
#         4 export the final model to exp/model/ (config.json, model.safetensors; with
#           --onnx true also model.onnx), loadable without pickle: `asr transcribe --model exp/model`.
# The final model is exp/best.pt, released as exp/model/. Delete data/ and exp/ to start again.
set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=4
nj=$(nproc)
device=auto
ngpu=1  # > 1: data-parallel training on that many GPUs (torchrun)
epochs=18
size=tiny
decoder=greedy
batch_seconds=50
subsampling_factor=3  # 30 ms frames: characters at 200 words/min still fit
lr=3e-3
onnx=false  # true: the exported model also gets model.onnx (needs the onnx extra)
. ../lib.sh  # options, run_stage, and the shared decode and score stages

release() { asr export exp/best.pt --out exp/model $([ "$onnx" = true ] && echo --onnx); }

prepare() { asr prepare digits --out data --jobs "$nj"; }

train() {
  asr_train --train data/train.jsonl --dev data/dev.jsonl --exp-dir exp --size "$size" \
    --epochs "$epochs" --max-batch-seconds "$batch_seconds" --lr "$lr" --device "$device" \
    --subsampling stack --subsampling-factor "$subsampling_factor" --resume --num-workers 1
}

run_stage 0 - prepare  # a no-op when data/ holds a corpus made with the same options
run_stage 1 exp/.train.done train
run_stage 2 exp/.decode.done decode
run_stage 3 exp/.score.done score
run_stage 4 - release  # always: exp/model follows exp/best.pt
