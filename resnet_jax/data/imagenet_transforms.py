"""Per-image ImageNet transforms of Sec 3.4, run on the host (in grain workers) on uint8 images.

Training: shorter side resized to a random value in [256, 480], a random 224x224 crop, random
horizontal flip. Testing: centre crop (224 after resizing to 256), 10 crops (4 corners + centre and
their flips), and whole images at a given shorter side for the fully-convolutional multi-scale test.
Mean subtraction and PCA lighting run on the device (resnet_jax.data.lighting), on whole batches.

Each transform first draws (or fixes) a `Window`: the rectangle it keeps of the image resized to its
shorter side, in that resized image's coordinates. Only that rectangle is then resampled from the
decoded image, so no pixel is resized only to be cropped away; the output is the straightforward
"resize the whole image, then crop" of `imagenet_reference` up to the resampling filter (below).
The random draws are the reference's, in its order, from the same generator, so the augmentation
distribution is the paper's: shorter side uniform in the closed range, crop position uniform over
the valid positions, flip with probability 1/2.

Backends (`backend=`; "auto" or None: "fast" when both of its packages import, else "pil"; a run
names one in its config, `image_backend`, and records what "auto" resolved to):
- "pil": Pillow decodes and `Image.resize(box=...)` resamples the window with Pillow's BILINEAR, a
  triangle filter whose support widens with the shrink factor (antialiased): the reference's own
  filter, evaluated only inside the window; outputs equal the reference's to within 2 levels
  (the box's float coordinates against the whole image's scale, rounded in two passes).
- "fast": simplejpeg decodes (the same libjpeg-turbo, the same pixels as Pillow) and OpenCV's
  warpAffine resamples the window, bilinear with pixel centres aligned as in Pillow (coordinates in
  1/32 pixel, weights in fixed point). Enlarging, that is Pillow's filter; shrinking, bilinear
  keeps 2x2 taps and does not antialias, as OpenCV's INTER_LINEAR in Caffe-era pipelines.
Both decode with libjpeg-turbo's accurate integer DCT and fancy chroma upsampling, and both shrink by
1/2, 1/4 or 1/8 inside the decoder (`draft`) exactly where the reference does: when the whole
resized image is at most that fraction of the source, so shrinking by the resampler stays below 2.
A file simplejpeg cannot read goes to Pillow; arrays take the same window arithmetic.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
from typing import Iterator, Sequence

import numpy as np
from PIL import Image

from resnet_jax.data.base import DatasetError

try:  # optional: the "fast" backend (`pip install resnet-jax[fast]`); Pillow is the fallback
    import cv2
    import simplejpeg
except ImportError:
    cv2 = simplejpeg = None
else:
    cv2.setNumThreads(1)  # one grain worker process per core: OpenCV's own threads would oversubscribe

BACKENDS = ("fast", "pil")

# The fully-convolutional test keeps the whole image, so each (scale, aspect) is a new input shape
# to compile. The longer side is cropped (centred) down to a multiple of this, and to at most
# MAX_ASPECT times the shorter side, which bounds the shapes per scale to a handful.
SIDE_MULTIPLE = 32
MAX_ASPECT = 4 / 3

def default_backend() -> str:
    return "fast" if simplejpeg is not None else "pil"


def check_backend(backend: str | None) -> str:
    """`backend` as one of BACKENDS ("auto" or None: `default_backend()`); ValueError if it is
    unknown or cannot run here."""
    backend = default_backend() if backend in (None, "auto") else backend
    if backend not in BACKENDS:
        raise ValueError(f"unknown transform backend {backend!r}: expected one of {BACKENDS}")
    if backend == "fast" and simplejpeg is None:
        raise ValueError("the 'fast' transform backend needs simplejpeg and opencv-python-headless "
                         "(pip install 'resnet-jax[fast]')")
    return backend


def _is_jpeg_bytes(image) -> bool:
    return isinstance(image, (bytes, np.bytes_))


def image_shape(image) -> tuple[int, int]:
    """(height, width) of JPEG bytes (from the header, nothing decoded) or of an HxWx3 array."""
    if not _is_jpeg_bytes(image):
        return tuple(np.shape(image)[:2])
    if simplejpeg is not None:
        try:
            return tuple(simplejpeg.decode_jpeg_header(image)[:2])
        except ValueError:
            pass  # not a JPEG simplejpeg reads: Pillow tells
    try:
        w, h = Image.open(io.BytesIO(image)).size
    except (OSError, SyntaxError, ValueError) as e:  # Pillow's errors for data it cannot read
        raise _Undecodable(e) from None
    return h, w


class _Undecodable(Exception):
    """The bytes of an image that neither decoder reads (raised where a decoder is called)."""


@contextlib.contextmanager
def _named(record: dict) -> Iterator[None]:
    """An image no decoder reads stops the run with one line naming its file (the readers already
    skip files that are empty or cut short; this is one damaged inside), not a worker's traceback."""
    try:
        yield
    except _Undecodable as e:
        name = record.get("file_name", b"")
        name = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
        cause = e.args[0]
        reason = (str(cause).split(" <_io.BytesIO")[0].splitlines() or [type(cause).__name__])[0][:200]
        raise DatasetError(f"cannot decode image {name or '(unnamed)'} (label {record.get('label')}): "
                           f"{reason}; replace or remove the file and rerun") from None


