#!/usr/bin/env bash
# Fig 7: std of every 3x3 layer's response (BN output before ReLU/addition) over the test set, for
# plain-20/56 and ResNet-20/56/110 -> fig7.png (in order / sorted) and fig7.json (the numbers).
set -euo pipefail
source "$(dirname "$0")/common.sh"

usage() {
  cat <<USAGE
usage: scripts/fig7_responses.sh [--dataset cifar10|digits] [--steps N] [--runs DIR] [--out DIR]
                                 [--nets plain20,...] [--data_dir DIR] [--config.FIELD=VALUE ...]
  --runs DIR   trained runs DIR/plain20, DIR/resnet56, ... (default OUT/runs); missing or
               unfinished ones are trained (or resumed) there first
  --steps N    shorter schedule; on digits the default is 300 (minutes on a CPU, deep nets
               undertrained), on cifar10 the paper's 64k
USAGE
}

RUNS_ARG=""
ARGS=()
while [[ $# -gt 0 ]]; do  # --runs is this script's own; the rest are the common options
  case "$1" in
    --runs) [[ $# -ge 2 ]] || die "--runs needs a value"; RUNS_ARG="$2"; shift 2 ;;
    --runs=*) RUNS_ARG="${1#*=}"; shift ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
parse_common "plain20,plain56,resnet20,resnet56,resnet110" ${ARGS[@]+"${ARGS[@]}"}
[[ -n "$FROM" ]] && die "use --runs DIR (runs are trained there when missing)"
[[ "$DATASET" == digits && -z "$STEPS" ]] && STEPS=300
OUT="${OUT:-out/fig7_$DATASET}"
RUNS="${RUNS_ARG:-$OUT/runs}"
sweep fig7 --runs "$RUNS" --no_report
rj fig7 --runs "$RUNS" --nets ${NETS//,/ } --out "$OUT/fig7.png" ${DATA_DIR:+--data_dir "$DATA_DIR"}
