#!/usr/bin/env bash
# Fig 1: plain-20 vs plain-56 on CIFAR-10; training error (left) and test error (right) -> fig1.png.
set -euo pipefail
source "$(dirname "$0")/common.sh"

usage() {
  cat <<USAGE
usage: scripts/fig1_cifar.sh [--dataset cifar10|digits] [--steps N] [--out DIR] [--data_dir DIR]
                             [--from DIR] [--config.FIELD=VALUE ...]
  --from DIR   only redraw, from runs already in DIR (DIR/plain20, DIR/plain56)
USAGE
}

parse_common "plain20,plain56" "$@"
train_and_draw fig1