def resized_shape(height: int, width: int, shorter: int) -> tuple[int, int]:
    """(H, W) of the image resized so its shorter side is `shorter`, aspect kept (as the reference)."""
    scale = shorter / min(height, width)
    return max(shorter, round(height * scale)), max(shorter, round(width * scale))


@dataclasses.dataclass(frozen=True)
class Window:
    """Rows [top, top + height) and columns [left, left + width) of the image resized to `resized`
    (H, W), mirrored left-right if `flip`."""

    resized: tuple[int, int]
    top: int
    left: int
    height: int
    width: int
    flip: bool = False


def train_window(height: int, width: int, rng: np.random.Generator, crop_size: int = 224,
                 scale_range: tuple[int, int] = (256, 480)) -> Window:
    """Scale augmentation (Sec 3.4): shorter side uniform in the closed `scale_range`, a uniformly
    placed `crop_size` square, flipped with probability 1/2 (the reference's draws, in its order)."""
    shorter = int(rng.integers(scale_range[0], scale_range[1] + 1))
    h, w = resized_shape(height, width, shorter)
    top = int(rng.integers(0, h - crop_size + 1))
    left = int(rng.integers(0, w - crop_size + 1))
    return Window((h, w), top, left, crop_size, crop_size, bool(rng.random() < 0.5))


