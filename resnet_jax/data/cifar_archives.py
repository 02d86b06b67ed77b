"""CIFAR-10 from the archives on its home page (https://www.cs.toronto.edu/~kriz/cifar.html),
read without TensorFlow and without running any code from the files.

Four forms are accepted, found by what a path holds rather than by its name:
`cifar-10-binary.tar.gz` or its extracted `cifar-10-batches-bin/` (records of 1 label byte and
3072 pixel bytes: 1024 red, 1024 green, 1024 blue, each 32x32 row-major), and
`cifar-10-python.tar.gz` or its extracted `cifar-10-batches-py/` (Python 2 pickles of
{b'data': uint8 (10000, 3072), b'labels': [...]}, read through `safe_pickle`).

The arrays come out in the order `tfds build cifar10` stores them, so that both routes give the same
45k/5k split (Sec 4.2) and the same batches for a seed: tfds reads the batch files in order and
numbers the images 0, 1, ... per split, then sorts them by md5(split name + str(number)).
"""

from __future__ import annotations

import os
import pickle
import tarfile
import zlib
from typing import Callable

import numpy as np

from resnet_jax.data import safe_pickle
from resnet_jax.data import base
from resnet_jax.data.base import DatasetError

SIDE = 32
RECORD_BYTES = 1 + 3 * SIDE * SIDE  # one label byte, then the three colour planes
NUM_CLASSES = 10
FOLDERS = {"bin": "cifar-10-batches-bin", "py": "cifar-10-batches-py"}
ARCHIVES = {"bin": "cifar-10-binary.tar.gz", "py": "cifar-10-python.tar.gz"}
_SPLIT_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


def _file_name(form: str, stem: str) -> str:
    return f"{stem}.bin" if form == "bin" else stem


def _folder_form(path: str) -> str | None:
    """'bin' or 'py' if `path` is an extracted batches folder (by the first batch file it holds)."""
    for form in ("bin", "py"):
        if os.path.isfile(os.path.join(path, _file_name(form, "data_batch_1"))):
            return form
    return None


def _archive_form(path: str) -> str | None:
    """'bin' or 'py' if `path` is a (gzipped) tar holding a batches folder, by its first members."""
    try:
        with tarfile.open(path, "r:*") as tar:
            for _ in range(50):  # the batches folder and its files come first in both archives
                member = tar.next()
                if member is None:
                    break
                top = member.name.split("/")[0]
                for form, folder in FOLDERS.items():
                    if top == folder:
                        return form
    except (tarfile.TarError, EOFError, OSError, zlib.error):
        return None
    return None


def find(data_dir: str) -> tuple[str, str, str] | None:
    """(form 'bin'|'py', kind 'folder'|'archive', path) of the CIFAR-10 archive that `data_dir` is or
    holds, or None (then it may be a tfds data_dir). A file must be one of the two archives."""
    path = os.path.expanduser(data_dir)
    if os.path.isfile(path):
        if form := _archive_form(path):
            return form, "archive", path
        raise DatasetError(f"{path}: not a CIFAR-10 archive (cifar-10-binary.tar.gz or "
                           "cifar-10-python.tar.gz), or a truncated or corrupt one; download it again")
    if not os.path.isdir(path) or os.path.isdir(os.path.join(path, "cifar10")):
        return None  # a tfds data_dir (read by cifar10.read_split as before), or nothing
    if form := _folder_form(path):
        return form, "folder", path
    for form in ("bin", "py"):  # a parent holding the extracted folder or the archive
        folder = os.path.join(path, FOLDERS[form])
        if os.path.isdir(folder) and _folder_form(folder) == form:
            return form, "folder", folder
    for form in ("bin", "py"):
        archive = os.path.join(path, ARCHIVES[form])
        if os.path.isfile(archive):
            found = _archive_form(archive)
            if found is None:
                raise DatasetError(f"{archive}: not a readable tar.gz (truncated or corrupt download?); "
                                   "download it again")
            return found, "archive", archive
    return None


