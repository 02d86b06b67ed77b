# Sourced by scripts/*.sh: run the CLI through uv when it exists, else the current python3.
resnet_jax() {
  if command -v uv >/dev/null 2>&1; then
    uv run resnet-jax "$@"
  else
    python3 -m resnet_jax.cli "$@"
  fi
}
