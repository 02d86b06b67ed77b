"""ILSVRC2012 as people have it on disk, read by random access without TensorFlow.

Two layouts, per split (they may be mixed):
- the folder tree `DIR/train/<wnid>/*.JPEG`, `DIR/val/<wnid>/*.JPEG` (what PyTorch users train from);
- the official `DIR/ILSVRC2012_img_train.tar` (a tar of 1000 per-class tars `<wnid>.tar` holding
  `<wnid>_<n>.JPEG`) and `DIR/ILSVRC2012_img_val.tar` (flat `ILSVRC2012_val_<8 digits>.JPEG`). The
  validation labels are the devkit's ground truth as tfds ships it, converted to wnids
  (`tensorflow_datasets/datasets/imagenet2012/validation_labels.txt`, line k = image k), so neither
  the devkit nor MATLAB files are needed.

Both give what `imagenet.open_split` gives for a tfds directory: a random-access sequence of
{'image': encoded bytes, 'label': int}, with the label the wnid's position among the sorted train
wnids (tfds `imagenet2012`'s ClassLabel order, so checkpoints from either route are
interchangeable) and the records in tfds's order (ascending md5(split + file name), the order
`tfds build` writes), so a seed sees the same batches from every route.

A split is indexed once (file, byte offset, size, label per image; for the tars the offsets of the
members of the inner tars too) and the index is cached beside the data, or under
~/.cache/resnet_jax when the data folder is read-only; a changed file or folder is indexed again.
Indexing reads each image's first and last bytes: files that are not a whole JPEG or PNG (empty, an
HTML error page, cut short) are skipped with a warning that names them.

One module because the two layouts share the index (its cache, its order and its labels); only
the listing of members differs between them.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import tarfile
from typing import Callable, Sequence

import numpy as np

from resnet_jax.data.base import DatasetError, tfds_order

TRAIN_TAR, VAL_TAR = "ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"
FOLDERS = {"train": "train", "validation": "val"}
TARS = {"train": TRAIN_TAR, "validation": VAL_TAR}
_INDEX_VERSION = 1
_TAIL = 64  # a JPEG's end-of-image marker must lie in its last bytes (scan data never holds FFD9)


def _tfds_file(name: str) -> str:
    """A file tensorflow_datasets ships (found without importing it, which is slow)."""
    spec = importlib.util.find_spec("tensorflow_datasets")
    return os.path.join(spec.submodule_search_locations[0], "datasets", "imagenet2012", name)


def tfds_wnids() -> list[str]:
    """The 1000 wnids in tfds imagenet2012's label order (its ClassLabel names file)."""
    with open(_tfds_file("labels.txt")) as f:
        return f.read().split()


def validation_wnids() -> list[str]:
    """wnid of ILSVRC2012_val_{k:08d}.JPEG at position k-1 (the devkit's ground truth)."""
    with open(_tfds_file("validation_labels.txt")) as f:
        return f.read().split()


def layout(data_dir: str, split: str) -> str | None:
    """'folder' or 'tar' if `data_dir` holds `split` as a folder tree or an official tar."""
    if os.path.isdir(os.path.join(data_dir, FOLDERS[split])):
        return "folder"
    if os.path.isfile(os.path.join(data_dir, TARS[split])):
        return "tar"
    return None


def looks_whole(head: bytes, tail: bytes) -> bool:
    """Whether an image file starts like a JPEG/PNG and ends like one (not empty, not cut short)."""
    if head.startswith(b"\xff\xd8\xff"):
        return b"\xff\xd9" in tail
    if head.startswith(b"\x89PNG\r\n\x1a\n"):  # one ImageNet "JPEG" is a PNG
        return b"IEND" in tail
    return False


# An index: files (paths relative to the data dir), per image: file id, offset (-1: the whole
# file), size, class (position in `classes`), name; the skipped files; and tfds's order of the
# images.
Index = dict


