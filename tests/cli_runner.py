"""Run `resnet-jax` once per argv (JSON list on stdin) in this one process, recording each exit
code, stdout and stderr: the CLI entry point as users call it, without paying JAX's import per case."""

from __future__ import annotations

import contextlib
import io
import json
import sys

from absl import flags

from resnet_jax import cli


def run_cli(argv: list[str]) -> dict:
    flags.FLAGS.unparse_flags()  # every case starts from the flag defaults...
    for name in [n for n in flags.FLAGS if n.startswith("config.")]:
        delattr(flags.FLAGS, name)  # ...and config_flags defines the --config.FIELD ones anew
    sys.argv = ["resnet-jax", *argv]  # config_flags reads its --config.FIELD overrides from here
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli.main(sys.argv)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    return {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}


if __name__ == "__main__":
    print(json.dumps([run_cli(argv) for argv in json.load(sys.stdin)]))
