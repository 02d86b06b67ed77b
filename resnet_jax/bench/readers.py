"""Images/s of one process through each ImageNet reader, on the same generated JPEGs.

The readers are the folder tree and the official tars (data/imagenet_files.py) and the tfds
ArrayRecord directory that `resnet-jax prepare imagenet` writes (read by `tfds.data_source`, as
`tfds build` output is). Each is timed over a random permutation of all records (the access pattern
of a shuffled epoch), reading only, and reading plus decoding with PIL (what a grain worker does
before resizing), in alternation round after round so that load from other processes on a shared
machine falls on all readers alike. The files sit in the page cache: this is the readers' CPU cost
per image, not the disk's speed.
"""

from __future__ import annotations

import io
import os
import time

import numpy as np


def _jpeg(rng: np.random.Generator, height: int, width: int) -> bytes:
    """A photo-like JPEG: smooth colour fields plus fine texture, ~100 KB at 500x375 (ImageNet's
    typical size and file size)."""
    from PIL import Image  # noqa: PLC0415

    coarse = rng.normal(128, 50, (height // 16 + 1, width // 16 + 1, 3)).repeat(16, 0).repeat(16, 1)
    fine = rng.normal(0, 18, (height, width, 3))
    image = np.clip(coarse[:height, :width] + fine, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _tar_bytes(files: dict[str, bytes]) -> bytes:
    import tarfile  # noqa: PLC0415

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def val_wnid(name: str) -> str:
    """The class of official validation image `ILSVRC2012_val_<8 digits>.JPEG`, per the devkit."""
    from resnet_jax.data.imagenet_files import validation_wnids  # noqa: PLC0415

    return validation_wnids()[int(name[len("ILSVRC2012_val_"):-len(".JPEG")]) - 1]


def write_imagenet_folders(root: str, train: dict, val: dict) -> None:
    """`train` ({wnid: {file name: JPEG}}) and `val` ({file name: JPEG}) as root/train/<wnid>/*.JPEG
    and root/val/<wnid>/*.JPEG (the tree PyTorch users train from)."""
    for wnid, files in train.items():
        os.makedirs(os.path.join(root, "train", wnid), exist_ok=True)
        for name, data in files.items():
            with open(os.path.join(root, "train", wnid, name), "wb") as f:
                f.write(data)
    for name, data in val.items():
        os.makedirs(os.path.join(root, "val", val_wnid(name)), exist_ok=True)
        with open(os.path.join(root, "val", val_wnid(name), name), "wb") as f:
            f.write(data)


def write_imagenet_tars(root: str, train: dict, val: dict) -> None:
    """The same as ILSVRC2012_img_train.tar (a tar of <wnid>.tar, each of <wnid>_<n>.JPEG) and
    ILSVRC2012_img_val.tar (flat ILSVRC2012_val_<8 digits>.JPEG), as image-net.org ships them."""
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "ILSVRC2012_img_train.tar"), "wb") as f:
        f.write(_tar_bytes({f"{w}.tar": _tar_bytes(files) for w, files in train.items()}))
    with open(os.path.join(root, "ILSVRC2012_img_val.tar"), "wb") as f:
        f.write(_tar_bytes(val))


def write_sample(root: str, num_train: int = 600, num_val: int = 40, seed: int = 0) -> int:
    """A folder tree and the official tars of the same JPEGs under `root`/folders, `root`/tars;
    returns the number of classes (those of the first `num_val` validation images)."""
    from resnet_jax.data.imagenet_files import validation_wnids  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    classes = sorted(set(validation_wnids()[:num_val]))
    val = {f"ILSVRC2012_val_{k:08d}.JPEG": _jpeg(rng, 375, 500) for k in range(1, num_val + 1)}
    train = {w: {} for w in classes}
    for k in range(num_train):
        w = classes[k % len(classes)]
        train[w][f"{w}_{k}.JPEG"] = _jpeg(rng, *((375, 500) if k % 3 else (500, 333)))
    write_imagenet_folders(os.path.join(root, "folders"), train, val)
    write_imagenet_tars(os.path.join(root, "tars"), train, val)
    return len(classes)


def reader_rates(root: str, rounds: int = 5, num_train: int = 600, num_val: int = 40,
                 seed: int = 0) -> dict:
    """{'index_s', 'prepare_images_per_s', 'read', 'read_decode'}: per reader, the median images/s
    over `rounds` alternating passes, one process, one thread."""
    import tensorflow_datasets as tfds  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415

    from resnet_jax.data import imagenet_files, imagenet_pack  # noqa: PLC0415

    num_classes = write_sample(root, num_train=num_train, num_val=num_val, seed=seed)
    sources, index_s = {}, {}
    for form in ("folders", "tars"):
        start = time.perf_counter()
        sources[form] = imagenet_files.open_split("train", os.path.join(root, form), num_classes)
        index_s[form] = time.perf_counter() - start
    splits = {s: imagenet_files.open_split(s, os.path.join(root, "tars"), num_classes)
              for s in imagenet_pack.SPLITS}
    start = time.perf_counter()
    imagenet_pack.prepare(os.path.join(root, "tars"), os.path.join(root, "tfds"), splits, progress=None)
    prepare_rate = sum(len(s) for s in splits.values()) / (time.perf_counter() - start)
    sources["tfds"] = tfds.data_source("imagenet2012", split="train", data_dir=os.path.join(root, "tfds"),
                                       decoders={"image": tfds.decode.SkipDecoding()})

    def decode(data):
        with Image.open(io.BytesIO(data)) as img:
            img.load()

    rng = np.random.default_rng(seed)
    times = {(mode, form): [] for mode in ("read", "read_decode") for form in sources}
    for _ in range(rounds):
        order = rng.permutation(num_train).tolist()
        for mode in ("read", "read_decode"):
            for form, source in sources.items():
                start = time.perf_counter()
                for i in order:
                    data = source[i]["image"]
                    if mode == "read_decode":
                        decode(data)
                times[(mode, form)].append(time.perf_counter() - start)
    rates = {mode: {form: round(num_train / float(np.median(times[(mode, form)])))
                    for form in sources} for mode in ("read", "read_decode")}
    return {"images": num_train, "mean_jpeg_kb": round(float(np.mean(
                [len(sources["tars"][i]["image"]) for i in range(num_train)])) / 1024, 1),
            "index_s": {k: round(v, 3) for k, v in index_s.items()},
            "prepare_images_per_s": round(prepare_rate), **rates}
