"""Shared pieces of the scale-out tests: tiny `resnet-jax train` runs in subprocesses."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from resnet_jax import configs
from resnet_jax.runs import read_metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ResNet-8 on 8x8 digits, batch 32 in BN groups of 16: seconds per run on a CPU core. Records every
# 4 steps and checkpoints every 6, so a resume may land inside a log interval (pending metrics).
TINY = {"model": "cifar_resnet8", "dataset": "digits", "steps": 36, "batch_size": 32,
        "bn_group_size": 16, "log_every": 4, "eval_every": 12, "checkpoint_every": 6,
        "keep_checkpoints": 3, "eval_batch_size": 360, "progress": False}
STEP_METRICS = ("step", "lr", "loss", "train_error", "test_error", "test_loss")  # not the timings


def config_args(**overrides) -> list[str]:
    fields = {**TINY, **overrides}
    return ["--config=experiments/table6.py:8"] + [f"--config.{k}={v}" for k, v in fields.items()]


def env(devices: int = 1, cache_dir: str | None = None) -> dict:
    """CPU only, `devices` virtual devices, and a shared persistent compilation cache so the runs
    after the first skip XLA compilation (the cached executable is the same code)."""
    e = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
    # Kept: an instruction-set cap (--xla_cpu_max_isa) the suite runs under.
    e["XLA_FLAGS"] = " ".join(f for f in os.environ.get("XLA_FLAGS", "").split()
                              if not f.startswith("--xla_force_host_platform_device_count")
                              ) + f" --xla_force_host_platform_device_count={devices}"
    if cache_dir:
        e.update(JAX_COMPILATION_CACHE_DIR=cache_dir, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                 JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    return e


def train_cmd(workdir: str, *extra: str, **overrides) -> list[str]:
    return [sys.executable, "-m", "resnet_jax.cli", "train", f"--workdir={workdir}",
            *config_args(**overrides), *extra]


def start(cmd: list[str], environ: dict) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=REPO, env=environ, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def run(cmd: list[str], environ: dict, timeout: float = 240, input: str | None = None
        ) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, env=environ, capture_output=True, text=True, timeout=timeout,
                          input=input)




def wait_for_step(proc: subprocess.Popen, workdir: str, step: int, checkpoint: int | None = None,
                  timeout: float = 240) -> int:
    """Poll until metrics.jsonl has a record at >= `step` (and, if given, the checkpoint of step
    `checkpoint` is finished: sealed by its manifest); returns the step of the newest record."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = read_metrics(workdir)
        committed = checkpoint is None or os.path.exists(
            os.path.join(workdir, "checkpoints", str(checkpoint), "sha256_manifest.json"))
        if records and records[-1]["step"] >= step and committed:
            return records[-1]["step"]
        if proc.poll() is not None:
            raise AssertionError(f"run exited early ({proc.returncode}):\n{proc.stderr.read()}")
        time.sleep(0.02)
    raise AssertionError(f"no record at step {step} within {timeout}s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def restore_state(workdir: str, step: int | None = None):
    """The TrainState of a tiny run's checkpoint (newest by default), on this process's first device."""
    import jax  # noqa: PLC0415
    import orbax.checkpoint as ocp  # noqa: PLC0415

    from resnet_jax.configs import cifar_config  # noqa: PLC0415
    from resnet_jax.train import checkpoint  # noqa: PLC0415
    from resnet_jax.train.engine import create_engine, make_mesh  # noqa: PLC0415

    config = cifar_config(TINY["model"])
    configs.override(config, **{k: v for k, v in TINY.items() if k in configs.FIELDS})
    engine = create_engine(config, crop_padding=1, num_classes=10, mesh=make_mesh(jax.devices()[:1]))
    target = engine.abstract_state((8, 8, 3))  # digits images
    mngr = checkpoint.manager(workdir, read_only=True)
    try:
        step = mngr.latest_step() if step is None else step
        return mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))["state"]
    finally:
        mngr.close()


def cache_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.getbasetemp() / "xla_cache")


def reference_run(tmp_path_factory) -> str:
    """The uninterrupted single-device run that interrupted and multi-process runs must match;
    made once per session (file-based, so any test module can ask for it)."""
    workdir = tmp_path_factory.getbasetemp() / "scaleout_reference"
    if not (workdir / "results.json").exists():
        result = run(train_cmd(str(workdir)), env(1, cache_dir(tmp_path_factory)))
        assert result.returncode == 0, result.stderr[-3000:]
    return str(workdir)


def step_metrics(workdir: str) -> list[dict]:
    return [{k: r[k] for k in STEP_METRICS if k in r} for r in read_metrics(workdir)]
