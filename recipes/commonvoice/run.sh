#!/usr/bin/env bash
# Mozilla Common Voice: real crowd-sourced read speech, one language of a downloaded release
# (https://commonvoice.mozilla.org/datasets; unpack it and give its language folder).
#
#   bash recipes/commonvoice/run.sh --data-root DIR [--stage N] [--stop-stage N] [--size S]
#     [--epochs N] [--nj N] [--device cpu|cuda] [--ngpu N] [--tokenizer chars|sentencepiece]
#
# DIR holds the release's train.tsv, dev.tsv, test.tsv and clips/*.mp3 (e.g. cv-corpus-17.0/en);
# a relative DIR is taken from the folder run.sh was started in.
#
# Stages: 0 manifests data/{train,dev,test}.jsonl (clips stay in DIR; missing or unreadable
#           ones are listed in data/skipped.jsonl) and data/lm_train.txt (train sentences only),
#         1 build a word n-gram LM exp/lm/lm.arpa, 2 train exp/, 3 tune the LM weights on dev
#           (saved in exp/best.pt), 4 decode $sets (default dev and test) with the LM,
#         5 score: exp/results.json, 6 export exp/best.pt with its LM to exp/model/.
# The final model is exp/best.pt, released as exp/model/. Delete data/ and exp/ to start again.
set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=6
nj=$(nproc)
device=auto
ngpu=1  # > 1: data-parallel training on that many GPUs (torchrun)
data_root=""  # required: the release's language folder
splits="train dev test"
min_votes=0  # keep clips with at least this many up-votes (the release's splits are validated)
sets="dev test"  # decoded and scored
epochs=10
size=small
decoder=auto  # beam search with the LM tuned in stage 3
beam_size=10
lm_order=3
batch_seconds=50
subsampling_factor=3  # 30 ms frames: characters at 200 words/min still fit
tokenizer=chars  # or sentencepiece (with --subsampling-factor 4)
vocab_size=256  # sentencepiece pieces
lr=3e-3
. ../lib.sh  # options, run_stage, and the shared decode and score stages

if [ -z "$data_root" ]; then
  echo "$0: --data-root DIR is required: the Common Voice language folder (DIR/train.tsv, DIR/clips/)" >&2
  exit 2
fi
data_root=$(cd "$OLDPWD" && realpath -m -- "$data_root")  # relative to where run.sh was started

prepare() {
  # shellcheck disable=SC2086  # $splits is a list
  asr prepare commonvoice --out data --data-root "$data_root" --splits $splits \
    --min-votes "$min_votes" --jobs "$nj"
}

lm() { asr lm build data/lm_train.txt --order "$lm_order" --out exp/lm/lm.arpa; }

train() {
  asr_train --train data/train.jsonl --dev data/dev.jsonl --exp-dir exp --size "$size" \
    --epochs "$epochs" --max-batch-seconds "$batch_seconds" --lr "$lr" --device "$device" \
    --subsampling stack --subsampling-factor "$subsampling_factor" --resume --num-workers 1 \
    --tokenizer "$tokenizer" --vocab-size "$vocab_size"
}

tune() {
  asr tune-lm --model exp/best.pt --manifest data/dev.jsonl --lm exp/lm/lm.arpa \
    --beam-size "$beam_size" --device "$device" | tee exp/lm/tune.md
}

release() { asr export exp/best.pt --out exp/model; }

run_stage 0 - prepare  # a no-op when data/ holds manifests made with the same options
run_stage 1 exp/.lm.done lm
run_stage 2 exp/.train.done train
run_stage 3 exp/.tune.done tune
run_stage 4 exp/.decode.done decode
run_stage 5 exp/.score.done score
run_stage 6 - release  # always: exp/model follows exp/best.pt
