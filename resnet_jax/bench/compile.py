"""`resnet-jax bench --parts compile`: what depth costs before the first step, scanned vs unrolled.

For each depth and form (`scan`, `unrolled`, either with `+remat`), three programs are compiled,
each in a fresh Python process so that neither compile time nor peak memory carries over:
- init:  Engine._init (He init of every layer, optimizer state);
- step:  Engine.train_chunk for 1 step (the CPU loop's call), then timed on real data (step_ms);
- chunk: Engine.train_chunk for `chunk` steps under lax.scan (the accelerator loop's call).
A record holds the compile seconds (lowering included) and the process's peak resident memory
(/proc/self/status VmHWM) right after the compile, beside its resident memory before compiling
(imports, data, the engine), so `peak_gb - base_gb` is what the compile itself needed; the step
record adds `run_peak_gb`, the peak once steps have run (state, activations kept for backprop).
On an accelerator the host's resident memory says little: a timed record also holds
`device_peak_gb`, the device allocator's peak (`memory_stats()["peak_bytes_in_use"]`; None where the
backend keeps no statistics, as XLA:CPU). `timed` names the programs whose steps are run and timed:
the step by default; the chunk where, as on accelerators, it is the call the loop makes. Every
record names `auto`, what the "auto" block options resolve to on the backend that ran it.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import jax
import numpy as np
from resnet_jax import configs

FORMS = ("scan", "unrolled", "scan+remat", "unrolled+remat", "scan+xla", "scan+im2col", "scan+remat+xla",
         "scan+remat+im2col")
PROGRAMS = ("init", "step", "chunk")


def form_config(form: str) -> dict:
    """A form's config fields: "scan+remat" -> scan_blocks=True, remat="block"; "scan+xla": the
    scanned blocks' convs as nn.Conv whatever the backend (scan_conv_impl)."""
    base, *extras = form.split("+")
    fields = {"scan_blocks": base == "scan", "remat": "block" if "remat" in extras else "none"}
    for impl in (x for x in extras if x in ("xla", "im2col")):
        fields["scan_conv_impl"] = impl
    return fields


def _resident_gb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 2**20, 3)  # kB
    raise OSError(f"no {field} in /proc/self/status")


def _device_peak_gb() -> float | None:
    stats = jax.devices()[0].memory_stats()  # None on XLA:CPU
    peak = (stats or {}).get("peak_bytes_in_use")
    return None if peak is None else round(peak / 2**30, 3)


def probe(spec: dict) -> dict:
    """Compile one program of one model form in this process (see the module docstring)."""
    from resnet_jax.data import synthetic  # noqa: PLC0415 (the child's imports, timed apart)
    from resnet_jax.bench import steps as bench  # noqa: PLC0415
    from resnet_jax.train.engine import Engine, EpochOrders, create_engine, make_mesh, put_dataset  # noqa: PLC0415

    config = bench.bench_config(spec["model"], spec["dtype"], spec["batch_size"])
    resolved = configs.resolve(config, make_mesh().devices.flat[0].platform).model
    auto = {k: resolved[k] for k in ("scan_blocks", "scan_conv_impl", "remat")}
    configs.override(config, **form_config(spec["form"]))
    # enough data for the timed steps, not 50k images: the memory measured is the compile's
    ds = synthetic.load(num_train=8 * config.run.batch_size, num_eval=config.run.batch_size,
                        image_size=spec["image_size"])
    engine = create_engine(config, ds.crop_padding, ds.num_classes)
    data = put_dataset(ds, engine.mesh, config.run.batch_size)
    shape = ds.image_shape
    base = _resident_gb("VmRSS")
    t = time.perf_counter()
    if spec["program"] == "init":
        with jax.threefry_partitionable(False):  # as Engine.init_state
            Engine._init.lower(engine, shape, np.int32(0)).compile()
        compiled = None
    else:
        n = 1 if spec["program"] == "step" else spec["chunk"]
        orders = EpochOrders(engine, 0, 0, len(ds.train_images), n)
        chunk_orders = orders.next_chunk(n)
        compiled = Engine.train_chunk.lower(engine, engine.abstract_state(shape), data, n,
                                            chunk_orders).compile()
    out = {"compile_s": round(time.perf_counter() - t, 2), "peak_gb": _resident_gb("VmHWM"),
           "base_gb": base, "auto": auto}
    if compiled is not None and spec["program"] in spec.get("timed", ("step",)) and spec["steps"]:
        calls = max(1, math.ceil(spec["steps"] / n))
        state = engine.init_state(shape)
        for _ in range(2):  # the first calls allocate
            state = compiled(state, data, orders.next_chunk(n))[0]
        jax.block_until_ready(state)
        windows = []
        for _ in range(spec["repeats"]):
            t = time.perf_counter()
            for _ in range(calls):
                state = compiled(state, data, orders.next_chunk(n))[0]
            jax.block_until_ready(state)
            windows.append((time.perf_counter() - t) / (calls * n))
        out.update(step_ms=round(1e3 * min(windows), 2),
                   step_ms_median=round(1e3 * float(np.median(windows)), 2),
                   run_peak_gb=_resident_gb("VmHWM"),  # with the state and the step's buffers
                   device_peak_gb=_device_peak_gb())
    return out


