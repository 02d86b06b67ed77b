#!/usr/bin/env bash
# Table 6: ResNet-20/32/44/56/110/1202 on CIFAR-10 with the paper's recipe (Sec 4.2), then table6.md,
# table6.json (ours beside the paper's) and the training curves, all in --out.
set -euo pipefail
source "$(dirname "$0")/common.sh"

usage() {
  cat <<USAGE
usage: scripts/table6_cifar.sh [--dataset cifar10|digits|synthetic] [--steps N] [--depths 20,56,...]
                               [--seeds K] [--out DIR] [--data_dir DIR] [--config.FIELD=VALUE ...]
  --steps N    shorter schedule with the paper's shape (lr /10 at 50% and 75%); default 64000
  --seeds K    K seeds per depth (0..K-1) trained together in one run, reported as mean ± std
               (--config.seeds_mode=loop|vmap|devices picks how; see resnet_jax/train/seeds.py)
  --config.*   passed to every \`resnet-jax train\` (e.g. --config.dtype=bfloat16)
Finished runs in DIR/runs are kept; interrupted ones resume. Example (offline, a few minutes on CPU):
  scripts/table6_cifar.sh --dataset digits --steps 300 --depths 20,56 --out out/table6_digits
USAGE
}

parse_common "resnet20,resnet32,resnet44,resnet56,resnet110,resnet1202" "$@"
OUT="${OUT:-out/table6_$DATASET}"
mkdir -p "$OUT/runs"
SEEDS_FLAG=()
[[ $SEEDS -gt 1 ]] && SEEDS_FLAG=(--seeds="$SEEDS")
for net in ${NETS//,/ }; do
  [[ "$net" =~ ^resnet[0-9]+$ ]] || die "Table 6 nets are ResNets, got '$net'"
  # K seeds train together in one run (one program; workdir/seed{s}/ per seed, see `--seeds`).
  train_net table6 "${net#resnet}" "$OUT/runs/$net" 0 ${SEEDS_FLAG[@]+"${SEEDS_FLAG[@]}"}
done
rj report table6 --runs "$OUT/runs" --out "$OUT"
if [[ $SEEDS -eq 1 ]]; then
  # Fig 6's panel draws the paper's depths; other depths (e.g. --depths 8,14) get plain curves.
  PAIRS=() PAPER=0
  for net in ${NETS//,/ }; do
    PAIRS+=("$net=$OUT/runs/$net")
    [[ ",resnet20,resnet32,resnet44,resnet56,resnet110,resnet1202," == *",$net,"* ]] && PAPER=1
  done
  if [[ $PAPER -eq 1 ]]; then rj plot fig6 --runs "$OUT/runs" --out "$OUT/curves.png"
  else rj plot curves --runs "$(IFS=,; echo "${PAIRS[*]}")" --out "$OUT/curves.png"; fi
fi
echo "Table 6 written to $OUT/table6.md and $OUT/table6.json; the runs side by side: tensorboard --logdir $OUT"