def _index_folder(root: str, folder: str) -> Index:
    classes = sorted(e.name for e in os.scandir(os.path.join(root, folder)) if e.is_dir())
    files, labels, skipped = [], [], []
    for c, wnid in enumerate(classes):
        for name in sorted(os.listdir(os.path.join(root, folder, wnid))):
            rel = f"{folder}/{wnid}/{name}"
            try:
                with open(os.path.join(root, rel), "rb") as f:
                    head = f.read(8)
                    f.seek(max(0, os.fstat(f.fileno()).st_size - _TAIL))
                    tail = f.read()
            except IsADirectoryError:
                continue
            if looks_whole(head, tail):
                files.append(rel)
                labels.append(c)
            else:
                skipped.append(rel)
    n = len(files)
    return {"files": files, "file_id": np.arange(n, dtype=np.int64), "offset": np.full(n, -1, np.int64),
            "size": np.full(n, -1, np.int64), "label": np.asarray(labels, np.int32),
            "name": [os.path.basename(p) for p in files], "classes": classes, "skipped": skipped}


def _check_member(f, member: tarfile.TarInfo) -> bool:
    f.seek(member.offset_data)
    head = f.read(min(8, member.size))
    f.seek(member.offset_data + max(0, member.size - _TAIL))
    return looks_whole(head, f.read(min(_TAIL, member.size)))


def _members(f) -> list[tarfile.TarInfo]:
    """The files of the tar starting at f.tell(), by name (tarfile raises ReadError for a member
    that runs past the end of the file; a cut between members reads as a shorter tar)."""
    with tarfile.open(fileobj=f, mode="r:") as tar:  # closing it leaves `f` open
        return sorted((m for m in tar if m.isfile()), key=lambda m: m.name)


def _index_train_tar(root: str, name: str) -> Index:
    offsets, sizes, labels, names, classes, skipped = [], [], [], [], [], []
    with open(os.path.join(root, name), "rb") as f:
        for member in _members(f):
            wnid = os.path.basename(member.name).removesuffix(".tar")
            classes.append(wnid)
            # tarfile starts at f.tell(): the inner members' offsets are positions in the outer tar.
            f.seek(member.offset_data)
            for image in _members(f):
                if image.offset_data + image.size > member.offset_data + member.size:
                    raise tarfile.ReadError(f"{member.name} runs past its end")
                if _check_member(f, image):
                    offsets.append(image.offset_data)
                    sizes.append(image.size)
                    labels.append(len(classes) - 1)
                    names.append(os.path.basename(image.name))
                else:
                    skipped.append(f"{member.name}:{image.name}")
    n = len(offsets)
    return {"files": [name], "file_id": np.zeros(n, np.int64), "offset": np.asarray(offsets, np.int64),
            "size": np.asarray(sizes, np.int64), "label": np.asarray(labels, np.int32), "name": names,
            "classes": classes, "skipped": skipped}


def _index_val_tar(root: str, name: str) -> Index:
    truth = validation_wnids()
    classes = sorted(set(truth))
    position = {w: i for i, w in enumerate(classes)}
    offsets, sizes, labels, names, skipped = [], [], [], [], []
    with open(os.path.join(root, name), "rb") as f:
        for member in _members(f):
            base = os.path.basename(member.name)
            try:
                k = int(base.removeprefix("ILSVRC2012_val_").split(".")[0])
                wnid = truth[k - 1] if k >= 1 else None
            except (ValueError, IndexError):
                wnid = None
            if wnid is None:
                raise DatasetError(f"{os.path.join(root, name)}: {member.name} is not an "
                                   "ILSVRC2012_val_NNNNNNNN.JPEG of the 50,000 validation images")
            if _check_member(f, member):
                offsets.append(member.offset_data)
                sizes.append(member.size)
                labels.append(position[wnid])
                names.append(base)
            else:
                skipped.append(member.name)
    n = len(offsets)
    return {"files": [name], "file_id": np.zeros(n, np.int64), "offset": np.asarray(offsets, np.int64),
            "size": np.asarray(sizes, np.int64), "label": np.asarray(labels, np.int32), "name": names,
            "classes": classes, "skipped": skipped}


_ARRAYS = ("file_id", "offset", "size", "label", "order")


