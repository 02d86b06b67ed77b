"""The measurements `resnet-jax bench` asks for, in order, each record passed to `emit`."""

from __future__ import annotations

import argparse
import os


from resnet_jax.models import input_shape, parse_model_name
from resnet_jax.bench import compile as compile_bench
from resnet_jax.bench import pipeline


from resnet_jax.bench.e2e import bench_e2e
from resnet_jax.bench.steps import bench_config, environment, measure, ours, reference, seeds, setup


def run(args: argparse.Namespace, emit) -> list[dict]:
    env = environment()
    per_call = 1 if env["backend"] == "cpu" else args.steps_per_call
    label = {"quick": True} if args.quick else {}
    out = []

    def record(r: dict) -> None:
        r = {**r, **label, **env, "load_avg_1m": round(os.getloadavg()[0], 2)}
        out.append(r)
        emit(r)

    for model in args.models if set(args.parts) - {"compile", "pipeline"} else ():
        image_size = args.image_size or input_shape(model)[0]
        cifar = parse_model_name(model).family == "cifar"
        for dtype in args.dtypes if set(args.parts) & {"step", "reference", "seeds"} else ():
            s = setup(model, dtype, image_size, args.batch_size)
            runners = []
            if "step" in args.parts:
                runners += [ours(s, per_call, c) for c in args.conv_impls if cifar or c == "xla"]
            if "reference" in args.parts:
                runners.append(reference(s, 1))
                if per_call > 1:
                    runners.append(reference(s, per_call))
            if "seeds" in args.parts and cifar:  # Table 6's seeds; ImageNet runs are one per model
                runners += [seeds(s, args.seeds, f, per_call) for f in args.seeds_modes
                            if env["num_devices"] > 1 or not f.startswith("devices")]
            results = measure(runners, args.steps, args.repeats)
            del runners, s
            mine = next((r for r in results if r["impl"] == "ours"), None)
            for r in results:
                if r["kind"] == "seeds" and mine:
                    r["speedup_over_one_model"] = round(r["images_per_sec"] / mine["images_per_sec"], 3)
                record(r)
            refs = [r for r in results if r["kind"] == "reference"]
            if mine and refs:
                record({"kind": "ratio", **{k: mine[k] for k in ("model", "dtype", "batch_size",
                                                                 "image_size")},
                        **{f"ours_over_{r['impl']}": round(mine["images_per_sec"] / r["images_per_sec"], 3)
                           for r in refs}})
        if "e2e" in args.parts and cifar:
            for dtype in args.dtypes:
                record(bench_e2e(model, dtype, args.e2e_steps, args.e2e_dataset,
                                 args.e2e_eval_every, args.e2e_seeds, args.e2e_seeds_mode))
    if "compile" in args.parts:
        for model in args.compile_models:
            depth = parse_model_name(model).depth
            forms = [f for f in args.compile_forms
                     if depth <= args.unrolled_max_depth or not f.startswith("unrolled")]
            for dtype in args.dtypes:
                compile_bench.bench_compile(
                    model, dtype, args.image_size or input_shape(model)[0],
                    bench_config(model, dtype, args.batch_size).batch_size, forms,
                    args.compile_chunk, args.steps, args.repeats, args.compile_timeout, record,
                    tuple(args.compile_programs), tuple(args.compile_timed))
    if "pipeline" in args.parts:
        pipeline.bench_pipeline(args.pipeline_images, args.pipeline_qualities, args.pipeline_rounds,
                                model_rate=args.model_rate, workers=args.pipeline_workers,
                                grain_seconds=args.pipeline_seconds, emit=record)
    return out
