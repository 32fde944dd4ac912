#!/usr/bin/env bash
# Open-vocabulary English: World English Bible sentences spoken by espeak-ng voices.
# Dev and test use held-out voices AND held-out books (unseen text). `--hours N` sets
# the training-set size (default 4 h for a 2-core CPU; use >= 50 on a GPU).
#
#   bash recipes/synth/run.sh [--stage N] [--stop-stage N] [--hours H] [--nj N] [--device cpu|cuda] [--ngpu N]
#     [--onnx true]
#
# On GPUs, for example (not yet measured here):
#   bash recipes/synth/run.sh --hours 50 --size medium --epochs 10 --batch-seconds 1200 --nj 16
#   with `--ngpu 8` for data-parallel training on 8 GPUs.
#
# Stages: 0 synthesise data/ (train voices differ from dev and test voices) and
#           data/lm_train.txt (the training books' text: never dev or test text),
#         1 train exp/, 2 build a word n-gram LM exp/lm/lm.arpa from data/lm_train.txt,
#         3 tune its weights on dev (saved in exp/best.pt), 4 decode dev and test with
#           the LM (beam search) and, for comparison, greedy, 5 score: exp/results.json,
#         6 benchmark WER and speed of both decoders (exp/benchmark/benchmark.{md,json,png}),
#         7 export the final model with its tuned LM to exp/model/ (config.json,
#           model.safetensors, lm.arpa; with --onnx true also model.onnx): `--model exp/model`.
# The final model is exp/best.pt, released as exp/model/. Delete data/ and exp/ to start again.
set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=7
nj=$(nproc)
device=auto
ngpu=1  # > 1: data-parallel training on that many GPUs (torchrun)
epochs=6
size=small
hours=4
decoder=auto  # beam search with the LM tuned in stage 3
beam_size=10
lm_order=3
batch_seconds=50
subsampling_factor=3  # 30 ms frames: characters at 200 words/min still fit (pieces: 4)
tokenizer=chars  # or sentencepiece: --tokenizer sentencepiece --vocab-size 256 --subsampling-factor 4
vocab_size=256  # sentencepiece pieces
lr=3e-3
# light SpecAugment: a 20-minute CPU run underfits, so strong masking only slows it down
augment="--freq-mask 15 --n-freq-masks 1 --time-mask 20 --n-time-masks 1"
onnx=false  # true: the exported model also gets model.onnx (needs the onnx extra)
. ../lib.sh  # options, run_stage, and the shared decode and score stages

prepare() { asr prepare synth --out data --hours "$hours" --jobs "$nj"; }

train() {
  asr_train --train data/train.jsonl --dev data/dev.jsonl --exp-dir exp --size "$size" \
    --epochs "$epochs" --max-batch-seconds "$batch_seconds" --lr "$lr" --device "$device" \
    --subsampling stack --subsampling-factor "$subsampling_factor" --resume --num-workers 1 \
    --tokenizer "$tokenizer" --vocab-size "$vocab_size" \
    $augment
}

lm() { asr lm build data/lm_train.txt --order "$lm_order" --out exp/lm/lm.arpa; }

tune() {
  asr tune-lm --model exp/best.pt --manifest data/dev.jsonl --lm exp/lm/lm.arpa \
    --beam-size "$beam_size" --device "$device" | tee exp/lm/tune.md
}

decode_both() { decode greedy -greedy; decode "$decoder"; }

benchmark() {
  asr benchmark --models exp/best.pt --names synth --sets data/dev.jsonl data/test.jsonl \
    --decoders "$decoder" greedy --beam-size "$beam_size" --device "$device" --out-dir exp/benchmark
}

release() { asr export exp/best.pt --out exp/model $([ "$onnx" = true ] && echo --onnx); }

run_stage 0 - prepare  # a no-op when data/ holds a corpus made with the same options
run_stage 1 exp/.train.done train
run_stage 2 exp/.lm.done lm
run_stage 3 exp/.tune.done tune
run_stage 4 exp/.decode.done decode_both
run_stage 5 exp/.score.done score "" -greedy
run_stage 6 exp/benchmark/benchmark.md benchmark
run_stage 7 - release  # always: exp/model follows exp/best.pt
