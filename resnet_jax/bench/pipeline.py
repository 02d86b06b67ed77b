"""The ImageNet host pipeline: per-core images/s of our transforms and of the straightforward PIL
reference, the worker processes a device's rate needs, and grain's end-to-end rate.

The JPEGs are cut from real photographs (the two scikit-learn ships), resized to ImageNet's common
shapes (shorter side 333-500, the longer 500) and re-encoded, at quality 90 and 95: noise would
decode at an unrealistic rate (entropy coding dominates decoding).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

# (height, width) of ImageNet's most common image shapes, and how often each is drawn.
IMAGENET_SHAPES = ((375, 500), (333, 500), (500, 375), (500, 500), (500, 333), (400, 500), (281, 500))
SHAPE_WEIGHTS = (0.38, 0.16, 0.16, 0.08, 0.08, 0.08, 0.06)


def natural_jpegs(num: int, quality: int = 90, seed: int = 0, shapes=IMAGENET_SHAPES,
                  weights=SHAPE_WEIGHTS) -> list[bytes]:
    """`num` JPEGs cut from scikit-learn's sample photographs (a random 60-100 % region), resized
    with Lanczos to one of `shapes` and encoded at `quality` (4:2:0 chroma, as most of ImageNet)."""
    from sklearn.datasets import load_sample_images  # noqa: PLC0415 (slow import; bench only)

    photos = load_sample_images().images
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
