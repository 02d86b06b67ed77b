"""A tiny generated ImageNet-like split: JPEG-encoded records of varied sizes, like tfds yields."""

import io

import numpy as np
from PIL import Image


def jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def fake_records(num: int = 24, num_classes: int = 4, min_side: int = 80, max_side: int = 160,
                 seed: int = 0) -> list[dict]:
    """Smooth random images (JPEG survives them) whose mean colour encodes the label."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(num):
        h, w = rng.integers(min_side, max_side + 1, size=2)
        label = i % num_classes
        base = np.zeros(3)
        base[label % 3] = 200 if label < 3 else 0
        ramp = np.linspace(0, 50, w)[None, :, None]
        noise = rng.normal(0, 10, (h // 8 + 1, w // 8 + 1, 3)).repeat(8, 0).repeat(8, 1)[:h, :w]
        image = np.clip(base + 30 + ramp + noise, 0, 255).astype(np.uint8)
        records.append({"image": jpeg(image), "label": label, "index": i})
    return records
