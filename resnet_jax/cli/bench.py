"""`resnet-jax bench`: training throughput of our engine beside a straightforward Flax step.

One JSON object per measurement (stdout, and appended to --out):
- step:      our Engine.train_chunk on a device-resident synthetic dataset: batch gather, pad/crop/
             flip augmentation and the SGD step, `steps_per_call` steps per call (1 on CPU).
- reference: the flax-examples step on the same model: flax TrainState + optax.sgd, a fixed
             pre-placed batch, no augmentation; impl "reference" = one jit call per step,
             "reference_scan" = `steps_per_call` steps scanned per call (accelerators only).
- ratio:     ours / reference images/s (the issue's targets: >= 1.0, aim 1.5).
- seeds:     N seeds in one program per seeds_mode; aggregate images/s and speed-up over one model.
- e2e:       the real loop (`train_and_evaluate`: augmentation, evaluation, logging, checkpoints)
             for --e2e_steps, and the projected wall time of the paper's 64k-step run.
- compile:   compile seconds and peak host memory of init, one step and a scanned chunk per depth,
             blocks scanned vs unrolled, each in a fresh process, and the step time of both
             (bench/compile.py; --compile_models, --compile_forms, --unrolled_max_depth).
- pipeline:  the ImageNet host transforms (bench/pipeline.py): per-core images/s of ours and of the
             straightforward PIL reference on JPEGs cut from photographs (quality 90 and 95), the
             worker processes --model_rate images/s needs, and grain's rate with N workers.
Compile time is measured apart (ahead-of-time lowering), never inside a rate.

    resnet-jax bench --quick                    # CPU smoke test, < 2 minutes on 2 cores
    resnet-jax bench --out bench.jsonl          # the full set (GPU): R20/56/110, R50, f32/bf16
    resnet-jax bench --parts compile --dtypes float32 --image_size 8   # depth 20..1202, CPU
    resnet-jax bench --parts pipeline --quick   # host transforms, < 2 minutes on 2 cores
    resnet-jax bench --device-check --out DIR   # one call on a lent GPU (see --device-check --help)
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import jax

from resnet_jax import runs
from resnet_jax.models import DTYPES, parse_model_name
from resnet_jax.models.layers import CONV_IMPLS
from resnet_jax.bench import compile as compile_bench
from resnet_jax.bench import device_check

from resnet_jax.bench.steps import DEFAULT_MODELS, PARTS, COMPILE_MODELS, seeds_formulations
from resnet_jax.bench.suite import run
from resnet_jax.bench.summary import read_records, summary_markdown


def _csv(text: str) -> list[str]:
    return [t for t in (x.strip() for x in text.split(",")) if t]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=argv[0], description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=None, help=f"default: {','.join(DEFAULT_MODELS)}")
    p.add_argument("--dtypes", default=None, help="default: float32,bfloat16")
    p.add_argument("--parts", default=None, help=f"subset of {','.join(PARTS)} (default: all)")
    p.add_argument("--steps", type=int, default=300, help="timed steps per window")
    p.add_argument("--repeats", type=int, default=3,
                   help="timing windows per program, round-robin; the fastest counts")
    p.add_argument("--steps_per_call", type=int, default=50,
                   help="steps scanned per call (accelerators; CPU runs 1, see Engine.train_chunk)")
    p.add_argument("--batch_size", type=int, default=None, help="default: 128 CIFAR, 256 ImageNet")
    p.add_argument("--image_size", type=int, default=None, help="default: 32 CIFAR, 224 ImageNet")
    p.add_argument("--seeds", type=int, default=5, help="seeds for the seeds part")
    p.add_argument("--seeds_modes", default="loop,vmap,vmap+im2col,devices",
                   help="formulations for the seeds part: a seeds_mode, +im2col for convs as matmuls "
                        "(devices only with several devices: on one it is the loop program)")
    p.add_argument("--conv_impls", default="xla",
                   help=f"our step with these conv implementations ({','.join(CONV_IMPLS)})")
    p.add_argument("--e2e_steps", type=int, default=2_000)
    p.add_argument("--e2e_eval_every", type=int, default=1_000)
    p.add_argument("--e2e_dataset", default="synthetic", help="synthetic (CIFAR-sized) or digits")
    p.add_argument("--e2e_seeds", type=int, default=1,
                   help="seeds trained together in the e2e runs (images/s summed over them)")
    p.add_argument("--e2e_seeds_mode", default="loop", help="their formulation, as --seeds_modes")
    p.add_argument("--compile_models", default=",".join(COMPILE_MODELS),
                   help="models of the compile part (default: Table 6's depths 20 to 1202)")
    p.add_argument("--compile_forms", default="scan,unrolled",
                   help=f"block forms of the compile part: {','.join(compile_bench.FORMS)}")
    p.add_argument("--unrolled_max_depth", type=int, default=110,
                   help="compile part: skip unrolled forms deeper than this (ResNet-1202 unrolled "
                        "exhausts 24 GB compiling its step on CPU)")
    p.add_argument("--compile_chunk", type=int, default=None,
                   help="steps in the compile part's scanned chunk (default: --steps_per_call)")
    p.add_argument("--compile_programs", default=",".join(compile_bench.PROGRAMS),
                   help="programs of the compile part: init, step (1 step per call), chunk "
                        "(--compile_chunk steps per call, as accelerators run)")
    p.add_argument("--compile_timed", default="step",
                   help="compile part: the programs whose steps are also run and timed (step, chunk)")
    p.add_argument("--compile_timeout", type=float, default=900.0,
                   help="seconds before a compile-part process is stopped and recorded as failed")
    p.add_argument("--pipeline_images", type=int, default=None,
                   help="pipeline part: JPEGs per quality, default 256 (the multi-scale test uses "
                        "the first 16)")
    p.add_argument("--pipeline_qualities", default="90,95", help="pipeline part: JPEG qualities")
    p.add_argument("--pipeline_rounds", type=int, default=None,
                   help="pipeline part: alternated timing rounds per transform, default 5 (the "
                        "median counts)")
    p.add_argument("--pipeline_workers", default=None,
                   help="pipeline part: grain worker counts to time end to end (default: 1, 2, 4, "
                        "... up to this host's cores; 0 = in the main process)")
    p.add_argument("--pipeline_seconds", type=float, default=None,
                   help="pipeline part: seconds grain reads per worker count (the rate is the "
                        "second half's), default 20")
    p.add_argument("--model_rate", type=float, default=6_500,
                   help="pipeline part: the device's images/s to feed (default: ResNet-50, bf16, "
                        "one current GPU)")
    p.add_argument("--out", default=None, help="also append the JSON lines to this file")
    p.add_argument("--summary", default=None, help="write the markdown tables to this file")
    p.add_argument("--summarize", metavar="JSONL", default=None,
                   help="measure nothing: print the tables and speed targets of the records in "
                        "JSONL (e.g. several partial runs appended to one --out file)")
    p.add_argument("--quick", action="store_true",
                   help="CPU smoke test (< 2 min on 2 cores): ResNet-20 float32 on 8x8 inputs, "
                        "3 windows of 10 steps, the loop for 60 steps on digits; no seeds part")
    args = p.parse_args(argv[1:])
    if args.quick:
        args.models = args.models or "cifar_resnet20"
        args.dtypes = args.dtypes or "float32"
        args.parts = args.parts or "step,reference,e2e"
        args.image_size, args.steps, args.repeats = args.image_size or 8, 10, 3
        args.e2e_steps, args.e2e_eval_every, args.e2e_dataset = 60, 20, "digits"
        for name, default in (("pipeline_images", 32), ("pipeline_rounds", 3), ("pipeline_seconds", 6.0),
                              ("pipeline_workers", "2")):
            if getattr(args, name) is None:
                setattr(args, name, default)
    for name, default in (("pipeline_images", 256), ("pipeline_rounds", 5), ("pipeline_seconds", 20.0)):
        if getattr(args, name) is None:
            setattr(args, name, default)
    args.models = _csv(args.models or ",".join(DEFAULT_MODELS))
    args.dtypes = _csv(args.dtypes or "float32,bfloat16")
    args.parts = _csv(args.parts or ",".join(PARTS))
    args.seeds_modes, errors = seeds_formulations(args.seeds_modes)
    errors += seeds_formulations(args.e2e_seeds_mode)[1]
    args.conv_impls = _csv(args.conv_impls)
    args.compile_models = _csv(args.compile_models)
    args.compile_forms = _csv(args.compile_forms)
    args.compile_programs, args.compile_timed = _csv(args.compile_programs), _csv(args.compile_timed)
    args.compile_chunk = args.compile_chunk or args.steps_per_call
    cores = os.cpu_count() or 1
    default_workers = sorted({min(2 ** k, cores) for k in range(cores.bit_length() + 1)})
    try:
        args.pipeline_qualities = [int(q) for q in _csv(args.pipeline_qualities)]
        args.pipeline_workers = ([int(n) for n in _csv(args.pipeline_workers)]
                                 if args.pipeline_workers else default_workers)
    except ValueError:
        errors.append("--pipeline_qualities and --pipeline_workers take comma-separated integers")
        args.pipeline_qualities, args.pipeline_workers = [90], [1]
    errors += [f"--pipeline_qualities: {q} is not a JPEG quality (1-100)"
               for q in args.pipeline_qualities if not 1 <= q <= 100]
    errors += [f"--pipeline_workers: {n} is negative" for n in args.pipeline_workers if n < 0]
    errors += [f"--{name} must be positive" for name in ("pipeline_images", "pipeline_rounds",
                                                         "pipeline_seconds") if getattr(args, name) <= 0]
    errors += [f"unknown compile form {x!r} (expected {', '.join(compile_bench.FORMS)})"
               for x in args.compile_forms if x not in compile_bench.FORMS]
    errors += [f"unknown compile program {x!r} (expected {', '.join(compile_bench.PROGRAMS)})"
               for x in args.compile_programs + args.compile_timed if x not in compile_bench.PROGRAMS]
    errors += [f"unknown part {x!r} (expected {', '.join(PARTS)})" for x in args.parts if x not in PARTS]
    errors += [f"unknown dtype {x!r}" for x in args.dtypes if x not in DTYPES]
    errors += [f"unknown conv impl {x!r}" for x in args.conv_impls if x not in CONV_IMPLS]
    for model in args.models + args.compile_models:
        try:
            parse_model_name(model)
        except ValueError as e:
            errors.append(str(e))
    for name in ("steps", "repeats", "steps_per_call", "seeds", "e2e_steps", "e2e_eval_every",
                 "e2e_seeds", "compile_chunk", "compile_timeout", "model_rate"):
        if getattr(args, name) <= 0:
            errors.append(f"--{name} must be positive")
    if "e2e" in args.parts and args.e2e_steps < 2 * args.e2e_eval_every:
        errors.append("--e2e_steps must be at least 2 * --e2e_eval_every (two evaluations)")
    if errors:
        p.exit(2, f"{argv[0]}: error: {errors[0]}\n")
    return args


def parse_device_check_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=f"{argv[0]} --device-check", description=device_check.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device-check", action="store_true", required=True)
    p.add_argument("--budget", type=float, default=None,
                   help="seconds for all parts together (default 420: one 8-minute call with room "
                        "for the start; --quick: 600)")
    p.add_argument("--out", default="out/device_check",
                   help="folder for device_check.json, device_check.md and device_check.log")
    p.add_argument("--parts", default=",".join(p.name for p in device_check.PARTS),
                   help="subset, by name or letter, in the order of value: "
                        + ", ".join(f"{p.key} {p.name}" for p in device_check.PARTS))
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes (ResNet-8, 8x8 images, a few steps): the whole check on a CPU in "
                        "minutes, to test it before any GPU")
    args = p.parse_args(argv[1:])
    args.budget = args.budget or (600.0 if args.quick else 420.0)
    args.parts = tuple(_csv(args.parts))
    known = {x for part in device_check.PARTS for x in (part.key, part.name)}
    if unknown := [x for x in args.parts if x not in known]:
        p.exit(2, f"{argv[0]}: error: unknown part {unknown[0]!r} (expected "
                  f"{', '.join(part.name for part in device_check.PARTS)})\n")
    if args.budget <= 0:
        p.exit(2, f"{argv[0]}: error: --budget must be positive\n")
    return args


def device_check_main(argv: list[str]) -> None:
    """Exit 0 when every part ran or was cut by the budget, 1 when one failed, 2 bad arguments, 3
    when --out cannot be written."""
    args = parse_device_check_args(argv)
    try:
        os.makedirs(args.out, exist_ok=True)
        open(os.path.join(args.out, "device_check.log"), "a").close()
    except OSError as e:
        print(f"{argv[0]}: error: cannot write {e.filename or args.out} ({e.strerror})", file=sys.stderr)
        sys.exit(3)
    report = device_check.run(budget_s=args.budget, out_dir=args.out, quick=args.quick, parts=args.parts,
                              say=lambda line: print(line, file=sys.stderr, flush=True))
    print(f"device check written to {args.out}/device_check.json and device_check.md", file=sys.stderr)
    sys.exit(1 if any(p["status"] == "failed" for p in report["parts"]) else 0)


def main(argv: list[str]) -> None:
    if "--device-check" in argv[1:]:
        device_check_main(argv)
    args = parse_args(argv)
    if args.summarize:
        try:
            records = read_records(args.summarize)
        except (OSError, ValueError) as e:
            print(f"{argv[0]}: error: cannot read {args.summarize} ({e})", file=sys.stderr)
            sys.exit(2)
        print(summary_markdown(records), end="")
        return
    try:  # fail before measuring, not after
        for path in filter(None, (args.out, args.summary)):
            open(path, "a").close()
    except OSError as e:
        print(f"{argv[0]}: error: cannot write {e.filename} ({e.strerror})", file=sys.stderr)
        sys.exit(2)
    if jax.default_backend() == "cpu" and not args.quick:
        print(f"{argv[0]}: note: no accelerator, measuring on the CPU", file=sys.stderr)
    out = runs.MetricsLog(args.out, enabled=bool(args.out))  # JSON lines, as metrics.jsonl

    def emit(r: dict) -> None:
        print(json.dumps(r), flush=True)
        out.append(r)

    records = run(args, emit)
    markdown = summary_markdown(records)
    print(markdown, file=sys.stderr)
    if args.summary:
        runs.write_text(args.summary, markdown)
