#!/usr/bin/env bash
# LibriSpeech (openslr.org/12): read English audiobooks, 16 kHz; 960 h of training speech in
# train-clean-100, train-clean-360 and train-other-500; dev-clean/other, test-clean/other to score.
#
#   bash recipes/librispeech/run.sh [--stage N] [--stop-stage N] [--data-root DIR] [--download false]
#     [--train-parts "train-clean-100 ..."] [--size S] [--epochs N] [--device cpu|cuda] [--ngpu N]
#     [--tokenizer chars|sentencepiece] [--base-url URL]
#
# Stage 0 downloads the parts DIR lacks (--data-root, default download/ beside data/ and exp/, so
# deleting those never downloads again) from --base-url (default openslr.org; mirrors
# https://us.openslr.org/resources/12, https://openslr.elda.org/resources/12), after checking the free
# disk space: a cut download resumes, each archive is checked against its official md5 (a wrong one is
# fetched again once), and a .complete marker beside it means done. A DIR that already holds
# LibriSpeech/<part>/ (a local copy) is read as it is; --download false never fetches. A relative DIR
# is taken from the folder run.sh was started in; --remove-archives true deletes each archive once
# unpacked. `librispeech-lm-norm.txt` (openslr.org/11) in DIR becomes the LM text; without it the LM
# learns the training transcripts. That file holds 40 M sentences and `asr lm build` counts in
# memory: --lm-max-sentences N builds from its first N (not yet measured at that scale).
# A run on the CPU, to see it work: --train-parts train-clean-100 --size tiny --epochs 1
# (still 7.7 GB to download with the dev and test parts); on GPUs, for example (not yet measured here):
#   --size medium --epochs 20 --batch-seconds 1200 --nj 16 --device cuda [--ngpu 8]
#
# Stages: 0 data: download, data/<part>.jsonl for the --train-parts and the dev and test parts,
#           data/train.jsonl (the training parts combined), data/lm_train.txt,
#         1 word n-gram LM exp/lm/lm.arpa, 2 train exp/ (dev-clean picks the best epoch),
#         3 tune the LM weights on dev-clean (saved in exp/best.pt), 4 decode each of $sets with
#           the LM, 5 score: exp/results.json, 6 exp/RESULTS.md (environment, sclite's table per set,
#           WER with its 95% CI, RTFx), 7 export exp/best.pt with its LM to exp/model/.
# The final model is exp/best.pt, released as exp/model/. Delete data/ and exp/ to start again.
set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=7
nj=$(nproc)
device=auto
ngpu=1  # > 1: data-parallel training on that many GPUs (torchrun)
data_root=""  # default: download/ here
download=true  # false: DIR must hold LibriSpeech/<part>/ already
base_url=https://www.openslr.org/resources/12
md5sums=""  # an md5sum.txt for archives at --base-url that are not the official ones
remove_archives=false  # true: delete each archive once unpacked (its markers keep it from coming again)
train_parts="train-clean-100 train-clean-360 train-other-500"
sets="dev-clean dev-other test-clean test-other"  # decoded and scored
epochs=12
size=medium
decoder=auto  # beam search with the LM tuned in stage 3
beam_size=10
lm_order=3
lm_max_sentences=0  # > 0: the LM learns only the first N sentences of data/lm_train.txt
batch_seconds=300
subsampling_factor=3  # 30 ms frames: characters of read speech fit
tokenizer=chars  # or sentencepiece (with --subsampling-factor 4)
vocab_size=256  # sentencepiece pieces
lr=2e-3
. ../lib.sh  # options, run_stage, and the shared decode and score stages

here=$(pwd)
if [ -z "$data_root" ]; then
  data_root=$here/download
  mkdir -p "$data_root" && echo '*' > "$data_root/.gitignore"  # gigabytes git should not list
else
  data_root=$(cd "$OLDPWD" && realpath -m -- "$data_root")
fi
# where the archives come from, not what they hold: set here, outside the stages' recorded options
fetch=()
if [ "$download" = true ]; then fetch=(--download --base-url "$base_url"); fi
if [ -n "$md5sums" ]; then fetch+=(--md5sums "$(cd "$OLDPWD" && realpath -m -- "$md5sums")"); fi
if [ "$remove_archives" = true ]; then fetch+=(--remove-archives); fi

prepare() {
  local parts="$train_parts dev-clean $sets"
  # shellcheck disable=SC2086  # $parts and $train_parts are lists
  asr prepare librispeech --out data --data-root "$data_root" --parts $parts --jobs "$nj" "${fetch[@]}"
  # shellcheck disable=SC2046
  asr combine data/train.jsonl $(printf 'data/%s.jsonl ' $train_parts)
}

lm() {
  if [ "$lm_max_sentences" -gt 0 ]; then
    head -n "$lm_max_sentences" data/lm_train.txt | asr lm build - --order "$lm_order" --out exp/lm/lm.arpa
  else
    asr lm build data/lm_train.txt --order "$lm_order" --out exp/lm/lm.arpa
  fi
}

train() {
  asr_train --train data/train.jsonl --dev data/dev-clean.jsonl --exp-dir exp --size "$size" \
    --epochs "$epochs" --max-batch-seconds "$batch_seconds" --lr "$lr" --device "$device" \
    --subsampling stack --subsampling-factor "$subsampling_factor" --resume --num-workers 1 \
    --tokenizer "$tokenizer" --vocab-size "$vocab_size"
}

tune() {
  asr tune-lm --model exp/best.pt --manifest data/dev-clean.jsonl --lm exp/lm/lm.arpa \
    --beam-size "$beam_size" --device "$device" | tee exp/lm/tune.md
}

report() {
  # shellcheck disable=SC2086  # $sets is a list
  asr results exp --model "$here/exp/best.pt" --sets $sets --markdown exp/RESULTS.md
}

release() { asr export exp/best.pt --out exp/model; }

run_stage 0 - prepare  # a no-op when data/ holds the parts made from the same copy
run_stage 1 exp/.lm.done lm
run_stage 2 exp/.train.done train
run_stage 3 exp/.tune.done tune
run_stage 4 exp/.decode.done decode
run_stage 5 exp/.score.done score
run_stage 6 - report  # always: it reads the scores
run_stage 7 - release  # always: exp/model follows exp/best.pt
