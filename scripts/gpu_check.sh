#!/usr/bin/env bash
# The GPU figures the project owes, in one command, on a machine with a CUDA GPU and no
# network, in at most 8 minutes:
#
#   bash scripts/gpu_check.sh [--out DIR] [--wheels DIR] [--smoke]
#
#   1. pytest -m gpu                                                    -> pytest_gpu.txt
#   2. a short synth-recipe run on the GPU: espeak-ng speech synthesised there, `asr train`
#      end to end (data loading and dev decoding included): audio-hours per GPU-hour and dev WER
#                                                                       -> train.txt
#   3. scripts/bench_train.py: ours against the reference, `large`, x4 pieces and x2 characters:
#      audio-hours per GPU-hour, MFU, peak memory                       -> bench_train.txt
#   4. scripts/bench_decode.py --device cuda: beam search with an LM on the GPU against
#      flashlight on the CPU, with step 2's model and an LM of its text -> bench_decode.txt
#
# Prints one table (also OUT/summary.md) and a JSON line (also OUT/summary.json); OUT defaults to
# gpu_check/. --wheels DIR installs the wheels in DIR first (`bash scripts/gpu_wheels.sh` fetches
# them here into .whl/, to carry there). --smoke runs every step on the CPU with tiny sizes, in a
# few minutes: what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
out=gpu_check wheels="" smoke=false
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --wheels) wheels=$2; shift 2 ;;
    --smoke) smoke=true; shift ;;
    *) echo "gpu_check.sh: unknown option $1; see the header of $0" >&2; exit 2 ;;
  esac
done
[ -x .venv/bin/python ] && python=.venv/bin/python || python=python3
if [ -n "$wheels" ]; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/gpu_check_site "$wheels"/*.whl
  export PYTHONPATH=/tmp/gpu_check_site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
mkdir -p "$out"
out=$(realpath "$out")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
asr() { "$python" -m asr.cli "$@"; }

if $smoke; then
  device=cpu hours=0.03 epochs=1 size=tiny batch=20 nj=2
  bench_train=(--device cpu --size tiny --steps 2 --warmup 1 --pool 200)
  bench_decode=(--device cpu --min-utterances 20 --beams 4 --decoders greedy beam flashlight
                --threads 1)
else
  device=cuda hours=2 epochs=4 size=small batch=200 nj=$(nproc)
  bench_train=()
  bench_decode=(--device cuda --decoders greedy beam flashlight --threads "$(nproc)")
fi

step() { echo "gpu_check: $*" >&2; }

step "1/4 pytest -m gpu"
"$python" -m pytest -m gpu -q -p no:cacheprovider tests > "$out/pytest_gpu.txt" 2>&1 \
  || [ $? -eq 5 ]  # 5: nothing collected

step "2/4 synth data ($hours h) and a $epochs-epoch training run on $device"
asr prepare synth --out "$work/data" --hours "$hours" --jobs "$nj" > "$work/prepare.txt" 2>&1
echo "start $(date +%s.%N)" > "$work/times.txt"
asr train --train "$work/data/train.jsonl" --dev "$work/data/dev.jsonl" --exp-dir "$work/exp" \
  --size "$size" --epochs "$epochs" --max-batch-seconds "$batch" --lr 3e-3 --device "$device" \
  --subsampling stack --subsampling-factor 3 --num-workers 4 --patience 100 > "$out/train.txt" 2>&1 \
  || { tail -5 "$out/train.txt" >&2; exit 1; }
echo "$(cat "$work/times.txt") end $(date +%s.%N)" >> "$out/train.txt"

step "3/4 bench_train.py"
"$python" scripts/bench_train.py "${bench_train[@]}" > "$out/bench_train.txt" 2> "$work/bench_train.err" \
  || { tail -5 "$work/bench_train.err" >&2; exit 1; }

step "4/4 bench_decode.py"
asr lm build "$work/data/lm_train.txt" --order 3 --out "$work/lm.arpa" > /dev/null 2>&1
"$python" scripts/bench_decode.py --model "$work/exp/best.pt" --manifest "$work/data/test.jsonl" \
  --lm "$work/lm.arpa" "${bench_decode[@]}" > "$out/bench_decode.txt" 2> "$work/bench_decode.err" \
  || { tail -5 "$work/bench_decode.err" >&2; exit 1; }

"$python" scripts/gpu_check_summary.py "$out" "$work/data/train.jsonl" "$epochs"
