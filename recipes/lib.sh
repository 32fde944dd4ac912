# Sourced by each recipe's run.sh after it sets its defaults: parses `--name value`
# options into the variables of the same name (dashes become underscores), runs
# stages (a stage runs when stage <= N <= stop_stage and its .done marker does not record
# the options it would run with now)
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

_running=""  # the stage running now: named when the recipe stops on an error in it
trap '_status=$?; [ "$_status" = 0 ] || [ -z "$_running" ] || log "stage $_running: failed (exit $_status)"' EXIT

# The recipe's options: the variables its run.sh sets before sourcing this file. Those that
# only say how a stage runs (not what it makes) are left out of the stage markers.
_recipe_options=$(sed -n '/^\. \.\.\/lib\.sh/q; s/^\([a-z_][a-z_0-9]*\)=.*/\1/p' "$(basename "$0")")
_runtime_options=" stage stop_stage nj device ngpu "
_upstream=""  # the options of the stages so far, in order

# _bodies FUNCTION: the source of FUNCTION and of the functions it calls, recursively
_bodies() {
  local seen=" " todo=("$1") fn name
  while [ ${#todo[@]} -gt 0 ]; do
    fn=${todo[0]}; todo=("${todo[@]:1}")
    case "$seen" in *" $fn "*) continue ;; esac
    seen+="$fn "
    declare -f "$fn"
    for name in $(declare -f "$fn" | tail -n +2 | grep -oE '\b[a-z_][a-z_0-9]*\b' | sort -u); do
      declare -F "$name" >/dev/null && todo+=("$name")
    done
  done
}

# stage_options FUNCTION [ARGS...]: "name=value" per recipe option that FUNCTION (or a function
# it calls) reads, and its arguments: what the stage's marker records
stage_options() {
  local body name
  body=$(_bodies "$1")
  for name in $_recipe_options; do
    case "$_runtime_options" in *" $name "*) continue ;; esac
    if grep -qE "\\\$\{?$name([^a-z_0-9]|\$)" <<<"$body"; then printf '%s=%s\n' "$name" "${!name}"; fi
  done
  [ $# -lt 2 ] || printf 'args=%s\n' "${*:2}"
}

# run_stage N MARKER FUNCTION [ARGS...]: run FUNCTION ARGS as stage N unless MARKER records
# that it ran with the same options, after earlier stages with the same options: a changed
# option redoes its stages and every stage after them (MARKER "-": always run, for steps
# that check their own parameters). The marker holds those options.
run_stage() {
  local n=$1 marker=$2 fn=$3 options
  options=$(stage_options "$fn" "${@:4}"; [ -z "$_upstream" ] || echo "after: $(md5sum <<<"$_upstream" | cut -c1-12)")
  _upstream+="$n $fn"$'\n'"$options"$'\n'
  if [ "$n" -lt "$stage" ] || [ "$n" -gt "$stop_stage" ]; then return 0; fi
  if [ "$marker" != - ] && [ -f "$marker" ]; then
    if [ "$(cat "$marker")" = "$options" ]; then
      log "stage $n ($fn): done already ($marker; delete it to redo)"; return 0
    fi
    if [ ! -s "$marker" ]; then  # written before markers recorded options: adopt the current ones
      printf '%s\n' "$options" > "$marker"
      log "stage $n ($fn): done already ($marker, now recording its options)"; return 0
    fi
    log "stage $n ($fn): redo: options changed since it ran:" \
      "$(diff <(cat "$marker") <(printf '%s\n' "$options") | sed -n 's/^> //p' | paste -sd ' ')"
  fi
  log "stage $n ($fn): start"
  local started=$SECONDS
  _running="$n ($fn)"
  "$fn" "${@:4}"
  _running=""
  if [ "$marker" != - ]; then mkdir -p "$(dirname "$marker")" && printf '%s\n' "$options" > "$marker"; fi
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

# decode [DECODER [TAG]]: data/<set>.jsonl -> exp/recogs-<set>TAG.jsonl with exp/best.pt, and its
# speed (RTFx) in exp/decode-time-<set>TAG.json
decode() {
  local dec=${1:-$decoder} tag=${2:-}
  for set in ${sets:-dev test}; do
    asr decode --model exp/best.pt --manifest "data/$set.jsonl" --out "exp/recogs-$set$tag.jsonl" \
      --decoder "$dec" --beam-size "${beam_size:-10}" --device "$device" \
      --timing-out "exp/decode-time-$set$tag.json"
  done
}

# score [TAG ...]: score each decode (default: the untagged one), write exp/results.json
# (`asr results exp --model exp/best.pt --sets ... --markdown` also writes exp/RESULTS.md)
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