def center_window(height: int, width: int, crop_size: int = 224, resize: int = 256) -> Window:
    h, w = resized_shape(height, width, resize)
    return Window((h, w), (h - crop_size) // 2, (w - crop_size) // 2, crop_size, crop_size)


def full_image_shape(height: int, width: int, shorter: int) -> tuple[int, int]:
    """The (H, W) a whole image is tested at: shorter side `shorter`, longer side bucketed."""
    longer = max(height, width) * shorter / min(height, width)
    longer = min(longer, shorter * MAX_ASPECT)
    longer = max(shorter, int(longer) // SIDE_MULTIPLE * SIDE_MULTIPLE)
    return (shorter, longer) if height <= width else (longer, shorter)


def full_window(height: int, width: int, shorter: int) -> Window:
    """The centred, bucketed whole image at test scale `shorter` (see `full_image_shape`)."""
    h, w = resized_shape(height, width, shorter)
    fh, fw = full_image_shape(h, w, shorter)
    return Window((h, w), (h - fh) // 2, (w - fw) // 2, fh, fw)


def _draft_factor(shape: tuple[int, int], target: tuple[int, int]) -> int:
    """The largest of 1, 2, 4, 8 by which libjpeg may shrink while decoding and still give at least
    `target` pixels: Pillow's `draft` rule, which the reference applies to the whole resized image."""
    scale = min(shape[0] // target[0], shape[1] // target[1])
    return next((f for f in (8, 4, 2) if scale >= f), 1)


def _decode(image, window: Window, backend: str):
    """The source pixels a window is resampled from: an HxWx3 array ("fast") or an RGB PIL image."""
    if backend == "fast":
        if not _is_jpeg_bytes(image):
            return np.asarray(image, np.uint8)
        try:
            h, w = simplejpeg.decode_jpeg_header(image)[:2]
            f = _draft_factor((h, w), window.resized)
            return simplejpeg.decode_jpeg(image, "RGB", min_factor=f, min_height=-(-h // f),
                                          min_width=-(-w // f))
        except ValueError:  # not a JPEG libjpeg-turbo's simple API reads (PNG, ...): Pillow decodes
            return np.asarray(_decode(image, window, "pil"))
    if not _is_jpeg_bytes(image):
        return Image.fromarray(np.asarray(image, np.uint8))
    try:
        img = Image.open(io.BytesIO(image))
        img.draft("RGB", window.resized[::-1])  # the reference's draft: the same decoded pixels
        return img.convert("RGB")
    except (OSError, SyntaxError, ValueError) as e:  # Pillow's errors for data it cannot read
        raise _Undecodable(e) from None


def _affine(source: tuple[int, int], window: Window) -> np.ndarray:
    """The map from output pixel (x, y) to source pixel coordinates, pixel centres aligned: output
    pixel i's centre (i + 1/2) in the window sits at (offset + i + 1/2) * scale in the source."""
    sy, sx = source[0] / window.resized[0], source[1] / window.resized[1]
    y0 = (window.top + 0.5) * sy - 0.5
    if window.flip:  # output column j is window column width - 1 - j
        return np.array([[-sx, 0, (window.left + window.width - 0.5) * sx - 0.5], [0, sy, y0]])
    return np.array([[sx, 0, (window.left + 0.5) * sx - 0.5], [0, sy, y0]])


def _resample(source, window: Window) -> np.ndarray:
    if isinstance(source, Image.Image):
        sy, sx = source.size[1] / window.resized[0], source.size[0] / window.resized[1]
        box = (window.left * sx, window.top * sy,
               min(source.size[0], (window.left + window.width) * sx),
               min(source.size[1], (window.top + window.height) * sy))
        img = source.resize((window.width, window.height), Image.BILINEAR, box=box)
        if window.flip:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return np.asarray(img, np.uint8)
    if source.shape[:2] == window.resized and not window.flip:  # nothing to resample: a slice
        return np.ascontiguousarray(source[window.top:window.top + window.height,
                                           window.left:window.left + window.width])
    return cv2.warpAffine(source, _affine(source.shape, window), (window.width, window.height),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def render_many(image, windows: Sequence[Window], backend: str | None = None) -> list[np.ndarray]:
    """The (height, width, 3) uint8 pixels of each window of one image (JPEG bytes or an HxWx3
    uint8 array); decoded once per distinct draft factor, so each window gets the same pixels as
    `render` would give it alone."""
    backend = check_backend(backend)
    shape = image_shape(image) if _is_jpeg_bytes(image) else None
    decoded, out = {}, []
    for window in windows:
        key = _draft_factor(shape, window.resized) if shape else 1
        if key not in decoded:
            decoded[key] = _decode(image, window, backend)
        out.append(_resample(decoded[key], window))
    return out


def render(image, window: Window, backend: str | None = None) -> np.ndarray:
    """The (height, width, 3) uint8 pixels of `window` of JPEG bytes or an HxWx3 uint8 array."""
    backend = check_backend(backend)
    return _resample(_decode(image, window, backend), window)


def flip(image: np.ndarray) -> np.ndarray:
    """The left-right mirror, as a new array (OpenCV's copy is quicker than numpy's strided one for
    3-channel rows)."""
    return cv2.flip(image, 1) if cv2 is not None else np.ascontiguousarray(image[:, ::-1])


@dataclasses.dataclass(frozen=True)
class TrainTransform:
    """Scale augmentation + random crop + random flip; one grain RandomMap per example."""

    crop_size: int = 224
    scale_range: tuple[int, int] = (256, 480)
    backend: str | None = None

    def __call__(self, record: dict, rng: np.random.Generator) -> dict:
        with _named(record):
            window = train_window(*image_shape(record["image"]), rng, self.crop_size, self.scale_range)
            return {"image": render(record["image"], window, self.backend),
                    "label": np.int32(record["label"])}


@dataclasses.dataclass(frozen=True)
class CenterCrop:
    """The single-view test: resize the shorter side to `resize`, take the central `crop_size`."""

    crop_size: int = 224
    resize: int = 256
    backend: str | None = None

    def __call__(self, record: dict) -> dict:
        with _named(record):
            window = center_window(*image_shape(record["image"]), self.crop_size, self.resize)
            return {"image": render(record["image"], window, self.backend),
                    "label": np.int32(record["label"])}


def ten_crops(image: np.ndarray, size: int) -> np.ndarray:
    """4 corners + centre, then the same 5 of the horizontally flipped image: (10, size, size, 3)."""
    h, w = image.shape[:2]
    corners = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size)]
    centre = ((h - size) // 2, (w - size) // 2)
    views = [image[t:t + size, x:x + size] for t, x in corners + [centre]]
    return np.stack(views + [flip(v) for v in views])


@dataclasses.dataclass(frozen=True)
class TenCrop:
    """10-crop test: the corner crops span the whole resized image, so all of it is resampled."""

    crop_size: int = 224
    resize: int = 256
    backend: str | None = None

    def __call__(self, record: dict) -> dict:
        with _named(record):
            h, w = resized_shape(*image_shape(record["image"]), self.resize)
            image = render(record["image"], Window((h, w), 0, 0, h, w), self.backend)
        return {"image": ten_crops(image, self.crop_size), "label": np.int32(record["label"])}


@dataclasses.dataclass(frozen=True)
class FullImage:
    """The whole image at one test scale, and its flip: (2, H, W, 3) for the fully-conv test."""

    shorter: int
    backend: str | None = None

    def __call__(self, record: dict) -> dict:
        with _named(record):
            image = render(record["image"], full_window(*image_shape(record["image"]), self.shorter),
                           self.backend)
        return {"image": np.stack([image, flip(image)]), "label": np.int32(record["label"])}


@dataclasses.dataclass(frozen=True)
class MultiScale:
    """`FullImage` at every scale of `scales` from one decode: {'images': one (2, H_s, W_s, 3) per
    scale, 'label'}; each equals what `FullImage(s)` gives."""

    scales: tuple[int, ...]
    backend: str | None = None

    def __call__(self, record: dict) -> dict:
        with _named(record):
            h, w = image_shape(record["image"])
            views = render_many(record["image"], [full_window(h, w, s) for s in self.scales],
                                self.backend)
        return {"images": tuple(np.stack([v, flip(v)]) for v in views),
                "label": np.int32(record["label"])}
