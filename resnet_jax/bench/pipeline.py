"""The ImageNet host pipeline: per-core images/s of our transforms and of the straightforward PIL
reference, the worker processes a device's rate needs, and grain's end-to-end rate.

The JPEGs are cut from real photographs (the two scikit-learn ships), resized to ImageNet's common
shapes (shorter side 333-500, the longer 500) and re-encoded, at quality 90 and 95: noise would
decode at an unrealistic rate (entropy coding dominates decoding).
"""

from __future__ import annotations

import glob
import importlib.util
import io
import math
import os
import platform
import time
from typing import Callable

import numpy as np
from PIL import Image

from resnet_jax.data import imagenet_reference as reference
from resnet_jax.data import imagenet_transforms as T
from resnet_jax.data.imagenet_transforms import simplejpeg

# (height, width) of ImageNet's most common image shapes, and how often each is drawn.
IMAGENET_SHAPES = ((375, 500), (333, 500), (500, 375), (500, 500), (500, 333), (400, 500), (281, 500))
SHAPE_WEIGHTS = (0.38, 0.16, 0.16, 0.08, 0.08, 0.08, 0.06)


def sample_photographs() -> list[np.ndarray]:
    """The photographs scikit-learn ships (china.jpg, flower.jpg: 427x640), read from its package
    folder: importing sklearn.datasets for them takes seconds."""
    spec = importlib.util.find_spec("sklearn")
    folder = os.path.join(spec.submodule_search_locations[0], "datasets", "images") if spec else ""
    files = sorted(glob.glob(os.path.join(folder, "*.jpg")))
    if not files:
        from sklearn.datasets import load_sample_images  # noqa: PLC0415 (the documented way, slower)

        return list(load_sample_images().images)
    return [np.asarray(Image.open(f).convert("RGB")) for f in files]


def natural_jpegs(num: int, quality: int = 90, seed: int = 0, shapes=IMAGENET_SHAPES,
                  weights=SHAPE_WEIGHTS) -> list[bytes]:
    """`num` JPEGs cut from scikit-learn's sample photographs (a random 60-100 % region), resized
    with Lanczos to one of `shapes` and encoded at `quality` (4:2:0 chroma, as most of ImageNet)."""
    photos = sample_photographs()
    rng = np.random.default_rng(seed)
    out = []
    for i in range(num):
        photo = photos[i % len(photos)]
        h, w = shapes[rng.choice(len(shapes), p=np.asarray(weights) / np.sum(weights))]
        ph, pw = photo.shape[:2]
        # the largest region of the target's aspect that fits, shrunk by a random 60-100 %
        ch, cw = (ph, round(ph * w / h)) if pw * h >= ph * w else (round(pw * h / w), pw)
        f = rng.uniform(0.6, 1.0)
        ch, cw = max(1, round(ch * f)), max(1, round(cw * f))
        y, x = int(rng.integers(0, ph - ch + 1)), int(rng.integers(0, pw - cw + 1))
        image = Image.fromarray(photo[y:y + ch, x:x + cw]).resize((w, h), Image.LANCZOS)
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=quality)
        out.append(buf.getvalue())
    return out


# ---- per-core rates ------------------------------------------------------------------------------
TRANSFORMS = ("train", "center", "ten_crop", "multi_scale")
TARGET_TRAIN_SPEEDUP, TARGET_CENTER_SPEEDUP = 3.0, 1.7  # ours / reference per core (docs/speed.md)
PAPER_SCALES = (224, 256, 384, 480, 640)


