# Sourced by each recipe's run.sh after it sets its defaults: parses `--name value`
# options into the variables of the same name (dashes become underscores), runs
# stages (a stage runs when stage <= N <= stop_stage and its .done marker is absent)
# and defines the stages every recipe shares: decode and score of data/<set>.jsonl for
# each of the recipe's $sets (default "dev test") with exp/best.pt.

while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h) grep '^#' "$(basename "$0")" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --*=*) name=${1%%=*}; value=${1#*=}; shift ;;
    --*) [ $# -ge 2 ] || { echo "$0: $1 needs a value" >&2; exit 2; }; name=$1; value=$2; shift 2 ;;
    *) echo "$0: unexpected argument '$1'; options are --name value" >&2; exit 2 ;;
  esac
  name=${name#--}; name=${name//-/_}
  if [ -z "${!name+set}" ]; then
    echo "$0: unknown option --${name//_/-}; see $0 --help" >&2; exit 2
  fi
  printf -v "$name" '%s' "$value"
done

log() { echo "$(date '+%F %T') ($(basename "$(pwd)")) $*" >&2; }

# run_stage N MARKER FUNCTION [ARGS...]: run FUNCTION ARGS as stage N unless MARKER exists
# (MARKER "-": always run, for steps that check their own parameters).
run_stage() {
  local n=$1 marker=$2 fn=$3
  if [ "$n" -lt "$stage" ] || [ "$n" -gt "$stop_stage" ]; then return 0; fi
  if [ "$marker" != - ] && [ -f "$marker" ]; then
    log "stage $n ($fn): done already ($marker exists; delete it to redo)"; return 0
  fi
  log "stage $n ($fn): start"
  local started=$SECONDS
  "$fn" "${@:4}"
  if [ "$marker" != - ]; then mkdir -p "$(dirname "$marker")" && touch "$marker"; fi
  log "stage $n ($fn): finished in $((SECONDS - started)) s"
}

# asr_train ARGS...: `asr train ARGS`; with --ngpu N > 1, N data-parallel processes (torchrun)
asr_train() {
  if [ "${ngpu:-1}" -gt 1 ]; then
    torchrun --standalone --nproc_per_node "$ngpu" -m asr.cli train "$@"
  else
    asr train "$@"
  fi
}

# decode [DECODER [TAG]]: data/<set>.jsonl -> exp/recogs-<set>TAG.jsonl with exp/best.pt
decode() {
  local dec=${1:-$decoder} tag=${2:-}
  for set in ${sets:-dev test}; do
    asr decode --model exp/best.pt --manifest "data/$set.jsonl" --out "exp/recogs-$set$tag.jsonl" \
      --decoder "$dec" --beam-size "${beam_size:-10}" --device "$device"
  done
}

# score [TAG ...]: score each decode (default: the untagged one), write exp/results.json
score() {
  local tags=("$@") scored=()
  [ ${#tags[@]} -gt 0 ] || tags=("")
  for tag in "${tags[@]}"; do
    for set in ${sets:-dev test}; do
      asr score "data/$set.jsonl" "exp/recogs-$set$tag.jsonl" \
        --json-out "exp/wer-summary-$set$tag.json" > "exp/errs-$set$tag.txt"
      scored+=("$set$tag")
    done
  done
  asr results exp --model "$(pwd)/exp/best.pt" --sets "${scored[@]}"
}
