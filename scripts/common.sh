# Shared by scripts/*.sh: how to call the CLI, and the option parsing every script accepts.
# shellcheck shell=bash
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# The CLI runs in the caller's directory, so relative paths (--out, --data_dir, --from) are the
# caller's. `uv run --project` keeps the checkout's locked environment in sync; uv is looked for on
# PATH, then as a module of the Python the checkout selects (.python-version). Without uv, or with
# RESNET_JAX_NO_UV=1 (e.g. a GPU machine with jax preinstalled), the current python3 runs the CLI.
export UV_PYTHON_DOWNLOADS="${UV_PYTHON_DOWNLOADS:-never}"  # use the machine's Python 3.12
find_uv() {
  local python
  if command -v uv >/dev/null 2>&1 && uv --version >/dev/null 2>&1; then UV=(uv); return 0; fi
  python="$(cd "$ROOT" && python3 -c 'import sys; print(sys.executable)' 2>/dev/null)" || return 1
  "$python" -m uv --version >/dev/null 2>&1 || return 1
  UV=("$python" -m uv)
}

# rj ARGS: `resnet-jax ARGS` as a child that this shell waits for. SIGTERM or SIGINT to the script
# (a scheduler's stop, Ctrl-C) is passed on to it as SIGTERM, on which `resnet-jax train` saves a
# checkpoint and exits 0; the script waits for that and exits with the child's code instead of
# going on, so a scheduler that restarts it at once never overlaps the old trainer.
rj() {
  local child rc seen signals=0
  if [[ -z "${RESNET_JAX_NO_UV:-}" ]] && find_uv; then
    "${UV[@]}" run --project "$ROOT" --quiet --frozen resnet-jax "$@" &
  else
    # find_spec, not import: the CLI imports them next, and jax's import alone takes seconds
    PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" python3 -c 'import importlib.util as u, sys
sys.exit(any(u.find_spec(m) is None for m in ("absl", "flax", "jax", "ml_collections")))' \
      2>/dev/null || die "neither uv nor a python3 with the dependencies: install uv" \
        "(python3 -m pip install uv), or the package (python3 -m pip install -e $ROOT)"
    PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" python3 -m resnet_jax.cli "$@" &
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

# sweep EXPERIMENT [FLAG...]: `resnet-jax sweep` of NETS with the common options: each net trains
# into OUT/runs/NET (finished runs of the same config kept, interrupted ones resumed, others refused;
# see `resnet-jax sweep --help`), then the experiment's tables and figures are written to OUT.
sweep() {
  local experiment="$1"; shift
  rj sweep --experiment "$experiment" --nets "$NETS" --dataset "$DATASET" --seeds "$SEEDS" \
    --out "$OUT" ${STEPS:+--steps "$STEPS"} ${DATA_DIR:+--data_dir "$DATA_DIR"} \
    ${EXTRA[@]+"${EXTRA[@]}"} "$@"
}

# train_and_draw FIGURE: trains each of NETS with `--experiment FIGURE` into OUT/runs and draws
# OUT/FIGURE.png; with --from DIR, only redraws from DIR's runs.
train_and_draw() {
  local figure="$1"
  OUT="${OUT:-out/${figure}_$DATASET}"
  if [[ -n "$FROM" ]]; then rj report --experiment "$figure" --runs "$FROM" --out "$OUT"
  else sweep "$figure"; fi
}
