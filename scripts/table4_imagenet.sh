#!/usr/bin/env bash
# Table 4: ResNet-34 B/C, 50/101/152, fully-convolutional multi-scale test.
# Trains each net (resuming from its checkpoint) and writes results/table4_imagenet.{md,json} with the
# paper's numbers beside ours. Options:
#   --data_dir DIR      ILSVRC2012: train/ + val/ folders, the official tars, or a tfds data_dir (docs/data.md)
#   --steps N           training steps per net (default: the paper's 60e4; the schedule shrinks)
#   --eval_only RUNS    no training: test the checkpoints under RUNS (e.g. runs/imagenet)
#   --nets a,b  --schedule plateau|fixed  --runs DIR  --out DIR  --dataset D
#   --config.FIELD=VALUE  every net's config (e.g. --config.batch_size=128 --config.num_workers=8)
# Relative paths are the caller's; the nets and the paper's numbers are resnet_jax/experiments/table4.py.
set -euo pipefail
source "$(dirname "$0")/common.sh"
rj imagenet --table 4 "$@"
