"""PyTorch's `torch.save` files, read and written as numpy arrays without torch.

Two forms hold the trained ResNets people publish:
- zip (torch >= 1.6): `<name>/data.pkl` (the pickle), `<name>/data/<key>` (each storage's raw
  bytes), `<name>/version`, and from torch 2 `<name>/byteorder`.
- legacy (torch < 1.6, or `_use_new_zipfile_serialization=False`; akamaster's CIFAR ResNets): five
  things back to back in one file, as torch/serialization.py's `_legacy_save` writes them: a
  pickled magic number (0x1950a86a20f9469cfc6c), a pickled protocol version (1001), a pickled
  sys_info dict (byte order, type sizes), the object's pickle, the pickled list of storage keys,
  then for each key in that order the storage: its element count as an 8-byte integer and its
  elements' raw bytes (the byte order sys_info names).

In both the object's pickle names each tensor's storage by a persistent id, `("storage",
<storage type>, key, location, numel)` (legacy: a sixth item, a view of another storage or None),
and rebuilds the tensor with `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`
(torch 0.3: `_rebuild_tensor(storage, offset, size, stride)`). The pickle is read by safe_pickle with
stand-ins for those names only, so nothing in the file is imported or run: a tensor is first a
`_Pending` record and gets its data from its storage once the whole pickle is read, which is what
lets a missing or cut-short storage be reported by the name of the first tensor it holds.

Every problem is a WeightFileError: one line naming the file and, where there is one, the tensor.
"""

from __future__ import annotations

import dataclasses
import io
import struct
import zipfile
from typing import Any, Callable

import numpy as np

from resnet_jax.data import safe_pickle
from resnet_jax.data.weight_files import WeightFileError, bfloat16, read_bytes

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
LEGACY, ZIP = "legacy", "zip"
ZIP_MAGIC = b"PK\x03\x04"
REBUILD_V2, REBUILD_V1 = "_rebuild_tensor_v2", "_rebuild_tensor"  # torch >= 0.4, torch 0.3

# torch's storage classes as a pickle names them -> the dtype of their elements.
TORCH_STORAGES = {"FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2",
                  "LongStorage": "<i8", "IntStorage": "<i4", "ByteStorage": "u1",
                  "BFloat16Storage": "bfloat16"}


@dataclasses.dataclass(frozen=True)
class StorageType:
    name: str

    def dtype(self) -> np.dtype:
        spec = TORCH_STORAGES[self.name]
        return bfloat16() if spec == "bfloat16" else np.dtype(spec)


@dataclasses.dataclass(frozen=True)
class _Storage:
    """A storage as a persistent id names it: elements [start, start + numel) of storage `key`."""

    key: str
    dtype: np.dtype
    numel: int
    start: int = 0


@dataclasses.dataclass(frozen=True)
class _Pending:
    """A tensor as the pickle describes it, before its storage's bytes are read."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild(storage: Any, offset: Any, size: Any, stride: Any, *_rest: Any) -> _Pending:
    """Stand-in for torch's tensor rebuild functions (requires_grad, hooks, metadata ignored):
    the tensor's geometry, checked to stay inside its storage."""
    if not isinstance(storage, _Storage):
        raise safe_pickle.UnsafePickleError("a tensor's storage is not a storage record")
    try:
        offset, size, stride = int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride)
    except (TypeError, ValueError):
        raise safe_pickle.UnsafePickleError("a tensor with a malformed size or stride") from None
    if len(size) != len(stride) or offset < 0 or min((*size, *stride), default=0) < 0:
        raise safe_pickle.UnsafePickleError("a tensor with a malformed size or stride")
    last = offset + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else offset - 1
    if last >= storage.numel:
        raise safe_pickle.UnsafePickleError(f"a tensor of size {list(size)} reaches past its storage "
                                            f"of {storage.numel} elements")
    return _Pending(storage, offset, size, stride)