def _transform(name: str, impl: str) -> Callable[[dict, np.random.Generator], object]:
    """One record -> its transformed pixels; impl: reference, pil, fast, or decode_{pil,fast} (the
    floor: decoding alone, the bytes to an HxWx3 array)."""
    if impl == "decode_fast":
        return lambda r, rng: simplejpeg.decode_jpeg(r["image"])
    if impl == "decode_pil":
        return lambda r, rng: np.asarray(Image.open(io.BytesIO(r["image"])).convert("RGB"))
    if impl == "reference":
        t = {"train": reference.TrainTransform(), "center": reference.CenterCrop(),
             "ten_crop": reference.TenCrop()}.get(name)
        if name == "multi_scale":  # the straightforward test: one decode and resize per scale
            return lambda r, rng: [reference.FullImage(s)(r) for s in PAPER_SCALES]
    else:
        t = {"train": T.TrainTransform(backend=impl), "center": T.CenterCrop(backend=impl),
             "ten_crop": T.TenCrop(backend=impl), "multi_scale": T.MultiScale(PAPER_SCALES, impl)}[name]
    return (lambda r, rng: t(r, rng)) if name == "train" else (lambda r, rng: t(r))


def per_core_rates(jpegs: list[bytes], transforms=TRANSFORMS, impls=None, rounds: int = 3,
                   multi_scale_images: int = 16) -> dict:
    """Images per CPU second of each (transform, impl), in this process on one thread (OpenCV's
    own threads are off): the process's CPU time, not the wall clock, so other processes sharing
    the cores slow it little. Every round runs each over all `jpegs` in turn (the multi-scale test,
    much slower, over the first `multi_scale_images`), so what load remains hits all alike; median
    of rounds, after one untimed pass over a few images (imports, first allocations)."""
    impls = impls or (["reference", "pil"] + (["fast"] if T.simplejpeg is not None else []))
    runs_ = [(name, impl) for name in transforms for impl in impls]
    runs_ += [("decode", f"decode_{b}") for b in impls if b in ("pil", "fast")]
    records = [{"image": j, "label": 0} for j in jpegs]
    rates: dict[tuple[str, str], list[float]] = {k: [] for k in runs_}
    for warm_up in [True] + [False] * rounds:
        for name, impl in runs_:
            fn, rng = _transform(name, impl), np.random.default_rng(0)
            todo = records[:multi_scale_images] if name == "multi_scale" else records
            todo = todo[:4] if warm_up else todo
            t = time.process_time()
            for r in todo:
                fn(r, rng)
            if not warm_up:
                rates[(name, impl)].append(len(todo) / max(time.process_time() - t, 1e-6))
    return {k: float(np.median(v)) for k, v in rates.items()}


def grain_rate(jpegs: list[bytes], num_workers: int, batch_size: int, seconds: float) -> float:
    """Images/s of `imagenet.train_batches` (grain, our training transform, the default worker
    settings) with `num_workers` processes, over the second half of `seconds` of reading: by then
    the batches the workers prepared while starting are used up, and the rate is theirs."""
    from resnet_jax.data import imagenet  # noqa: PLC0415 (grain: the GPU machine's bench lacks it)

    source = [{"image": j, "label": i % 1000} for i, j in enumerate(jpegs)]
    batches = imagenet.train_batches(source, batch_size, seed=0, num_workers=num_workers)
    next(batches)  # the workers have started
    start = time.perf_counter()
    stamps = [start]
    while stamps[-1] - start < seconds:
        next(batches)
        stamps.append(time.perf_counter())
    half = [t for t in stamps if t >= start + (stamps[-1] - start) / 2]
    del batches  # stops the worker processes
    if len(half) < 2:  # one batch took more than half the time
        return (len(stamps) - 1) * batch_size / (stamps[-1] - start)
    return (len(half) - 1) * batch_size / (half[-1] - half[0])


