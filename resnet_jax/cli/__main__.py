"""`python -m resnet_jax.cli COMMAND ...` (what scripts/common.sh runs without uv)."""

from resnet_jax.cli import main

main()
