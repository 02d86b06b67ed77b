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
Finished runs of the same request in DIR/runs are kept, interrupted ones resume, and runs of
another config (e.g. other --steps) are refused: another --out, or remove them. Relative paths are
yours (the current directory). A thin wrapper over \`resnet-jax sweep --experiment table6\`.
Example (offline, a few minutes on CPU):
  scripts/table6_cifar.sh --dataset digits --steps 300 --depths 20,56 --out out/table6_digits
USAGE
}

parse_common "resnet20,resnet32,resnet44,resnet56,resnet110,resnet1202" "$@"
OUT="${OUT:-out/table6_$DATASET}"
sweep table6  # K seeds train together in one run (workdir/seed{s}/ per seed, see `--seeds`)
echo "Table 6 written to $OUT/table6.md and $OUT/table6.json; the runs side by side: tensorboard --logdir $OUT"
