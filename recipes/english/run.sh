#!/usr/bin/env bash
# English for people: a model trained on a mix of synthesisers and real acted speech.
# Training speech: espeak-ng, MBROLA, RHVoice and Piper voices saying training-book text
# (`--hours` sets the synthetic part) and the Ur-Quan Masters actors not held out; each
# source's held-out part is evaluated separately: synth-test (espeak-ng, unseen voices and
# books), uqm-test (four actors training never heard: their clips of at most 20 s;
# uqm-test-all adds the pieces of their longer clips) and librivox (real read speech).
# Augmentation on the fly: speed, noise (coloured and babble), reverberation, telephone
# band, gain. The LM is trained on the training books and the training actors' lines.
#
#   bash recipes/english/run.sh [--stage N] [--stop-stage N] [--hours H] [--epochs N] [--nj N] [--device cpu|cuda]
#     [--uqm-dir DIR] [--librivox-dir DIR]  (where install_voices.sh put them without root) [--onnx true]
#
# Install first (once, as root): bash ../../scripts/install_voices.sh  (missing optional
# engines are reported and left out; the UQM packages are required.)
# On a GPU, for example: --hours 40 --size medium --epochs 15 --batch-seconds 600 --device cuda
#
# Stages: 0 data: data/{train,dev}.jsonl (synth + uqm), data/<set>.jsonl for each test set,
#           data/lm_train.txt; 1 pretrain exp/pretrain/ on the synthetic part alone (clean,
#           short utterances: CTC learns to align there in minutes, where on the whole mix
#           it sat on its blank-only plateau for a whole epoch); 2 train exp/ on the mix with
#           augmentation, from the pretrained model; 3 LM exp/lm/lm.arpa; 4 tune its weights
#           on dev; 5 decode every set greedy and with the LM; 6 score: exp/results.json;
#         7 compare with the synth recipe's model and pocketsphinx: exp/compare/compare.md,
#         8 export the final model with its tuned LM to exp/model/ (config.json,
#           model.safetensors, lm.arpa; with --onnx true also model.onnx)
# The final model is exp/best.pt with its LM exp/lm/lm.arpa, released together as exp/model/
# (`asr transcribe --model exp/model`).
set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=8
nj=$(nproc)
device=auto
ngpu=1
pretrain_epochs=2
epochs=8
size=small
hours=5.5  # synthetic training speech, shared out below; the UQM training actors add ~8 h
decoder=auto
beam_size=10
lm_order=3
batch_seconds=50  # on a CPU a step costs in proportion to its audio: small batches, more updates
subsampling_factor=3
lr=3e-3
cmvn=utterance  # remove each utterance's own mean: a clip's gain and channel reach the model less
augment=robust  # speed=0.5,noise=0.4,reverb=0.3,telephone=0.15,gain=0.5 (asr.augment)
specaugment="--freq-mask 15 --n-freq-masks 1 --time-mask 20 --n-time-masks 1"
uqm_dir=/usr/share/games/uqm/content  # the game's content folder (install_voices.sh says)
librivox_dir=/usr/share/pocketsphinx/test/data  # pocketsphinx-testdata's data folder
synth_model=../synth/exp/best.pt  # the espeak-only model compared against in stage 7
sets="dev synth-test uqm-test uqm-test-all librivox"
onnx=false  # true: the exported model also gets model.onnx (needs the onnx extra)
. ../lib.sh

prepare() {
  # espeak-ng 55%, MBROLA and RHVoice 18% each, Piper 9% of the synthetic hours
  share() { awk -v h="$hours" -v s="$1" 'BEGIN { printf "%.3g", h * s }'; }
  asr prepare synth --out data/synth --hours "$(share .55)" --jobs "$nj" \
    --engine-hours "mbrola=$(share .18),rhvoice=$(share .18),piper=$(share .09)"
  asr prepare uqm --out data/uqm --data-dir "$uqm_dir"
  asr prepare librivox --out data/librivox --data-dir "$librivox_dir"
  asr combine data/train.jsonl data/synth/train.jsonl data/uqm/train.jsonl
  asr combine data/dev.jsonl data/synth/dev.jsonl data/uqm/dev.jsonl
  asr combine data/synth-test.jsonl data/synth/test.jsonl
  asr combine data/uqm-test.jsonl data/uqm/test_clips.jsonl
  asr combine data/uqm-test-all.jsonl data/uqm/test.jsonl
  asr combine data/librivox.jsonl data/librivox/test.jsonl
  cat data/synth/lm_train.txt data/uqm/lm_train.txt > data/lm_train.txt
}

# train_on EXP_DIR EPOCHS ARGS...: the recipe's model and training options, and ARGS
train_on() {
  asr_train --exp-dir "$1" --epochs "$2" --size "$size" --max-batch-seconds "$batch_seconds" \
    --lr "$lr" --device "$device" --subsampling stack --subsampling-factor "$subsampling_factor" \
    --resume --num-workers 1 --cmvn "$cmvn" $specaugment "${@:3}"
}

pretrain() { train_on exp/pretrain "$pretrain_epochs" --train data/synth/train.jsonl --dev data/synth/dev.jsonl; }

train() {
  train_on exp "$epochs" --train data/train.jsonl --dev data/dev.jsonl \
    --init-from exp/pretrain/best.pt --augment "$augment"
}

lm() { asr lm build data/lm_train.txt --order "$lm_order" --out exp/lm/lm.arpa; }

tune() {
  asr tune-lm --model exp/best.pt --manifest data/dev.jsonl --lm exp/lm/lm.arpa \
    --beam-size "$beam_size" --device "$device" | tee exp/lm/tune.md
}

decode_both() { decode greedy -greedy; decode "$decoder"; }

compare() {
  if [ -f exp/compare/.done ]; then log "stage 7: done already (exp/compare/.done)"; return; fi
  if [ ! -f "$synth_model" ]; then
    log "stage 7: no $synth_model (run recipes/synth first, or pass --synth-model); comparing without it"
  fi
  python ../../scripts/compare_english.py --models synth="$synth_model" english=exp/best.pt \
    --sets synth-test=data/synth-test.jsonl uqm-test=data/uqm-test.jsonl librivox=data/librivox.jsonl \
    --device "$device" --jobs "$nj" --out-dir exp/compare
  if [ -f "$synth_model" ]; then touch exp/compare/.done; fi  # else rerun once it exists
}

release() { asr export exp/best.pt --out exp/model $([ "$onnx" = true ] && echo --onnx); }

run_stage 0 - prepare  # each corpus returns at once when made with the same options
run_stage 1 exp/pretrain/.done pretrain
run_stage 2 exp/.train.done train
run_stage 3 exp/.lm.done lm
run_stage 4 exp/.tune.done tune
run_stage 5 exp/.decode.done decode_both
run_stage 6 exp/.score.done score "" -greedy
run_stage 7 - compare  # done once it has compared with the synth model
run_stage 8 - release  # always: exp/model follows exp/best.pt
