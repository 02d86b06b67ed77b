#!/usr/bin/env bash
# Training throughput: our engine vs a flax-examples step on CIFAR ResNet-20/56/110 (batch
# 128) and ImageNet ResNet-50 (batch 256), float32 and bfloat16; several seeds per program; the real
# loop end to end with the projected time of a 64k-step run. JSON lines + markdown tables in --out.
set -euo pipefail
source "$(dirname "$0")/common.sh"

usage() {
  cat <<USAGE
usage: scripts/bench.sh [--quick] [--out DIR] [resnet-jax bench options ...]
  --quick      CPU smoke test (< 2 minutes on 2 cores): ResNet-20, 8x8 inputs, labelled "quick"
  --out DIR    where bench.jsonl (appended) and bench.md go; default out/bench
On a GPU machine with jax preinstalled: RESNET_JAX_NO_UV=1 scripts/bench.sh --out out/bench_gpu
Other options (\`resnet-jax bench --help\`): --models, --dtypes, --parts step,reference,seeds,e2e,
--steps, --repeats, --steps_per_call, --seeds N, --seeds_modes loop,vmap,vmap+im2col,devices,
--conv_impls xla,im2col, --e2e_steps; \`resnet-jax bench --summarize FILE\` tabulates appended runs.
USAGE
}

OUT=out/bench
ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) [[ $# -ge 2 ]] || die "--out needs a value"; OUT="$2"; shift ;;
    --out=*) OUT="${1#*=}" ;;
    -h|--help) usage; exit 0 ;;
    *) ARGS+=("$1") ;;
  esac
  shift
done
mkdir -p "$OUT"
rj bench --out "$OUT/bench.jsonl" --summary "$OUT/bench.md" ${ARGS[@]+"${ARGS[@]}"}
echo "bench written to $OUT/bench.jsonl and $OUT/bench.md"
