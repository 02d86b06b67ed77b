#!/usr/bin/env bash
# Fig 6: plain nets (left), ResNets (middle), ResNet-110 vs 1202 (right); thin training error, bold
# test error -> fig6.png.
set -euo pipefail
source "$(dirname "$0")/common.sh"

usage() {
  cat <<USAGE
usage: scripts/fig6_cifar.sh [--dataset cifar10|digits] [--steps N] [--nets plain20,resnet20,...]
                             [--out DIR] [--data_dir DIR] [--from DIR] [--config.FIELD=VALUE ...]
  --nets       subset to train (default: all 10 nets of the figure, ResNet-1202 included)
  --from DIR   only redraw, from runs already in DIR (DIR/plain20, DIR/resnet56, ...)
USAGE
}

parse_common "plain20,plain32,plain44,plain56,resnet20,resnet32,resnet44,resnet56,resnet110,resnet1202" "$@"
train_and_draw fig6
