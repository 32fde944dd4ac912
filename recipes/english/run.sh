#!/usr/bin/env bash
# English for people: a model trained on a mix of synthesisers and real acted speech.
# Training speech: espeak-ng, MBROLA, RHVoice and Piper voices saying training-book text
# (`--hours` sets the synthetic part) and the Ur-Quan Masters actors not held out; each
# source's held-out part is evaluated separately: synth-test (espeak-ng, unseen voices and
# books), uqm-test (four actors training never heard) and librivox (real read speech).
# Augmentation on the fly: speed, noise (coloured and babble), reverberation, telephone
# band, gain. The LM is trained on the training books and the training actors' lines.
#
#   bash recipes/english/run.sh [--stage N] [--stop-stage N] [--hours H] [--epochs N] [--nj N] [--device cpu|cuda]
#
# Install first (once, as root): bash ../../scripts/install_voices.sh  (missing optional
# engines are reported and left out; the UQM packages are required.)
# On a GPU, for example: --hours 40 --size medium --epochs 15 --batch-seconds 600 --device cuda
#
# Stages: 0 data: data/{train,dev}.jsonl (synth + uqm), data/{synth-test,uqm-test,librivox}.jsonl,
#           data/lm_train.txt; 1 train exp/; 2 LM exp/lm/lm.arpa; 3 tune its weights on dev;
#         4 decode every set greedy and with the LM; 5 score: exp/results.json;
#         6 compare with the synth recipe's model and pocketsphinx: exp/compare/compare.md
# The final model is exp/best.pt with its LM exp/lm/lm.arpa (`asr transcribe --model exp/best.pt`).
set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=6
nj=$(nproc)
device=auto
ngpu=1
epochs=5
size=small
hours=5.5  # synthetic training speech, shared out below; the UQM training actors add ~8 h
decoder=auto
beam_size=10
lm_order=3
batch_seconds=60
subsampling_factor=3
lr=3e-3
augment="speed=0.5,noise=0.4,reverb=0.3,telephone=0.15,gain=0.5"
specaugment="--freq-mask 15 --n-freq-masks 1 --time-mask 20 --n-time-masks 1"
uqm_dir=/usr/share/games/uqm/content  # the game's content folder (install_voices.sh says)
synth_model=../synth/exp/best.pt  # the espeak-only model compared against in stage 6
sets="dev synth-test uqm-test librivox"
. ../lib.sh

prepare() {
  # espeak-ng 55%, MBROLA and RHVoice 18% each, Piper 9% of the synthetic hours
  local engine_hours
  engine_hours=$(python3 -c "h=$hours; print(f'mbrola={h*.18:.3g},rhvoice={h*.18:.3g},piper={h*.09:.3g}')")
  asr prepare synth --out data/synth --hours "$(python3 -c "print(f'{$hours*.55:.3g}')")" \
    --engine-hours "$engine_hours" --jobs "$nj"
  asr prepare uqm --out data/uqm --data-dir "$uqm_dir"
  asr prepare librivox --out data/librivox
  cat data/synth/train.jsonl data/uqm/train.jsonl > data/train.jsonl
  cat data/synth/dev.jsonl data/uqm/dev.jsonl > data/dev.jsonl
  cp data/synth/test.jsonl data/synth-test.jsonl
  cp data/uqm/test.jsonl data/uqm-test.jsonl
  cp data/librivox/test.jsonl data/librivox.jsonl
  cat data/synth/lm_train.txt data/uqm/lm_train.txt > data/lm_train.txt
}

train() {
  asr_train --train data/train.jsonl --dev data/dev.jsonl --exp-dir exp --size "$size" \
    --epochs "$epochs" --max-batch-seconds "$batch_seconds" --lr "$lr" --device "$device" \
    --subsampling stack --subsampling-factor "$subsampling_factor" --resume --num-workers 1 \
    --augment "$augment" $specaugment
}

lm() { asr lm build data/lm_train.txt --order "$lm_order" --out exp/lm/lm.arpa; }

tune() {
  asr tune-lm --model exp/best.pt --manifest data/dev.jsonl --lm exp/lm/lm.arpa \
    --beam-size "$beam_size" --device "$device" | tee exp/lm/tune.md
}

decode_both() { decode greedy -greedy; decode "$decoder"; }

compare() {
  python ../../scripts/compare_english.py --models synth="$synth_model" english=exp/best.pt \
    --sets synth-test=data/synth-test.jsonl uqm-test=data/uqm-test.jsonl librivox=data/librivox.jsonl \
    --device "$device" --out-dir exp/compare
}

run_stage 0 - prepare  # each corpus returns at once when made with the same options
run_stage 1 exp/.train.done train
run_stage 2 exp/.lm.done lm
run_stage 3 exp/.tune.done tune
run_stage 4 exp/.decode.done decode_both
run_stage 5 exp/.score.done score "" -greedy
run_stage 6 exp/compare/compare.md compare
