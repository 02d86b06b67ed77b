"""PyTorch's `torch.save` files written without torch: a state dict (in its wrapper, if it came in
one) in the legacy form or the zip form that data/torch_files.py describes and reads, loadable by
`torch.load` of the versions that wrote each form.
"""

from __future__ import annotations

import collections
import io
import struct
import zipfile
from typing import Any, Callable

import numpy as np

from resnet_jax.data.torch_files import (MAGIC_NUMBER, PROTOCOL_VERSION, REBUILD_V2, TORCH_STORAGES,
                                         StorageType, TorchFile)

_STORAGE_OF = {np.dtype(v): k for k, v in TORCH_STORAGES.items() if v != "bfloat16"}


class _Pickle:
    """A protocol-2 pickle written opcode by opcode, for the few types a state dict holds; what
    `pickle.load` (torch.load) reads back. Written by hand because Python's pickler names a
    global only after importing it, and torch is not here. No memo: nothing is written twice."""

    def __init__(self, persistent: Callable[[np.ndarray], tuple], rebuild: str):
        self.out = io.BytesIO()
        self.out.write(b"\x80\x02")  # PROTO 2
        self.persistent, self.rebuild = persistent, rebuild

    def global_(self, module: str, name: str) -> None:
        self.out.write(b"c" + f"{module}\n{name}\n".encode())

    def tuple_(self, items) -> None:
        items = tuple(items)
        if not items:
            self.out.write(b")")
            return
        self.out.write(b"(")
        for item in items:
            self.value(item)
        self.out.write(b"t")

    def value(self, v: Any) -> None:
        w = self.out.write
        if v is None:
            w(b"N")
        elif isinstance(v, (bool, np.bool_)):
            w(b"\x88" if v else b"\x89")
        elif isinstance(v, (int, np.integer)):
            v = int(v)
            if 0 <= v < 256:
                w(b"K" + bytes([v]))
            elif 0 <= v < 65536:
                w(b"M" + struct.pack("<H", v))
            elif -(2 ** 31) <= v < 2 ** 31:
                w(b"J" + struct.pack("<i", v))
            else:
                raw = v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)
                w(b"\x8a" + bytes([len(raw)]) + raw)
        elif isinstance(v, (float, np.floating)):
            w(b"G" + struct.pack(">d", float(v)))
        elif isinstance(v, str):
            raw = v.encode("utf-8")
            w(b"X" + struct.pack("<I", len(raw)) + raw)
        elif isinstance(v, tuple):
            self.tuple_(v)
        elif isinstance(v, list):
            w(b"]")
            if v:
                w(b"(")
                for item in v:
                    self.value(item)
                w(b"e")
        elif isinstance(v, StorageType):
            self.global_("torch", v.name)
        elif isinstance(v, np.ndarray):
            self.tensor(v)
        elif isinstance(v, dict):
            if isinstance(v, collections.OrderedDict):  # OrderedDict(), then its items
                self.global_("collections", "OrderedDict")
                w(b")R")
            else:
                w(b"}")
            if v:
                w(b"(")
                for key, item in v.items():
                    self.value(key)
                    self.value(item)
                w(b"u")
        else:
            raise TypeError(f"cannot write a {type(v).__name__} into a state dict's pickle")

    def tensor(self, array: np.ndarray) -> None:
        """`_rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())` (torch >= 0.4) or
        `_rebuild_tensor(storage, 0, size, stride)` (torch 0.3), the storage a persistent id."""
        self.global_("torch._utils", self.rebuild)
        self.out.write(b"(")
        self.tuple_(self.persistent(array))
        self.out.write(b"Q")  # BINPERSID
        self.value(0)
        self.tuple_(array.shape)
        self.tuple_(s // array.itemsize for s in array.strides)
        if self.rebuild == REBUILD_V2:
            self.value(False)
            self.value(collections.OrderedDict())
        self.out.write(b"tR")

    def bytes(self, obj: Any) -> bytes:
        self.value(obj)
        return self.out.getvalue() + b"."


def _storage_type(array: np.ndarray) -> StorageType:
    if array.dtype not in _STORAGE_OF:
        raise ValueError(f"no torch storage holds {array.dtype} values")
    return StorageType(_STORAGE_OF[array.dtype])


def _prepared(file: TorchFile) -> tuple[Any, list[np.ndarray]]:
    """(the object to pickle: the state dict, in its wrapper if any; the tensors, C order little
    endian, one storage each, in state dict order)."""
    arrays = [np.asarray(a, order="C").astype(np.asarray(a).dtype.newbyteorder("<"))
              for a in file.state.values()]
    state = collections.OrderedDict(zip(file.state, arrays))
    if file.wrapper is None:
        return state, arrays
    return {k: (state if k == "state_dict" else v) for k, v in file.wrapper}, arrays


def legacy_bytes(file: TorchFile, location: str = "cpu") -> bytes:
    """`file` in torch.save's legacy form (what `torch.load` reads, any version): storage keys
    "0", "1", ... in state dict order, written in sorted-key order as torch writes them."""
    obj, arrays = _prepared(file)
    keys = {id(a): str(i) for i, a in enumerate(arrays)}
    pickled = _Pickle(lambda a: ("storage", _storage_type(a), keys[id(a)], location, a.size, None),
                      file.rebuild).bytes(obj)
    info = {"protocol_version": PROTOCOL_VERSION, "little_endian": True,
            "type_sizes": {"short": 2, "int": 4, "long": 4}}  # struct's standard ("=") sizes, as torch's
    head = b"".join(_Pickle(None, file.rebuild).bytes(v) for v in (MAGIC_NUMBER, PROTOCOL_VERSION, info))
    order = sorted(str(i) for i in range(len(arrays)))
    data = (struct.pack("<q", arrays[int(k)].size) + arrays[int(k)].tobytes() for k in order)
    return head + pickled + _Pickle(None, file.rebuild).bytes(order) + b"".join(data)


def zip_bytes(file: TorchFile, archive: str = "archive", location: str = "cpu") -> bytes:
    """`file` in torch.save's zip form (torch >= 1.6 reads it): `<archive>/data.pkl`,
    `<archive>/byteorder`, the storages `<archive>/data/<key>` (keys "0", "1", ... in state dict
    order), `<archive>/version`; stored uncompressed, each record's data aligned to 64 bytes by an
    "FB" extra field, as torch's writer aligns them (its loader can then map them in place)."""
    obj, arrays = _prepared(file)
    keys = {id(a): str(i) for i, a in enumerate(arrays)}
    pickled = _Pickle(lambda a: ("storage", _storage_type(a), keys[id(a)], location, a.size),
                      file.rebuild).bytes(obj)
    records = [("data.pkl", pickled), ("byteorder", b"little")]
    records += [(f"data/{k}", arrays[int(k)].tobytes()) for k in sorted(keys.values())]
    records.append(("version", b"3\n"))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, data in records:
            info = zipfile.ZipInfo(f"{archive}/{name}", date_time=(1980, 1, 1, 0, 0, 0))
            pad = -(buf.tell() + 30 + len(info.filename.encode()) + 4) % 64  # after the local header
            info.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
            z.writestr(info, data)
    return buf.getvalue()
