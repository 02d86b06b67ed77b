# Shared by scripts/*.sh: how to call the CLI, and the option parsing every script accepts.
# shellcheck shell=bash
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# `uv run` keeps the locked environment in sync. Without uv, or with RESNET_JAX_NO_UV=1 (e.g. a GPU
# machine with jax preinstalled), the current python3 runs the CLI.
if command -v uv >/dev/null 2>&1; then UV=(uv); else UV=(python3 -m uv); fi
export UV_PYTHON_DOWNLOADS="${UV_PYTHON_DOWNLOADS:-never}"  # use the machine's Python 3.12

#
# The CLI runs as a child that this shell waits for. SIGTERM or SIGINT to the script (a scheduler's
# stop, Ctrl-C) is passed on to it as SIGTERM, on which `resnet-jax train` saves a checkpoint and
# exits 0; the script waits for that and exits with the child's code instead of going on, so a
# scheduler that restarts it at once never overlaps the old trainer.
rj() {
  local child rc seen signals=0
  if [[ -z "${RESNET_JAX_NO_UV:-}" ]] && "${UV[@]}" --version >/dev/null 2>&1; then
    (cd "$ROOT" && exec "${UV[@]}" run --quiet --frozen resnet-jax "$@") &
  else
    (cd "$ROOT" && PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" exec python3 -m resnet_jax.cli "$@") &
  fi
  child=$!
  trap 'signals=$((signals + 1)); kill -TERM "$child" 2>/dev/null || true' TERM INT
  while :; do
    seen=$signals rc=0
    wait "$child" || rc=$?
    (( signals == seen )) && break  # the child exited; else a signal cut the wait short: wait on
  done
  trap - TERM INT
  (( signals == 0 )) || exit "$rc"
  return "$rc"
}

die() { echo "$(basename "$0"): error: $*" >&2; exit 2; }

# Parses the common options into DATASET, STEPS, OUT, FROM, DATA_DIR, SEEDS, NETS and EXTRA (passed to
# `resnet-jax train`). $1 is the script's default net list (comma-separated).
parse_common() {
  NETS="$1"; shift
  DATASET=cifar10; STEPS=""; OUT=""; FROM=""; DATA_DIR=""; SEEDS=1; EXTRA=()
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --dataset|--steps|--out|--from|--data_dir|--seeds|--depths|--nets)
        [[ $# -ge 2 ]] || die "$1 needs a value"
        set -- "$1=$2" "${@:3}"; continue ;;
      --dataset=*) DATASET="${1#*=}" ;;
      --steps=*) STEPS="${1#*=}" ;;
      --out=*) OUT="${1#*=}" ;;
      --from=*) FROM="${1#*=}" ;;
      --data_dir=*) DATA_DIR="${1#*=}" ;;
      --seeds=*) SEEDS="${1#*=}" ;;
      --depths=*) NETS="$(echo "${1#*=}" | sed -E 's/(^|,)([0-9]+)/\1resnet\2/g')" ;;
      --nets=*) NETS="${1#*=}" ;;
      --config.*) EXTRA+=("$1") ;;
      -h|--help) usage; exit 0 ;;
      *) die "unknown option $1 (see --help)" ;;
    esac
    shift
  done
  [[ -z "$STEPS" || "$STEPS" =~ ^[1-9][0-9]*$ ]] || die "--steps must be a positive integer, got '$STEPS'"
  [[ "$SEEDS" =~ ^[1-9][0-9]*$ ]] || die "--seeds must be a positive integer, got '$SEEDS'"
}

# train_net EXPERIMENT NET WORKDIR [SEED [TRAIN_FLAG...]]: one run of `--experiment EXPERIMENT:NET`
# (resnet_jax/experiments/EXPERIMENT.py); finished runs (results.json, or
# seeds.json for a --seeds run) are kept, interrupted ones resume from their last checkpoint.
# The file names mirror RESULTS and SEEDS in resnet_jax/runs.py, which owns the run folder's layout.
train_net() {
  local experiment="$1" net="$2" workdir="$3" seed="${4:-0}"
  shift $(($# < 4 ? $# : 4))
  if [[ -f "$workdir/results.json" || -f "$workdir/seeds.json" ]]; then
    echo "== $net: finished run in $workdir, kept"; return 0
  fi
  echo "== $net -> $workdir"
  rj train --experiment="$experiment:$net" --workdir="$workdir" \
    --config.dataset="$DATASET" --config.seed="$seed" ${STEPS:+--steps="$STEPS"} \
    ${DATA_DIR:+--config.data_dir="$DATA_DIR"} "${EXTRA[@]}" "$@"
}

# train_and_draw FIGURE: trains each of NETS with `--experiment FIGURE` into OUT/runs (skipped with
# --from DIR, which redraws from DIR's runs) and draws OUT/FIGURE.png.
train_and_draw() {
  local figure="$1" runs net
  OUT="${OUT:-out/${figure}_$DATASET}"
  runs="${FROM:-$OUT/runs}"
  if [[ -z "$FROM" ]]; then
    for net in ${NETS//,/ }; do train_net "$figure" "$net" "$runs/$net"; done
  fi
  rj plot "$figure" --runs "$runs" --out "$OUT/$figure.png"
}