def _fingerprint(root: str, kind: str, rel: str) -> str:
    """What must be unchanged for a cached index to hold: the tar's size and time, or the
    modification times of the split folder and of every class folder in it."""
    path = os.path.join(root, rel)
    if kind == "tar":
        st = os.stat(path)
        return f"{st.st_size}:{st.st_mtime_ns}"
    stamps = [f"{e.name}:{e.stat().st_mtime_ns}" for e in os.scandir(path) if e.is_dir()]
    return hashlib.md5("\n".join(sorted(stamps + [str(os.stat(path).st_mtime_ns)])).encode()).hexdigest()


def cache_dir() -> str:
    return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "resnet_jax")


def _cache_paths(root: str, rel: str) -> list[str]:
    beside = os.path.join(root, f"{rel}.resnet_jax_index.npz")
    key = hashlib.md5(os.path.abspath(os.path.join(root, rel)).encode()).hexdigest()[:16]
    elsewhere = os.path.join(os.path.expanduser(cache_dir()), "imagenet_index",
                             f"{os.path.basename(rel)}.{key}.npz")
    return [beside, elsewhere]


def _save(path: str, index: Index, fingerprint: str) -> bool:
    arrays = {k: index[k] for k in _ARRAYS}
    meta = {k: index[k] for k in ("files", "name", "classes", "skipped")}
    meta.update(version=_INDEX_VERSION, fingerprint=fingerprint)
    tmp = f"{path}.tmp{os.getpid()}.npz"
    try:  # write-then-rename: a concurrent or killed run never sees half an index
        os.makedirs(os.path.dirname(path), exist_ok=True)
        np.savez(tmp, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
        os.replace(tmp, path)
        return True
    except OSError:
        if os.path.exists(tmp):
            os.remove(tmp)
        return False


def _load(path: str, fingerprint: str) -> Index | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes())
            if meta.get("version") != _INDEX_VERSION or meta.get("fingerprint") != fingerprint:
                return None
            return {**{k: z[k] for k in _ARRAYS}, **meta}
    except (OSError, ValueError, KeyError):
        return None


def index_split(root: str, split: str) -> tuple[str, Index, Callable[[], None]]:
    """(layout, index, keep) of `split` under `root`, from the cache when the data has not changed.

    `keep()` writes a freshly built index to the cache; the caller calls it once the data has passed
    its checks, so a folder that is refused is left as it was found."""
    kind = layout(root, split)
    if kind is None:
        raise DatasetError(f"no {FOLDERS[split]}/ folder and no {TARS[split]} in {root}")
    rel = FOLDERS[split] if kind == "folder" else TARS[split]
    fingerprint = _fingerprint(root, kind, rel)
    caches = _cache_paths(root, rel)
    for path in caches:
        if (index := _load(path, fingerprint)) is not None:
            return kind, index, lambda: None
    build: Callable[[str, str], Index] = (
        _index_folder if kind == "folder" else _index_train_tar if split == "train" else _index_val_tar)
    try:
        index = build(root, rel)
        index["order"] = tfds_order(split, index["name"])
    except (tarfile.TarError, EOFError) as e:
        raise DatasetError(f"{os.path.join(root, rel)}: not a readable tar ({e}): truncated or corrupt "
                           "download?") from None
    except OSError as e:
        raise DatasetError(f"{os.path.join(root, rel)}: cannot read ({e.strerror or e})") from None

    def keep() -> None:  # beside the data, or in the cache dir where that folder is read-only
        any(_save(path, index, fingerprint) for path in caches)
    return kind, index, keep


