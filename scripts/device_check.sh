#!/usr/bin/env bash
# One call on a lent accelerator answers what the CPU cannot: the README's training route on the device
# (train, SIGTERM, resume), ours vs the flax-examples step, the scanned-block forms and which "auto"
# default wins, the projected 64k-step runs, several seeds per program, ResNet-50 images/s. Within a
# time budget, each part in processes of its own; one JSON + one markdown report in --out.
# (resnet_jax/bench/device_check.py; docs/speed.md, "On a GPU or TPU".)
set -euo pipefail
source "$(dirname "$0")/common.sh"

WHEELS="$ROOT/.whl"  # gitignored; name it in the device tool's `carry`
# What the accelerator image lacks of the lock, pure Python: ml-collections (the CLI's flags and
# configs) and tensorboardX (event files; without it runs go on without them). The digits and
# synthetic routes import neither tensorflow-datasets nor grain nor array-record.
DEVICE_WHEELS=(ml-collections tensorboardx)

usage() {
  cat <<USAGE
usage: scripts/device_check.sh [--quick] [--budget SECONDS] [--out DIR] [--parts a,b,...]
       scripts/device_check.sh --fetch-wheels
  --budget S       all parts together (default 420 s: one 8-minute call, with room for the start)
  --out DIR        device_check.json, device_check.md, device_check.log (default out/device_check)
  --parts          subset of: a train, b reference, c forms, d e2e, e seeds, f r50 (in that order)
  --quick          tiny sizes: the whole check on a CPU, to test it before any GPU
  --fetch-wheels   here, where pip reaches an index: download the locked versions of
                   ${DEVICE_WHEELS[*]} into .whl/ (carry it to the machine)
On the machine, without uv and with jax preinstalled, missing packages are installed from .whl/:
  RESNET_JAX_NO_UV=1 scripts/device_check.sh --out \$OUT      (device tool: carry [".whl"])
USAGE
}

fetch_wheels() {
  local spec
  mkdir -p "$WHEELS"
  # the versions uv.lock pins, so the machine runs what the tests ran
  for spec in $(python3 - "$ROOT/uv.lock" "${DEVICE_WHEELS[@]}" <<'PY'
import sys, tomllib
versions = {p["name"]: p["version"] for p in tomllib.load(open(sys.argv[1], "rb"))["package"]}
print(" ".join(f"{name}=={versions[name]}" for name in sys.argv[2:]))
PY
  ); do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 -d "$WHEELS" "$spec" \
      || { echo "$(basename "$0"): error: cannot download $spec (no package index reachable?)" >&2; exit 3; }
  done
  echo "wheels in $WHEELS: $(cd "$WHEELS" && echo *.whl)"
}

# Without uv (rj runs this python3), install the carried wheels if what they hold is missing.
ensure_packages() {
  if [[ -z "${RESNET_JAX_NO_UV:-}" ]] && find_uv; then return; fi  # rj's own test
  python3 -c "import ml_collections, tensorboardX" 2>/dev/null && return
  compgen -G "$WHEELS/*.whl" >/dev/null \
    || die "ml_collections or tensorboardX is missing and $WHEELS holds no wheels: run scripts/device_check.sh --fetch-wheels where pip reaches an index, and carry .whl"
  local site="${TMPDIR:-/tmp}/resnet_jax_site"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
    "$WHEELS"/*.whl || die "cannot install the wheels in $WHEELS"
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
}

case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  --fetch-wheels) fetch_wheels; exit 0 ;;
esac
ensure_packages
rj bench --device-check "$@"
