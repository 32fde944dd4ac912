#!/usr/bin/env bash
# Characters (x3) against sentencepiece pieces (x4) on the synth recipe's data (run
# `bash recipes/synth/run.sh --stop-stage 2` first): train each the same way, tune the LM
# weights on dev, decode dev and test greedy and with the LM, score. Pinned to one core
# (CORE, default 0) with one thread, so each training time is comparable.
#
#   [CORE=N] bash scripts/compare_units.sh [OUT_DIR] [NAME=FACTOR:VOCAB[:SUBSAMPLING[:LAYERS]]] ...]
#   (default: recipes/synth/exp-units, chars3=3:0 sp48=4:48; VOCAB 0: characters;
#   SUBSAMPLING stack, the default, or conv; LAYERS: recurrent layers, default 3)
#
# A run stopped midway goes on from its last checkpoint when the same command is run again.
# EPOCHS (default 6) sets the training epochs of every run; DATA (default data, under
# recipes/synth) the data folder, e.g. one made by `asr prepare synth --out data12 --hours 12`.
#
# Prints one line per model: name, training seconds, dev/test WER greedy and with the LM.
set -euo pipefail
cd "$(dirname "$0")/.."
[ ! -x .venv/bin/asr ] || export PATH="$PWD/.venv/bin:$PATH"
out=$(realpath -m "${1:-recipes/synth/exp-units}")
shift || true
runs=("$@")
[ ${#runs[@]} -gt 0 ] || runs=(chars3=3:0 sp48=4:48)
cd recipes/synth
data=${DATA:-data}
export OMP_NUM_THREADS=1
core=${CORE:-0}
[ -f exp/lm/lm.arpa ] || asr lm build data/lm_train.txt --order 3 --out exp/lm/lm.arpa
wer() { python3 -c "import json,sys; print(f\"{100 * json.load(open(sys.argv[1]))['wer']:.2f}\")" "$1"; }
for run in "${runs[@]}"; do
  name=${run%%=*} spec=${run#*=}
  IFS=: read -r factor vocab subsampling layers <<< "$spec"
  subsampling=${subsampling:-stack} layers=${layers:-3}
  exp=$out/$name
  mkdir -p "$exp"
  units=()
  [ "$vocab" = 0 ] || units=(--tokenizer sentencepiece --vocab-size "$vocab")
  taskset -c "$core" asr train --train "$data/train.jsonl" --dev "$data/dev.jsonl" --exp-dir "$exp" --size small \
    --num-layers "$layers" --epochs "${EPOCHS:-6}" --max-batch-seconds 50 --lr 3e-3 --device cpu --subsampling "$subsampling" \
    --subsampling-factor "$factor" --num-workers 1 --freq-mask 15 --n-freq-masks 1 --time-mask 20 \
    --n-time-masks 1 --resume --save-every-steps 500 "${units[@]}" >> "$exp/train.out" 2>&1
  # the epochs' logged seconds: a run stopped and started again (it resumes) counts its epochs once
  seconds=$(awk '/epoch [0-9]+: train loss/ {t += substr($(NF-1), 2)} END {print t}' "$exp/train.out")
  taskset -c "$core" asr tune-lm --model "$exp/best.pt" --manifest "$data/dev.jsonl" --lm exp/lm/lm.arpa \
    --beam-size 10 --device cpu > "$exp/tune.md" 2> "$exp/tune.err"
  line="$name x$factor $subsampling $layers layers ${EPOCHS:-6} epochs: train ${seconds} s"
  for dec in greedy beam; do
    for set in dev test; do
      taskset -c "$core" asr decode --model "$exp/best.pt" --manifest "$data/$set.jsonl" --decoder $dec \
        --out "$exp/recogs-$set-$dec.jsonl" --device cpu 2>> "$exp/decode.err"
      asr score "$data/$set.jsonl" "$exp/recogs-$set-$dec.jsonl" --json > "$exp/wer-$set-$dec.json"
      line+=", $set $dec $(wer "$exp/wer-$set-$dec.json")"
    done
  done
  echo "$line" | tee -a "$out/summary.txt"
done
