"""The CIFAR archives of their home page (https://www.cs.toronto.edu/~kriz/cifar.html), read without
TensorFlow and without running any code from the files.

What differs between CIFAR-10 and CIFAR-100 is a `Layout` record (the registry holds one per
dataset): folder and archive names, the batch files of each split, and the label fields. Four forms
of each are accepted, found by what a path holds rather than by its name: the binary `.tar.gz` or
its extracted folder (records of the label bytes, then 3072 pixel bytes: 1024 red, 1024 green,
1024 blue, each 32x32 row-major; CIFAR-10 has one label byte, CIFAR-100 a coarse then a fine one),
and the python `.tar.gz` or its extracted folder (Python 2 pickles of
{b'data': uint8 (n, 3072), b'labels' or b'coarse_labels' and b'fine_labels': [...]}, read through
`safe_pickle`).

The arrays come out in the order `tfds build cifar10` / `cifar100` stores them, so that every route
gives the same 45k/5k split (Sec 4.2) and the same batches for a seed: tfds reads the batch files in
order and numbers the images 0, 1, ... per split, then sorts them by md5(split name + str(number)).
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import tarfile
import zlib
from typing import Callable, Mapping

import numpy as np

from resnet_jax.data import safe_pickle
from resnet_jax.data import base
from resnet_jax.data.base import DatasetError

SIDE = 32
PIXEL_BYTES = 3 * SIDE * SIDE
FORMS = ("bin", "py")  # an extracted binary folder is preferred when a parent holds both


@dataclasses.dataclass(frozen=True)
class LabelField:
    """One label of a record: its name here, its key in the python batches and in tfds's records,
    and its number of classes. A binary record holds the label bytes in the layout's field order."""

    name: str
    pickle_key: bytes
    tfds_key: str
    num_classes: int


@dataclasses.dataclass(frozen=True)
class Layout:
    """How one CIFAR dataset is shipped (names as on the home page)."""

    title: str  # "CIFAR-10", for messages
    folders: Mapping[str, str]  # form ('bin'|'py') -> extracted folder
    archives: Mapping[str, str]  # form -> .tar.gz
    split_files: Mapping[str, tuple[str, ...]]  # split -> batch files (python form; binary adds .bin)
    labels: tuple[LabelField, ...]

    @property
    def record_bytes(self) -> int:
        return len(self.labels) + PIXEL_BYTES

    def files(self, form: str, split: str) -> list[str]:
        return [f"{stem}.bin" if form == "bin" else stem for stem in self.split_files[split]]


# One split's arrays: images (n, 32, 32, 3) uint8 and {label name: (n,) int32}.
Split = tuple[np.ndarray, dict[str, np.ndarray]]


def _folder_form(layout: Layout, path: str) -> str | None:
    """'bin' or 'py' if `path` is an extracted batches folder (by any batch file it holds, so that
    a folder holding only the test batch is found too)."""
    for form in FORMS:
        if any(os.path.isfile(os.path.join(path, name))
               for split in layout.split_files for name in layout.files(form, split)):
            return form
    return None


def _archive_form(layout: Layout, path: str) -> str | None:
    """'bin' or 'py' if `path` is a (gzipped) tar holding a batches folder, by its first members."""
    try:
        with tarfile.open(path, "r:*") as tar:
            for _ in range(50):  # the batches folder and its files come first in the archives
                member = tar.next()
                if member is None:
                    break
                top = member.name.split("/")[0]
                for form, folder in layout.folders.items():
                    if top == folder:
                        return form
    except (tarfile.TarError, EOFError, OSError, zlib.error):
        return None
    return None


def find(layout: Layout, data_dir: str) -> tuple[str, str, str] | None:
    """(form 'bin'|'py', kind 'folder'|'archive', path) of the archive of `layout` that `data_dir`
    is or holds, or None (then it may be a tfds data_dir). A file must be one of the two archives."""
    path = os.path.expanduser(data_dir)
    if os.path.isfile(path):
        if form := _archive_form(layout, path):
            return form, "archive", path
        raise DatasetError(f"{path}: not a {layout.title} archive ({' or '.join(layout.archives.values())}), "
                           "or a truncated or corrupt one; download it again")
    if not os.path.isdir(path) or any(os.path.isdir(os.path.join(path, name))
                                       for name in ("cifar10", "cifar100")):
        return None  # a tfds data_dir (read by cifar.py through tfds), or nothing
    if form := _folder_form(layout, path):
        return form, "folder", path
    for form in FORMS:  # a parent holding the extracted folder or the archive
        folder = os.path.join(path, layout.folders[form])
        if os.path.isdir(folder) and _folder_form(layout, folder) == form:
            return form, "folder", folder
    for form in FORMS:
        archive = os.path.join(path, layout.archives[form])
        if os.path.isfile(archive):
            found = _archive_form(layout, archive)
            if found is None:
                raise DatasetError(f"{archive}: not a readable tar.gz (truncated or corrupt download?); "
                                   "download it again")
            return found, "archive", archive
    return None


