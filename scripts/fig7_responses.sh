#!/usr/bin/env bash
# Fig 7: std of the 3x3 layers' responses of plain-20/56 and ResNet-20/56/110 (He et al. 2016).
#
#   scripts/fig7_responses.sh [--runs DIR] [--dataset digits|cifar10] [--steps S] [--out PNG]
#
# Uses the trained runs DIR/plain20 ... DIR/resnet110 (workdirs of `resnet-jax train`) and trains
# the missing ones first with experiments/fig6.py (an interrupted run resumes from its checkpoint).
# Offline default: digits with a short schedule (a few minutes on 2 CPU cores); on CIFAR-10 the
# default is the paper's 64k steps. Writes the PNG and a JSON of the numbers next to it.
set -euo pipefail

usage() { sed -n '4p' "$0" | sed 's/^# *//' >&2; exit 2; }

RUNS="" DATASET=digits STEPS="" OUT=""
NETS=(plain20 plain56 resnet20 resnet56 resnet110)
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) RUNS="${2:?--runs needs a directory}"; shift 2 ;;
    --dataset) DATASET="${2:?--dataset needs a name}"; shift 2 ;;
    --steps) STEPS="${2:?--steps needs a number}"; shift 2 ;;
    --out) OUT="${2:?--out needs a path}"; shift 2 ;;
    -h|--help) usage ;;
    *) echo "fig7_responses.sh: error: unknown argument '$1'" >&2; usage ;;
  esac
done
case "$DATASET" in
  digits) STEPS="${STEPS:-300}" ;;
  cifar10) STEPS="${STEPS:-64000}" ;;
  *) echo "fig7_responses.sh: error: --dataset must be digits or cifar10, got '$DATASET'" >&2
     exit 2 ;;
esac
if ! [[ "$STEPS" =~ ^[1-9][0-9]*$ ]]; then
  echo "fig7_responses.sh: error: --steps must be a positive integer, got '$STEPS'" >&2; exit 2
fi
RUNS="${RUNS:-runs/fig7_$DATASET}"
OUT="${OUT:-$RUNS/fig7.png}"
RUN="${RUN:-uv run}"  # e.g. RUN=python inside an activated environment

for net in "${NETS[@]}"; do
  if [[ -f "$RUNS/$net/results.json" ]]; then
    echo "== $net: using the finished run in $RUNS/$net"
  else
    echo "== $net: training $STEPS steps on $DATASET into $RUNS/$net"
    $RUN resnet-jax train --config="experiments/fig6.py:$net" --workdir="$RUNS/$net" \
      --config.dataset="$DATASET" --config.steps="$STEPS"
  fi
done

$RUN python -m resnet_jax.analysis.fig7 --runs "$RUNS" --nets "${NETS[@]}" --out "$OUT"