def run_probe(spec: dict, timeout_s: float) -> dict:
    """`probe(spec)` in a fresh interpreter; a crash or timeout (e.g. the OOM killer) is recorded
    as `error` with the exit status instead of a measurement."""
    code = "import json, sys; from resnet_jax.bench import compile as c; " \
           "print(json.dumps(c.probe(json.loads(sys.argv[1]))))"
    # A persistent compilation cache would turn a compile into a cache read: off in the probe.
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env.update(PYTHONWARNINGS="ignore", JAX_ENABLE_COMPILATION_CACHE="false")
    t = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], capture_output=True,
                              text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s"}
    wall = round(time.perf_counter() - t, 2)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]
        return {"error": f"exit status {proc.returncode}: {tail}", "process_s": wall}
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "process_s": wall}


def bench_compile(model: str, dtype: str, image_size: int, batch_size: int, forms: list[str],
                  chunk: int, steps: int, repeats: int, timeout_s: float, emit,
                  programs: tuple[str, ...] = PROGRAMS, timed: tuple[str, ...] = ("step",)) -> None:
    """Every program (of `programs`) of `model` in every form, one record each (kind "compile");
    the steps of those in `timed` are run and timed."""
    for form in forms:
        for program in programs:
            spec = dict(model=model, dtype=dtype, image_size=image_size, batch_size=batch_size,
                        form=form, program=program, chunk=chunk, steps=steps, repeats=repeats,
                        timed=list(timed))
            result = run_probe(spec, timeout_s)
            emit({"kind": "compile", **{k: v for k, v in spec.items() if k not in ("steps", "timed")},
                  "steps_per_call": 1 if program != "chunk" else chunk, **result})


def summary_rows(records: list[dict]) -> list[str]:
    """Markdown: one row per model form, its three programs side by side."""
    rows: dict[tuple, dict] = {}
    for r in records:
        if r["kind"] == "compile":
            key = (r["model"], r["dtype"], r["image_size"], r["batch_size"], r["form"])
            rows.setdefault(key, {})[r["program"]] = r
    if not rows:
        return []
    lines = ["", "| model | dtype | image | batch | form | init s | init GB | step s | step GB | "
             "chunk s (steps) | chunk GB | step ms | training GB |",
             "|---|---|---:|---:|---|" + "---:|" * 8]

    def cell(r, field, fmt):
        if r is None:
            return "", ""
        if "error" in r:
            return "failed", r["error"][:40]
        return format(r[field], fmt), format(r["peak_gb"], ".2f")

    for (model, dtype, image, batch, form), p in rows.items():
        init, step, chunk = (p.get(x) for x in PROGRAMS)
        ms = format(step["step_ms"], ".1f") if step and "step_ms" in step else ""
        run_gb = format(step["run_peak_gb"], ".2f") if step and "run_peak_gb" in step else ""
        chunk_s = cell(chunk, "compile_s", ".1f")
        if chunk and "error" not in chunk:
            chunk_s = (f"{chunk_s[0]} ({chunk['chunk']})", chunk_s[1])
        lines.append(f"| {model} | {dtype} | {image} | {batch} | {form} | "
                     f"{' | '.join(cell(init, 'compile_s', '.1f'))} | "
                     f"{' | '.join(cell(step, 'compile_s', '.1f'))} | {' | '.join(chunk_s)} | {ms} | "
                     f"{run_gb} |")
    return lines