class FileRecords(Sequence):
    """{'image': bytes, 'label': int} by random access: a whole file of a folder tree, or a byte
    range of a tar. Picklable for grain's worker processes: open files are not carried along."""

    def __init__(self, root: str, index: Index, order: np.ndarray, labels: np.ndarray,
                 classes: Sequence[str]):
        self.root, self.classes = root, list(classes)
        # One path per image for a folder tree: a bytes array pickles to grain's workers as one
        # buffer, not 1.28M string objects.
        self.files = np.asarray([os.fsencode(p) for p in index["files"]], dtype=bytes)
        self.file, self.offset = index["file_id"][order], index["offset"][order]
        self.size, self.label = index["size"][order], labels[order]
        # The images' file names (tfds keeps them as `file_name`; `prepare` does too).
        self.names = np.asarray([os.fsencode(n) for n in index["name"]], dtype=bytes)[order]
        self._open: dict[int, int] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.label)

    def __getstate__(self):
        return {**self.__dict__, "_open": {}}

    def _fd(self, file: int) -> int:
        if self._pid != os.getpid():  # a forked worker: its parent's descriptors are not its own
            self._open, self._pid = {}, os.getpid()
        if file not in self._open:
            self._open[file] = os.open(self._path(file), os.O_RDONLY)
        return self._open[file]

    def _path(self, file: int) -> str:
        return os.path.join(self.root, os.fsdecode(self.files[file]))

    def read(self, i: int) -> bytes:
        file, offset = int(self.file[i]), int(self.offset[i])
        if offset < 0:
            with open(self._path(file), "rb") as f:
                return f.read()
        return os.pread(self._fd(file), int(self.size[i]), offset)

    def __getitem__(self, i: int) -> dict:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        return {"image": self.read(i), "label": int(self.label[i]), "file_name": self.names[i]}

    def __del__(self):
        for fd in getattr(self, "_open", {}).values():
            with contextlib.suppress(OSError):
                os.close(fd)


def _warn_skipped(root: str, split: str, skipped: list[str]) -> None:
    if skipped:
        from absl import logging  # noqa: PLC0415

        shown = ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
        logging.warning("ImageNet %s in %s: skipping %d file(s) that are not whole JPEG/PNG images: %s",
                        split, root, len(skipped), shown)


def open_split(split: str, data_dir: str, num_classes: int) -> FileRecords:
    """The records of `split` ('train' or 'validation') of the folder tree or tars in `data_dir`,
    labelled by the position of their wnid among the sorted train wnids.

    Raises DatasetError (one line) when train does not hold `num_classes` classes, when train and
    validation hold different classes (naming one), or when a tar cannot be read.
    """
    root = os.path.expanduser(data_dir)
    _, train, keep_train = index_split(root, "train")
    train_classes = list(train["classes"])
    where = {s: os.path.join(root, FOLDERS[s] if layout(root, s) == "folder" else TARS[s])
             for s in ("train", "validation") if layout(root, s)}
    if len(train_classes) != num_classes:
        missing = sorted(set(tfds_wnids()) - set(train_classes)) if num_classes == 1000 else []
        hint = f" (missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''})" if missing else ""
        raise DatasetError(f"{where['train']} holds {len(train_classes)} classes, ImageNet has "
                           f"{num_classes}{hint}: extract or download it again")
    keep = [keep_train]
    if split == "train":
        index = train
        labels = np.asarray(index["label"], np.int32)
    else:
        kind, index, keep_split = index_split(root, split)
        keep.append(keep_split)
        held = len(index["name"]) + len(index["skipped"])
        if kind == "tar" and num_classes == len(tfds_wnids()) and held != len(validation_wnids()):
            raise DatasetError(f"{where[split]} holds {held:,} of the {len(validation_wnids()):,} "
                               "validation images: download it again")
        # A folder's classes are its subfolders (an empty one too); a tar's, those it has images of.
        present = (list(index["classes"]) if kind == "folder" else
                   sorted({index["classes"][c] for c in np.unique(index["label"])}))
        lacking = sorted(set(present) - set(train_classes))
        if lacking:
            raise DatasetError(f"{where[split]} has class {lacking[0]} that {where['train']} lacks "
                               f"({len(lacking)} such): train and validation must hold the same classes")
        absent = sorted(set(train_classes) - set(present))
        if absent:
            raise DatasetError(f"{where[split]} has no images of class {absent[0]} of {where['train']} "
                               f"({len(absent)} such): train and validation must hold the same classes")
        position = {w: i for i, w in enumerate(train_classes)}
        to_train = np.asarray([position.get(w, -1) for w in index["classes"]], np.int32)
        labels = to_train[np.asarray(index["label"], np.int64)]
    if not len(labels):
        raise DatasetError(f"{where[split]} holds no images")
    for k in keep:  # only now: a refused folder keeps no index of ours
        k()
    _warn_skipped(root, split, list(index["skipped"]))
    return FileRecords(root, index, index["order"], labels, train_classes)
