"""The straightforward ImageNet transforms of Sec 3.4: decode, resize the whole image, then crop.

The reference that `imagenet_transforms` (which decodes and resizes only what it keeps) is tested
and benchmarked against; the training pipeline does not use it.

Training: shorter side resized to a random value in [256, 480], a random 224x224 crop, random
horizontal flip. Testing: centre crop (224 after resizing to 256), 10 crops (4 corners + centre and
their flips), and whole images at a given shorter side for the fully-convolutional multi-scale test.
Mean subtraction and PCA lighting run on the device (resnet_jax.data.lighting), on whole batches.
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
from PIL import Image

from resnet_jax.data.imagenet_transforms import full_image_shape


def decode(image) -> Image.Image:
    """JPEG bytes (tfds with SkipDecoding) or an HxWx3 uint8 array -> RGB PIL image (lazy for JPEG)."""
    if isinstance(image, (bytes, np.bytes_)):
        img = Image.open(io.BytesIO(image))
    else:
        img = Image.fromarray(np.asarray(image, np.uint8))
    return img


def resize_shorter(img: Image.Image, shorter: int) -> np.ndarray:
    """Resize so the shorter side is `shorter` (aspect kept), as uint8 HxWx3."""
    w, h = img.size
    scale = shorter / min(w, h)
    size = (max(shorter, round(w * scale)), max(shorter, round(h * scale)))
    if img.format == "JPEG":  # let libjpeg decode at 1/2, 1/4 or 1/8 when that is still >= size
        img.draft("RGB", size)
    img = img.convert("RGB")
    if img.size != size:
        img = img.resize(size, Image.BILINEAR)
    return np.asarray(img, np.uint8)


def crop(image: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
    return image[top:top + size, left:left + size]


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    return crop(image, (h - size) // 2, (w - size) // 2, size)


def flip(image: np.ndarray) -> np.ndarray:
    return image[:, ::-1]


@dataclasses.dataclass(frozen=True)
class TrainTransform:
    """Scale augmentation + random crop + random flip; one grain RandomMap per example."""

    crop_size: int = 224
    scale_range: tuple[int, int] = (256, 480)

    def __call__(self, record: dict, rng: np.random.Generator) -> dict:
        shorter = int(rng.integers(self.scale_range[0], self.scale_range[1] + 1))
        image = resize_shorter(decode(record["image"]), shorter)
        h, w = image.shape[:2]
        top = int(rng.integers(0, h - self.crop_size + 1))
        left = int(rng.integers(0, w - self.crop_size + 1))
        image = crop(image, top, left, self.crop_size)
        if rng.random() < 0.5:
            image = flip(image)
        return {"image": np.ascontiguousarray(image), "label": np.int32(record["label"])}


@dataclasses.dataclass(frozen=True)
class CenterCrop:
    """The single-view test: resize the shorter side to `resize`, take the central `crop_size`."""

    crop_size: int = 224
    resize: int = 256

    def __call__(self, record: dict) -> dict:
        image = center_crop(resize_shorter(decode(record["image"]), self.resize), self.crop_size)
        return {"image": np.ascontiguousarray(image), "label": np.int32(record["label"])}


def ten_crops(image: np.ndarray, size: int) -> np.ndarray:
    """4 corners + centre, then the same 5 of the horizontally flipped image: (10, size, size, 3)."""
    h, w = image.shape[:2]
    corners = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size)]
    views = [crop(image, top, left, size) for top, left in corners] + [center_crop(image, size)]
    return np.stack(views + [flip(v) for v in views])


@dataclasses.dataclass(frozen=True)
class TenCrop:
    crop_size: int = 224
    resize: int = 256

    def __call__(self, record: dict) -> dict:
        image = resize_shorter(decode(record["image"]), self.resize)
        return {"image": ten_crops(image, self.crop_size), "label": np.int32(record["label"])}


@dataclasses.dataclass(frozen=True)
class FullImage:
    """The whole image at one test scale, and its flip: (2, H, W, 3) for the fully-conv test."""

    shorter: int

    def __call__(self, record: dict) -> dict:
        image = resize_shorter(decode(record["image"]), self.shorter)
        h, w = full_image_shape(*image.shape[:2], self.shorter)
        top, left = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
        image = image[top:top + h, left:left + w]
        return {"image": np.stack([image, flip(image)]), "label": np.int32(record["label"])}
