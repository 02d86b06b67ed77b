"""Reading pickles from the internet without running their code.

A pickle is a program: its GLOBAL/STACK_GLOBAL opcodes name any importable callable and REDUCE calls
it, so `pickle.load` on a downloaded file can run anything. The files this project reads as pickles
(CIFAR-10's python batches, PyTorch `.pth` state dicts) only ever contain dicts, lists, strings,
numbers and numeric arrays. `load` resolves every global through an allow-list of *stand-ins* written
here, never through an import: a numpy array is rebuilt from its raw bytes by `np.frombuffer`, not by
numpy's own reconstruction hooks, and object arrays are refused. Anything else names the global it
refused in one `UnsafePickleError`.
"""

from __future__ import annotations

import collections
import io
import pickle
from typing import Any, BinaryIO, Callable, Mapping

import numpy as np


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list, or holds data the stand-ins refuse."""


def _dtype(spec: Any, *_unused: Any) -> "_DTypeStandIn":
    return _DTypeStandIn(spec)


class _DTypeStandIn:
    """What `numpy.dtype(spec, align, copy)` + `__setstate__` build in a pickle, numeric kinds only."""

    def __init__(self, spec: Any):
        spec = spec.decode("latin1") if isinstance(spec, bytes) else spec
        if not isinstance(spec, str):
            raise UnsafePickleError(f"refusing a numpy dtype built from {type(spec).__name__}")
        self.spec, self.byteorder = spec, "="

    def __setstate__(self, state: tuple) -> None:
        order = state[1] if len(state) > 1 else "="
        self.byteorder = order.decode("latin1") if isinstance(order, bytes) else order

    def resolve(self) -> np.dtype:
        try:
            dtype = np.dtype(self.spec)
        except TypeError:
            raise UnsafePickleError(f"refusing numpy dtype {self.spec!r}") from None
        if dtype.kind not in "biuf" or dtype.fields is not None:
            raise UnsafePickleError(f"refusing numpy dtype {self.spec!r}: only numeric arrays are read")
        if self.byteorder in "<>":
            dtype = dtype.newbyteorder(self.byteorder)
        return dtype


class _ArrayStandIn:
    """What `numpy.core.multiarray._reconstruct(ndarray, shape, typecode)` + `__setstate__` build."""

    def __init__(self, *_unused: Any):
        self.array: np.ndarray | None = None

    def __setstate__(self, state: tuple) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise UnsafePickleError("refusing a numpy array with an unknown state layout")
        _version, shape, dtype, fortran, raw = state if len(state) == 5 else (1, *state)
        if not isinstance(dtype, _DTypeStandIn):
            raise UnsafePickleError("refusing a numpy array without a numeric dtype")
        dt = dtype.resolve()
        if isinstance(raw, str):  # a Python 2 pickle read with encoding="latin1"
            raw = raw.encode("latin1")
        if not isinstance(raw, (bytes, bytearray)):
            raise UnsafePickleError("refusing a numpy array whose data are objects, not bytes")
        shape = tuple(int(s) for s in shape)
        count = int(np.prod(shape, dtype=np.int64))
        if len(raw) != count * dt.itemsize:
            raise UnsafePickleError(f"numpy array of shape {shape} and dtype {dt} holds "
                                    f"{len(raw)} bytes, not {count * dt.itemsize}")
        flat = np.frombuffer(bytes(raw), dt, count)
        self.array = flat.reshape(shape, order="F" if fortran else "C").astype(dt.newbyteorder("="))


def _reconstruct(_cls: Any, _shape: Any, _typecode: Any) -> _ArrayStandIn:
    return _ArrayStandIn()


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> _ArrayStandIn:
    """numpy's protocol-5 form: the raw bytes in-band, then dtype, shape and order."""
    array = _ArrayStandIn()
    order = order.decode("latin1") if isinstance(order, bytes) else order
    array.__setstate__((shape, dtype, order == "F", bytes(buf)))
    return array


def _scalar(dtype: Any, raw: Any = None) -> Any:
    """A numpy scalar (e.g. `np.int64(3)`): its dtype and raw bytes."""
    array = _ArrayStandIn()
    array.__setstate__(((), dtype, False, raw))
    return array


# numpy moved `core` to `_core` in 2.0; pickles from either name the function by its own path.
NUMPY_ARRAYS: dict[tuple[str, str], Callable[..., Any]] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy", "ndarray"): _ArrayStandIn,
    ("numpy", "dtype"): _dtype,
}
def _latin1_bytes(text: Any, encoding: Any = "latin1") -> bytes:
    """Python 3 writes `bytes` into protocol-2 pickles as `_codecs.encode(text, "latin1")`."""
    if not isinstance(text, str) or encoding != "latin1":
        raise UnsafePickleError("refusing _codecs.encode other than a latin-1 string to bytes")
    return text.encode("latin1")


# Plain containers and bytes a pickled state dict may name.
CONTAINERS: dict[tuple[str, str], Callable[..., Any]] = {
    ("_codecs", "encode"): _latin1_bytes,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("__builtin__", "set"): set, ("builtins", "set"): set,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, allowed: Mapping[tuple[str, str], Callable[..., Any]],
                 persistent_load: Callable[[Any], Any] | None, encoding: str):
        super().__init__(file, encoding=encoding)
        self._allowed = allowed
        self._persistent = persistent_load

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"refusing to load {module}.{name}: this file is not a plain "
                                    "data pickle") from None

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise UnsafePickleError("refusing a persistent reference: this file is not a plain data pickle")
        return self._persistent(pid)


def _unwrap(obj: Any) -> Any:
    """Replace the stand-ins by the values they describe, through dicts, lists and tuples."""
    if isinstance(obj, _ArrayStandIn):
        if obj.array is None:
            raise UnsafePickleError("a numpy array in this pickle has no data")
        return obj.array
    if isinstance(obj, _DTypeStandIn):
        return obj.resolve()
    if isinstance(obj, dict):
        out = type(obj)() if isinstance(obj, collections.OrderedDict) else {}
        for k, v in obj.items():
            out[_unwrap(k)] = _unwrap(v)
        return out
    if isinstance(obj, list):
        return [_unwrap(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_unwrap(v) for v in obj)
    return obj


def load(file: BinaryIO | bytes, allowed: Mapping[tuple[str, str], Callable[..., Any]] | None = None,
         persistent_load: Callable[[Any], Any] | None = None, encoding: str = "ASCII") -> Any:
    """Unpickle `file` resolving globals only through `allowed` (default: numpy arrays and plain
    containers). `persistent_load` answers persistent ids (PyTorch's storages). Python 2 pickles
    need `encoding="bytes"` or `"latin1"`, as for `pickle.load`.

    Raises UnsafePickleError naming the first refused global; truncated or malformed data raise
    pickle.UnpicklingError / EOFError / ValueError as `pickle.load` would.
    """
    if isinstance(file, (bytes, bytearray)):
        file = io.BytesIO(file)
    table = {**NUMPY_ARRAYS, **CONTAINERS} if allowed is None else allowed
    return _unwrap(_Unpickler(file, table, persistent_load, encoding).load())
