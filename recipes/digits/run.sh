#!/usr/bin/env bash
# Connected digits (like TIDIGITS) on synthetic espeak-ng speech; runs on a laptop CPU.
#
#   bash recipes/digits/run.sh [--stage N] [--stop-stage N] [--nj N] [--device cpu|cuda] [--ngpu N] [--onnx true]
#   bash recipes/digits/run.sh --stage 10 --stop-stage 10 [--sweep-trials N] [--sweep-workers N]
#
# Stages: 0 synthesise data/ (train voices differ from dev and test voices),
#         1 train exp/, 2 decode dev and test, 3 score and write exp/results.json,
#         4 export the final model to exp/model/ (config.json, model.safetensors; with
#           --onnx true also model.onnx), loadable without pickle: `asr transcribe --model exp/model`.
#         10 (only when asked) a hyperparameter sweep, exp/sweep/: `asr sweep` with TPE and median
#           pruning over the preset `lstm` space, the recipe's own settings as its first trial, each
#           trial --sweep-epochs epochs; --sweep-workers single-threaded processes share the study.
#           Budget: 16 trials of at most 6 epochs, 2 workers, within 40 minutes on a 2-core CPU.
#           Results: exp/sweep/results.md (table, importances, the best trial's `asr train`
#           command), its PNG plots and exp/sweep/best.pt. A killed sweep resumes when run again.
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
sweep_trials=16
sweep_workers=2  # processes sharing the study, one core each
sweep_epochs=6
sweep_space=lstm  # a preset of asr.sweep, or a .json/.toml search space
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

sweep() {
  local workers=()
  mkdir -p exp/sweep
  for _ in $(seq "$sweep_workers"); do
    OMP_NUM_THREADS=1 asr sweep --train data/train.jsonl --dev data/dev.jsonl --exp-dir exp/sweep \
      --size "$size" --epochs "$sweep_epochs" --max-batch-seconds "$batch_seconds" --lr "$lr" \
      --device "$device" --subsampling stack --subsampling-factor "$subsampling_factor" \
      --num-workers 0 --space "$sweep_space" --trials "$sweep_trials" --sampler tpe \
      --pruner median > "exp/sweep/worker-${#workers[@]}.log" 2>&1 &
    workers+=($!)
    while [ ! -f exp/sweep/sweep.db ] && kill -0 "$!" 2>/dev/null; do sleep 1; done  # the study
  done
  local failed=0 i
  for i in "${!workers[@]}"; do
    wait "${workers[$i]}" || { failed=1; log "sweep worker $i failed: $(tail -n 1 "exp/sweep/worker-$i.log")" \
      "(whole log: exp/sweep/worker-$i.log)"; }
  done
  [ "$failed" = 0 ] && cat exp/sweep/results.md
}

run_stage 10 exp/sweep/.done sweep
