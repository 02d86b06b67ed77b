#!/usr/bin/env bash
# Fig 4: training (thin) and centre-crop validation (bold) error curves, plain vs ResNet 18/34.
# Trains each net (resuming from its checkpoint) and writes results/fig4_imagenet.{md,json} (and
# fig4_imagenet_{plain,resnet}.png, the two panels) with the
# paper's numbers beside ours. Options:
#   --data_dir DIR      ILSVRC2012: train/ + val/ folders, the official tars, or a tfds data_dir (docs/data.md)
#   --steps N           training steps per net (default: the paper's 60e4; the schedule shrinks)
#   --eval_only RUNS    no training: test the checkpoints under RUNS (e.g. runs/imagenet)
#   --nets a,b  --schedule plateau|fixed  --runs DIR  --out DIR  --dataset D
#   --config.FIELD=VALUE  every net's config (e.g. --config.batch_size=128 --config.num_workers=8)
# Relative paths are the caller's; the nets are resnet_jax/experiments/fig4.py.
set -euo pipefail
source "$(dirname "$0")/common.sh"
rj imagenet --table fig4 "$@"