def _folder_reader(folder: str) -> Callable[[str], tuple[str, bytes]]:
    def read(name: str) -> tuple[str, bytes]:
        path = os.path.join(folder, name)
        try:
            with open(path, "rb") as f:
                return path, f.read()
        except FileNotFoundError:
            raise DatasetError(f"{path}: missing; the CIFAR-10 folder is incomplete (extract "
                               "the archive again, or pass the .tar.gz itself)") from None
        except OSError as e:
            raise DatasetError(f"{path}: cannot read ({e.strerror or e})") from None
    return read


def _archive_reader(archive: str, form: str, names: list[str]) -> Callable[[str], tuple[str, bytes]]:
    """Reads the wanted members in one pass over the (gzip-compressed, so sequential) archive."""
    wanted = {f"{FOLDERS[form]}/{name}": name for name in names}
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
            raise DatasetError(f"{archive}: {FOLDERS[form]}/{name} is missing from the archive "
                               "(truncated download?); download it again")
        return f"{archive}:{FOLDERS[form]}/{name}", members[name]
    return read


def parse_binary(where: str, data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, 32, 32, 3) uint8 and labels (n,) int32 of one binary batch file."""
    if not data or len(data) % RECORD_BYTES:
        raise DatasetError(f"{where}: {len(data)} bytes is not a whole number of {RECORD_BYTES}-byte "
                           "records (1 label byte + 32x32x3 pixels): truncated or not CIFAR-10 binary")
    records = np.frombuffer(data, np.uint8).reshape(-1, RECORD_BYTES)
    images = records[:, 1:].reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1)
    return _checked(where, np.ascontiguousarray(images), records[:, 0].astype(np.int32))


def parse_python(where: str, data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one python batch file (a Python 2 pickle of plain arrays and lists)."""
    try:
        batch = safe_pickle.load(data, encoding="bytes")
    except safe_pickle.UnsafePickleError as e:
        raise DatasetError(f"{where}: {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DatasetError(f"{where}: not a CIFAR-10 python batch ({reason}): truncated or "
                           "corrupt") from None
    pixels = batch.get(b"data") if isinstance(batch, dict) else None
    labels = batch.get(b"labels") if isinstance(batch, dict) else None
    if (not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim != 2
            or pixels.shape[1] != RECORD_BYTES - 1 or not isinstance(labels, list)
            or len(labels) != len(pixels) or not all(isinstance(v, int) for v in labels)):
        raise DatasetError(f"{where}: not a CIFAR-10 python batch (expected b'data' uint8 (n, 3072) "
                           "and n b'labels')")
    images = pixels.reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1)
    return _checked(where, np.ascontiguousarray(images), np.asarray(labels, np.int32))


def _checked(where, images, labels):
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise DatasetError(f"{where}: label {labels.max()} is not a CIFAR-10 class (0..9)")
    return images, labels


def tfds_order(split: str, n: int) -> np.ndarray:
    """tfds numbers a split's images 0..n-1 in file order and writes them in base.tfds_order."""
    return base.tfds_order(split, [str(i) for i in range(n)])


def read(found: tuple[str, str, str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{'train': (images, labels), 'test': (images, labels)} of the archive `find` returned."""
    form, kind, path = found
    names = [_file_name(form, stem) for stems in _SPLIT_FILES.values() for stem in stems]
    reader = _folder_reader(path) if kind == "folder" else _archive_reader(path, form, names)
    parse = parse_binary if form == "bin" else parse_python
    splits = {}
    for split, stems in _SPLIT_FILES.items():
        parts = [parse(*reader(_file_name(form, stem))) for stem in stems]
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        order = tfds_order(split, len(labels))
        splits[split] = images[order], labels[order]
    return splits


def describe(found: tuple[str, str, str]) -> str:
    form, kind, path = found
    return f"CIFAR-10 {'binary' if form == 'bin' else 'python'} {kind} {path}"