def _allowed(used: set[str]) -> dict:
    """The globals a state dict's pickle may name; `used` gets the rebuild functions it calls."""

    def rebuild(name: str) -> Callable[..., _Pending]:
        def stand_in(*args: Any) -> _Pending:
            used.add(name)
            return _rebuild(*args)
        return stand_in

    allowed = {**safe_pickle.CONTAINERS, ("torch._utils", REBUILD_V2): rebuild(REBUILD_V2),
               ("torch._utils", REBUILD_V1): rebuild(REBUILD_V1)}
    for name in TORCH_STORAGES:  # named (not called) in a storage's persistent id
        allowed[("torch", name)] = StorageType(name)
    return allowed


def _persistent_load(seen: dict[str, _Storage]) -> Callable[[Any], _Storage]:
    """persistent_load for both forms: a storage record per id (a legacy view: a slice of one);
    `seen` gets every whole storage named, by key."""

    def load(pid: Any) -> _Storage:
        if (not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != "storage"
                or not isinstance(pid[1], StorageType)):
            raise safe_pickle.UnsafePickleError(f"refusing persistent id {pid!r:.80}")
        kind, key, numel = pid[1], str(pid[2]), int(pid[4])
        dtype = kind.dtype()
        if seen.setdefault(key, _Storage(key, dtype, numel)) != _Storage(key, dtype, numel):
            raise safe_pickle.UnsafePickleError(f"storage {key} is named with two types or sizes")
        view = pid[5] if len(pid) == 6 else None
        if view is None:
            return seen[key]
        try:
            _view_key, start, view_numel = view
            start, view_numel = int(start), int(view_numel)
        except (TypeError, ValueError):
            raise safe_pickle.UnsafePickleError(f"storage {key}: a malformed view {view!r:.60}") from None
        if start < 0 or view_numel < 0 or start + view_numel > numel:
            raise safe_pickle.UnsafePickleError(f"storage {key}: a view outside it")
        return _Storage(key, dtype, view_numel, start)

    return load


@dataclasses.dataclass(frozen=True)
class TorchFile:
    """A torch.save'd state dict: its tensors (file order), the form it came in, and the wrapper
    it sat in: None for a bare state dict, else the wrapper's entries in file order with
    ("state_dict", None) where the state dict goes (akamaster's: best_prec1, state_dict)."""

    state: dict[str, np.ndarray]
    form: str  # LEGACY or ZIP
    rebuild: str  # REBUILD_V2 or REBUILD_V1: how the file's pickle rebuilds tensors
    wrapper: tuple[tuple[str, Any], ...] | None = None


def read_torch(path: str) -> TorchFile:
    """A state dict (bare or in a `{"state_dict": ...}` wrapper) saved by `torch.save` in either form."""
    data = read_bytes(path)
    return _read_zip(path, data) if data[:4] == ZIP_MAGIC else _read_legacy(path, data)


def _load_pickle(path: str, source: Any, seen: dict[str, _Storage]) -> tuple[Any, str]:
    """(the unpickled object, its tensors' rebuild function) of a state dict's pickle."""
    used: set[str] = set()
    try:
        obj = safe_pickle.load(source, allowed=_allowed(used),
                               persistent_load=_persistent_load(seen), encoding="utf-8")
    except safe_pickle.UnsafePickleError as e:
        raise WeightFileError(f"{path}: {e}") from None
    except Exception as e:  # noqa: BLE001 (a damaged pickle fails in many ways)
        raise WeightFileError(f"{path} is damaged or truncated: its pickle does not read "
                              f"({type(e).__name__}: {e})") from None
    return obj, REBUILD_V1 if used == {REBUILD_V1} else REBUILD_V2


def _read_zip(path: str, data: bytes) -> TorchFile:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as e:
        raise WeightFileError(f"{path} is truncated or not a PyTorch zip file ({e})") from None
    names = archive.namelist()
    pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
        raise WeightFileError(f"{path} is not a PyTorch checkpoint: no <name>/data.pkl")
    prefix = pickles[0].rsplit("/", 1)[0]
    # (files from before torch wrote this record are little endian)
    if f"{prefix}/byteorder" in names and archive.read(f"{prefix}/byteorder").strip() != b"little":
        raise WeightFileError(f"{path} was saved on a big-endian machine")
    try:
        pickled = archive.read(pickles[0])
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise WeightFileError(f"{path}: {pickles[0]} is damaged ({e})") from None
    obj, rebuild = _load_pickle(path, pickled, {})

    def storage(s: _Storage) -> bytes:
        member = f"{prefix}/data/{s.key}"
        try:
            raw = archive.read(member)
        except KeyError:
            raise _NoData(f"its storage {member} is missing") from None
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise _NoData(f"its storage {member} is damaged ({e})") from None
        if len(raw) != s.numel * s.dtype.itemsize:
            raise _NoData(f"its storage {member} holds {len(raw)} bytes, not {s.numel} x {s.dtype.itemsize}")
        return raw

    return _tensors(path, obj, ZIP, rebuild, storage)