def _folder_reader(layout: Layout, folder: str) -> Callable[[str], tuple[str, bytes]]:
    def read(name: str) -> tuple[str, bytes]:
        path = os.path.join(folder, name)
        try:
            with open(path, "rb") as f:
                return path, f.read()
        except FileNotFoundError:
            raise DatasetError(f"{path}: missing; the {layout.title} folder is incomplete (extract "
                               "the archive again, or pass the .tar.gz itself)") from None
        except OSError as e:
            raise DatasetError(f"{path}: cannot read ({e.strerror or e})") from None
    return read


def _archive_reader(layout: Layout, archive: str, form: str,
                    names: list[str]) -> Callable[[str], tuple[str, bytes]]:
    """Reads the wanted members in one pass over the (gzip-compressed, so sequential) archive."""
    folder = layout.folders[form]
    wanted = {f"{folder}/{name}": name for name in names}
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                if member.name in wanted and member.isfile():
                    members[wanted[member.name]] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DatasetError(f"{archive}: truncated or corrupt archive ({reason}); download it "
                           "again") from None

    def read(name: str) -> tuple[str, bytes]:
        if name not in members:
            raise DatasetError(f"{archive}: {folder}/{name} is missing from the archive "
                               "(truncated download?); download it again")
        return f"{archive}:{folder}/{name}", members[name]
    return read


def parse_binary(layout: Layout, where: str, data: bytes) -> Split:
    """Images and labels of one binary batch file."""
    size, n_labels = layout.record_bytes, len(layout.labels)
    if not data or len(data) % size:
        raise DatasetError(f"{where}: {len(data)} bytes is not a whole number of {size}-byte records "
                           f"({n_labels} label byte{'s' * (n_labels > 1)} + 32x32x3 pixels): truncated "
                           f"or not {layout.title} binary")
    records = np.frombuffer(data, np.uint8).reshape(-1, size)
    images = records[:, n_labels:].reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1)
    labels = {field.name: records[:, i].astype(np.int32) for i, field in enumerate(layout.labels)}
    return _checked(layout, where, np.ascontiguousarray(images), labels)


def parse_python(layout: Layout, where: str, data: bytes) -> Split:
    """Images and labels of one python batch file (a Python 2 pickle of plain arrays and lists)."""
    try:
        batch = safe_pickle.load(data, encoding="bytes")
    except safe_pickle.UnsafePickleError as e:
        raise DatasetError(f"{where}: {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DatasetError(f"{where}: not a {layout.title} python batch ({reason}): truncated or "
                           "corrupt") from None
    get = batch.get if isinstance(batch, dict) else (lambda _key: None)
    pixels = get(b"data")
    labels = {field.name: get(field.pickle_key) for field in layout.labels}
    if (not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim != 2
            or pixels.shape[1] != PIXEL_BYTES
            or not all(isinstance(v, list) and len(v) == len(pixels) and all(isinstance(i, int) for i in v)
                       for v in labels.values())):
        keys = " and ".join(f"{f.pickle_key}" for f in layout.labels)
        raise DatasetError(f"{where}: not a {layout.title} python batch (expected b'data' uint8 (n, 3072) "
                           f"and n {keys})")
    images = pixels.reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1)
    return _checked(layout, where, np.ascontiguousarray(images),
                    {name: np.asarray(v, np.int32) for name, v in labels.items()})


def _checked(layout: Layout, where: str, images: np.ndarray, labels: dict[str, np.ndarray]) -> Split:
    for field in layout.labels:
        values = labels[field.name]
        if values.size and (values.min() < 0 or values.max() >= field.num_classes):
            bad = values.max() if values.max() >= field.num_classes else values.min()
            raise DatasetError(f"{where}: {field.name} {bad} is not a {layout.title} class "
                               f"(0..{field.num_classes - 1})")
    return images, labels


def tfds_order(split: str, n: int) -> np.ndarray:
    """tfds numbers a split's images 0..n-1 in file order and writes them in base.tfds_order."""
    return base.tfds_order(split, [str(i) for i in range(n)])


def read(layout: Layout, found: tuple[str, str, str], splits: tuple[str, ...] = ("train", "test")
         ) -> dict[str, Split]:
    """{split: (images, {label name: labels})} of the archive `find` returned, in tfds's order."""
    form, kind, path = found
    names = [name for split in splits for name in layout.files(form, split)]
    reader = _folder_reader(layout, path) if kind == "folder" else _archive_reader(layout, path, form, names)
    parse = parse_binary if form == "bin" else parse_python
    out = {}
    for split in splits:
        parts = [parse(layout, *reader(name)) for name in layout.files(form, split)]
        images = np.concatenate([p[0] for p in parts])
        order = tfds_order(split, len(images))
        out[split] = images[order], {f.name: np.concatenate([p[1][f.name] for p in parts])[order]
                                     for f in layout.labels}
    return out


def describe(layout: Layout, found: tuple[str, str, str]) -> str:
    """The form read, e.g. 'cifar-10-binary.tar.gz' or 'cifar-100-python/ (extracted folder)'."""
    form, kind, _ = found
    return layout.archives[form] if kind == "archive" else f"{layout.folders[form]}/ (extracted folder)"
