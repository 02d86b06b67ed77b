#!/usr/bin/env bash
# Table 1 complexity: multiply-adds of ResNet-18/34/50/101/152 measured on our models beside the
# paper's FLOPs. Extra arguments go to `resnet-jax table1` (e.g. --json table1.json).
set -euo pipefail
source "$(dirname "$0")/common.sh"
rj table1 "$@"