def bench_pipeline(num_images: int, qualities=(90, 95), rounds: int = 3, transforms=TRANSFORMS,
                   model_rate: float = 6_500, workers=(1, 2), grain_seconds: float = 20.0,
                   batch_size: int = 32, emit=None) -> list[dict]:
    """Records: one `pipeline` per (quality, transform, impl) with its per-core rate, its speed-up
    over the reference and the worker processes `model_rate` images/s would need; one
    `pipeline_grain` per worker count."""
    out = []
    cpu = {"host_cpus": os.cpu_count(), "host_cpu": _cpu_name()}
    for quality in qualities:
        jpegs = natural_jpegs(num_images, quality=quality)
        shape = np.mean([T.image_shape(j) for j in jpegs], 0)
        common = {"quality": quality, "images": num_images, "mean_height": round(float(shape[0])),
                  "mean_width": round(float(shape[1])),
                  "mean_kb": round(float(np.mean([len(j) for j in jpegs])) / 1e3, 1),
                  "rounds": rounds, **cpu}
        rates = per_core_rates(jpegs, transforms, rounds=rounds)
        for (name, impl), rate in rates.items():
            r = {"kind": "pipeline", "transform": name, "impl": impl, **common,
                 "images_per_sec_per_core": round(rate, 1), "model_rate": model_rate,
                 "workers_to_feed": math.ceil(model_rate / rate)}
            if (name, "reference") in rates:
                r["speedup_over_reference"] = round(rate / rates[(name, "reference")], 3)
            decode = rates.get(("decode", "decode_fast" if impl == "fast" else "decode_pil"))
            if decode and name != "decode":
                r["decode_only_over_this"] = round(decode / rate, 3)
            out.append(r)
            emit and emit(r)
        if quality == qualities[0]:
            for n in workers:
                rate = grain_rate(jpegs, n, batch_size, grain_seconds)
                r = {"kind": "pipeline_grain", "transform": "train", "impl": T.default_backend(),
                     "workers": n, "batch_size": batch_size, "seconds": grain_seconds, **common,
                     "images_per_sec": round(rate, 1),
                     "images_per_sec_per_worker": round(rate / max(n, 1), 1)}
                out.append(r)
                emit and emit(r)
    return out


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")),
                        platform.processor())
    except OSError:
        return platform.processor()


# ---- summary -------------------------------------------------------------------------------------
def targets(records: list[dict]) -> list[dict]:
    """The host pipeline's speed targets (docs/speed.md): ours over the reference per core."""
    rows = []
    for r in records:
        if r["kind"] != "pipeline" or r["impl"] != T.default_backend() or "speedup_over_reference" not in r:
            continue
        target = {"train": TARGET_TRAIN_SPEEDUP, "center": TARGET_CENTER_SPEEDUP}.get(r["transform"])
        if target:
            rows.append(dict(what=f"{r['transform']} transform ({r['impl']}), JPEG q{r['quality']}: "
                                  "ours / reference per core",
                             value=f"{r['speedup_over_reference']:.2f}x", target=f">= {target:.1f}x",
                             met=r["speedup_over_reference"] >= target))
    return rows


def summary_rows(records: list[dict]) -> list[str]:
    lines = []
    rows = [r for r in records if r["kind"] == "pipeline"]
    if rows:
        r0 = rows[0]
        lines += ["", f"host pipeline: {r0['host_cpu']}, {r0['host_cpus']} cores; one process, one "
                  f"thread; JPEGs from photographs, mean {r0['mean_height']}x{r0['mean_width']}",
                  "", "| JPEG q | transform | impl | images/s/core | x reference | decode-only / this | "
                  f"workers for {r0['model_rate']:,.0f}/s |", "|---:|---|---|---:|---:|---:|---:|"]
        for r in rows:
            lines.append(f"| {r['quality']} | {r['transform']} | {r['impl']} | "
                         f"{r['images_per_sec_per_core']:,.0f} | {r.get('speedup_over_reference', '')} | "
                         f"{r.get('decode_only_over_this', '')} | {r['workers_to_feed']} |")
    grain_rows = [r for r in records if r["kind"] == "pipeline_grain"]
    if grain_rows:
        lines += ["", "| grain end to end (train) | impl | batch | images/s | per worker |",
                  "|---:|---|---:|---:|---:|"]
        for r in grain_rows:
            lines.append(f"| {r['workers']} workers | {r['impl']} | {r['batch_size']} | "
                         f"{r['images_per_sec']:,.0f} | {r['images_per_sec_per_worker']:,.0f} |")
    return lines
