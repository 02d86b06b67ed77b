"""The window-first ImageNet transforms: the paper's augmentation distribution, the reference's own
draws, and pixels within a stated bound of the straightforward reference, with and without the
optional fast backend."""

import io

import numpy as np
import pytest
from imagenet_fakes import jpeg
from PIL import Image
from scipy import stats

from resnet_jax.bench.pipeline import natural_jpegs
from resnet_jax.data import imagenet_reference as R
from resnet_jax.data import imagenet_transforms as T

BACKENDS = ["pil"] + (["fast"] if T.simplejpeg is not None else [])


@pytest.fixture(scope="module")
def photos():
    """Natural JPEGs at ImageNet shapes (bounds on noise would say nothing about photographs)."""
    return natural_jpegs(8, quality=90, seed=3) + natural_jpegs(4, quality=95, seed=4)


def test_train_windows_have_the_paper_distribution():
    """Sec 3.4: shorter side uniform over the closed [256, 480], crop position uniform over the
    valid positions given the scale, flip with probability 1/2, independent of position."""
    rng = np.random.default_rng(0)
    n, (h, w), crop = 30_000, (375, 500), 224
    windows = [T.train_window(h, w, rng) for _ in range(n)]
    shorter = np.array([win.resized[0] for win in windows])  # h < w: the shorter side is the height
    counts = np.bincount(shorter - 256, minlength=225)
    assert counts.size == 225 and counts.min() > 0  # both ends of the closed range are drawn
    assert stats.chisquare(counts).pvalue > 1e-3
    # crop position: where a uniform draw over 0..(H - crop) falls into 10 equal bins, per draw
    for axis in ("top", "left"):
        observed, expected = np.zeros(10), np.zeros(10)
        for win in windows:
            positions = win.resized[0 if axis == "top" else 1] - crop + 1
            bins = np.arange(positions) * 10 // positions
            expected += np.bincount(bins, minlength=10) / positions
            observed[getattr(win, axis) * 10 // positions] += 1
        assert stats.chisquare(observed, expected).pvalue > 1e-3, axis
    flips = np.array([win.flip for win in windows])
    assert stats.binomtest(int(flips.sum()), n, 0.5).pvalue > 1e-3
    left_half = np.array([win.left < (win.resized[1] - crop) / 2 for win in windows])
    table = [[np.sum(flips & left_half), np.sum(flips & ~left_half)],
             [np.sum(~flips & left_half), np.sum(~flips & ~left_half)]]
    assert stats.chi2_contingency(table).pvalue > 1e-3


def test_train_windows_are_the_reference_transforms_draws(monkeypatch):
    """Same generator state -> the same scale, crop position and flip as the reference transform."""
    seen = {}

    def resize_shorter(img, shorter):
        seen["shorter"] = shorter
        return np.zeros((*T.resized_shape(img.size[1], img.size[0], shorter), 3), np.uint8)

    def crop(image, top, left, size):
        seen.update(top=top, left=left)
        return image[top:top + size, left:left + size]

    def flip(image):
        seen["flip"] = True
        return image

    for name, spy in (("resize_shorter", resize_shorter), ("crop", crop), ("flip", flip)):
        monkeypatch.setattr(R, name, spy)
    for i, (h, w) in enumerate([(375, 500), (500, 333), (256, 256), (600, 800)]):
        record = {"image": np.zeros((h, w, 3), np.uint8), "label": 0}
        for seed in range(25):
            seen.clear()
            R.TrainTransform()(record, np.random.default_rng([i, seed]))
            win = T.train_window(h, w, np.random.default_rng([i, seed]))
            assert (win.resized[0] if h <= w else win.resized[1]) == seen["shorter"]
            assert (win.top, win.left, win.flip) == (seen["top"], seen["left"], seen.get("flip", False))


@pytest.mark.parametrize("backend", BACKENDS)
def test_pixels_are_the_reference_transforms_within_the_stated_bound(photos, backend):
    """The bound, per backend and per window:
    - "pil": the reference's filter and decoded pixels; only the box's float coordinates differ
      from the whole image's scale in the last bits, which can flip the rounding of each of the two
      resampling passes: at most 2 levels.
    - "fast" enlarging (or keeping) a window: the same triangle filter, in fixed point with
      coordinates rounded to 1/32 pixel: at most 2 levels (rounding both sides to uint8, plus a
      64th of a pixel times these photographs' steepest edges).
    - "fast" shrinking (by less than 2: the decoder's draft takes 2 and more, as in the reference):
      bilinear without antialiasing against Pillow's widened triangle; the filters differ only near
      the new Nyquist frequency, so per image a mean difference of at most 4 levels and a PSNR of at
      least 30 dB (measured: <= 3.3 and >= 32 dB on the bench's photographs)."""
    for i, image in enumerate(photos):
        record = {"image": image, "label": 7}
        h, w = T.image_shape(image)
        rng_seed = [i, 1]
        pairs = [(T.TrainTransform(backend=backend)(record, np.random.default_rng(rng_seed)),
                  R.TrainTransform()(record, np.random.default_rng(rng_seed)),
                  T.train_window(h, w, np.random.default_rng(rng_seed)).resized),
                 (T.CenterCrop(backend=backend)(record), R.CenterCrop()(record),
                  T.resized_shape(h, w, 256)),
                 (T.FullImage(480, backend=backend)(record), R.FullImage(480)(record),
                  T.resized_shape(h, w, 480))]
        for ours, ref, resized in pairs:
            assert ours["image"].shape == ref["image"].shape and ours["image"].dtype == np.uint8
            assert ours["label"] == ref["label"] == 7
            d = np.abs(ours["image"].astype(np.int32) - ref["image"])
            if backend == "pil" or resized[0] >= h:
                assert d.max() <= 2, (i, resized, d.max())
            else:
                psnr = 10 * np.log10(255 ** 2 / max(np.mean(d.astype(np.float64) ** 2), 1e-12))
                assert d.mean() <= 4 and psnr >= 30, (i, resized, d.mean(), psnr)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ten_crops_and_multi_scale_are_their_single_window_forms(photos, backend):
    record = {"image": photos[0], "label": 1}
    views = T.TenCrop(backend=backend)(record)["image"]
    ref = R.TenCrop()(record)["image"]
    assert views.shape == ref.shape == (10, 224, 224, 3)
    np.testing.assert_array_equal(views[5:], views[:5, :, ::-1])
    scales = (224, 256, 384)
    multi = T.MultiScale(scales, backend=backend)(record)
    assert multi["label"] == 1 and len(multi["images"]) == len(scales)
    for s, images in zip(scales, multi["images"]):
        np.testing.assert_array_equal(images, T.FullImage(s, backend=backend)(record)["image"])


@pytest.mark.skipif("fast" not in BACKENDS, reason="the fast backend's packages are not installed")
def test_fast_backend_reads_what_simplejpeg_cannot_through_pillow():
    """ImageNet's train set holds a PNG and CMYK JPEGs named .JPEG: Pillow decodes what simplejpeg
    refuses, and the window is resampled as for any other image."""
    yy, xx = np.mgrid[0:90, 0:120]
    image = np.stack([xx * 2, yy * 2, (xx + yy)], -1).astype(np.uint8)  # smooth: bilinear-friendly
    png = io.BytesIO()
    Image.fromarray(image).save(png, format="PNG")
    for data in (png.getvalue(), jpeg(image)):
        record = {"image": data, "label": 0}
        fast = T.FullImage(96, backend="fast")(record)["image"]  # enlarged: the same filter
        pil = T.FullImage(96, backend="pil")(record)["image"]
        assert fast.shape == pil.shape == (2, 96, 128, 3)
        assert np.abs(fast.astype(np.int32) - pil).max() <= 2


def test_without_the_fast_packages_pillow_gives_the_same_draws(no_fast_backend, photos):
    assert T.default_backend() == "pil"
    with pytest.raises(ValueError, match="fast"):
        T.check_backend("fast")
    with pytest.raises(ValueError, match="unknown"):
        T.check_backend("cuda")
    record = {"image": photos[1], "label": 2}
    for seed in range(5):
        out = T.TrainTransform()(record, np.random.default_rng(seed))["image"]
        ref = R.TrainTransform()(record, np.random.default_rng(seed))["image"]
        assert np.abs(out.astype(np.int32) - ref).max() <= 2
    views = T.TenCrop()(record)["image"]
    np.testing.assert_array_equal(views[5:], views[:5, :, ::-1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_image_damaged_inside_stops_with_one_line_naming_its_file(backend):
    """The readers skip empty and cut-short files; one whose header is garbage fails at decode time,
    in every transform, as a DatasetError naming the file (exit 2 through `resnet-jax train`)."""
    from resnet_jax.data.base import DatasetError

    good = jpeg(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8))
    damaged = good[:2] + bytes(range(256)) * 8 + good[2 + 2048:]
    record = {"image": damaged, "label": 7, "file_name": b"n01440764_10026.JPEG"}
    transforms = [lambda r: T.TrainTransform(backend=backend)(r, np.random.default_rng(0)),
                  T.CenterCrop(backend=backend), T.TenCrop(backend=backend),
                  T.FullImage(224, backend=backend), T.MultiScale((224, 256), backend=backend)]
    for transform in transforms:
        with pytest.raises(DatasetError, match=r"^cannot decode image n01440764_10026\.JPEG \(label 7\): "
                                               r"[^\n]+; replace or remove the file and rerun$"):
            transform(record)
        transform({**record, "image": good})  # the same transform reads the intact image