def _read_legacy(path: str, data: bytes) -> TorchFile:
    f = io.BytesIO(data)
    try:
        magic = safe_pickle.load(f, allowed={})
    except Exception:  # noqa: BLE001 (whatever the first bytes are, they are not the magic number)
        magic = None
    if magic != MAGIC_NUMBER:
        raise WeightFileError(f"{path} is not a PyTorch file: neither a zip archive nor torch.save's "
                              "legacy format (no magic number)")
    try:
        version, sys_info = safe_pickle.load(f, allowed={}), safe_pickle.load(f, allowed={})
    except Exception as e:  # noqa: BLE001
        raise WeightFileError(f"{path} is damaged or truncated in its header ({type(e).__name__})") from None
    if version != PROTOCOL_VERSION:
        raise WeightFileError(f"{path}: legacy protocol version {version!r}, not {PROTOCOL_VERSION}")
    if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
        raise WeightFileError(f"{path} was saved on a big-endian machine (or does not say its byte order)")
    seen: dict[str, _Storage] = {}
    obj, rebuild = _load_pickle(path, f, seen)
    try:
        keys = [str(k) for k in safe_pickle.load(f, allowed={})]
    except Exception:  # noqa: BLE001 (cut short before the storages: no tensor has its data)
        keys = []
    storages: dict[str, bytes] = {}
    for key in keys:
        if key not in seen:  # its element size is unknown, so nothing after it can be found
            break
        head = f.read(8)
        count = struct.unpack("<q", head)[0] if len(head) == 8 else -1
        if count != seen[key].numel:  # (cut short in the count, or a count the pickle does not say)
            break
        raw = f.read(count * seen[key].dtype.itemsize)
        if len(raw) < count * seen[key].dtype.itemsize:
            break
        storages[key] = raw
    listed = set(keys)

    def storage(s: _Storage) -> bytes:
        if s.key in storages:
            return storages[s.key]
        if s.key in listed:
            raise _NoData(f"the file is truncated or damaged at its storage {s.key} (or before it)")
        raise _NoData(f"its storage {s.key} is not in the file's list of storages")

    return _tensors(path, obj, LEGACY, rebuild, storage)


class _NoData(Exception):
    """A storage whose bytes cannot be had; the message says why."""


def _tensors(path: str, obj: Any, form: str, rebuild: str,
             storage: Callable[[_Storage], bytes]) -> TorchFile:
    """The TorchFile of an unpickled object whose tensors are _Pending: each gets its data from
    `storage` in state dict order, so a missing storage is reported by its first tensor's name."""
    wrapper = None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        wrapper = tuple((str(k), None if k == "state_dict" else v) for k, v in obj.items()
                        if k == "state_dict" or isinstance(v, (bool, int, float, str)))
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj:
        raise WeightFileError(f"{path} does not hold a state dict")
    if bad := [k for k, v in obj.items() if not isinstance(v, _Pending)]:
        raise WeightFileError(f"{path}: state dict entry {bad[0]!r} is not a tensor")
    state = {}
    for name, t in obj.items():
        try:
            raw = storage(t.storage)
        except _NoData as e:
            raise WeightFileError(f"{path}: tensor {str(name)!r} has no data: {e}") from None
        array = np.frombuffer(raw, t.storage.dtype)[t.storage.start:t.storage.start + t.storage.numel]
        view = np.lib.stride_tricks.as_strided(array[t.offset:], t.size,
                                               [s * array.itemsize for s in t.stride], writeable=False)
        state[str(name)] = np.array(view)
    return TorchFile(state, form, rebuild, wrapper)
