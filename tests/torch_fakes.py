"""Trained-CIFAR-ResNet files as their publishers wrote them, with random weights, written here with
Python's own pickler (as torch.save is) and stand-in torch modules, independently of resnet_jax's
readers and writers; numpy forward passes in the files' own conventions (NCHW, PyTorch layouts).

- akamaster/pytorch_resnet_cifar10 (resnet.py, trainer.py): ResNet-20/32/44/56/110/1202, option A
  shortcuts `F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))` (zeros on both
  sides of the identity's channels), fc `linear`; saved from a DataParallel model (`module.`
  keys) as `{"best_prec1": ..., "state_dict": ...}` with torch 0.3's legacy torch.save
  (`_rebuild_tensor`, no BN counters); input: RGB/255 minus (0.485, 0.456, 0.406), divided by
  (0.229, 0.224, 0.225) (trainer.py's `normalize`).
- chenyaofo/pytorch-cifar-models (pytorch_cifar_models/resnet.py): cifar10/cifar100 ResNet-20/32/44/56,
  torchvision's BasicBlock with a `downsample` = 1x1 conv (stride 2) + BN where the shape changes
  (option B), fc `fc`; a bare state dict as a torch 1.8 zip (`_rebuild_tensor_v2`, BN counters);
  input: RGB/255 minus the dataset mean, divided by its std (image-classification-codebase's
  conf/cifar10.conf, conf/cifar100.conf; the training logs print the same).
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import sys
import types
import zipfile

import numpy as np
import pytest

from released_fakes import _bn, _conv, batch_norm, conv2d

# Real files (../shared/real from the project's root, see its README); a worktree elsewhere names
# the folder in RESNET_JAX_REAL_DIR.
REAL_DIR = os.environ.get("RESNET_JAX_REAL_DIR") or os.path.join(os.path.dirname(__file__), "..", "..",
                                                                  "shared", "real")
REAL_RESNET20 = os.path.join(REAL_DIR, "resnet20-12fca82f.th")
REAL_CIFAR10_TEST = os.path.join(REAL_DIR, "cifar-10-batches-bin", "test_batch.bin")

AKAMASTER_DEPTHS = (20, 32, 44, 56, 110, 1202)
# ResNet-1202 (19.4M parameters, 6,000 tensors) costs seconds per file written and read: slow tier
AKAMASTER_DEPTHS_FAST = (*AKAMASTER_DEPTHS[:-1], pytest.param(1202, marks=pytest.mark.slow))
CHENYAOFO_MODELS = [(d, c) for c in (10, 100) for d in (20, 32, 44, 56)]
AKAMASTER_MEAN, AKAMASTER_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CHENYAOFO_NORM = {10: ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
                  100: ((0.5070, 0.4865, 0.4409), (0.2673, 0.2564, 0.2761))}


# ---- state dicts with the publishers' names -------------------------------------------------------

def cifar_state(depth: int, *, option: str, num_classes: int = 10, seed: int = 0,
                prefix: str = "", counters: bool = False) -> collections.OrderedDict:
    """A random state dict of akamaster's (option "A", fc `linear`) or chenyaofo's (option "B",
    `downsample`, fc `fc`) ResNet-`depth`, keys in the order their module's state_dict() has them."""
    rng = np.random.default_rng(seed)
    n = (depth - 2) // 6
    state = collections.OrderedDict()

    def bn(name, c, last=False):
        p = _bn(rng, c, last)
        for key, value in (("weight", p["gamma"]), ("bias", p["beta"]), ("running_mean", p["mean"]),
                           ("running_var", p["var"])):
            state[f"{prefix}{name}.{key}"] = value.astype(np.float32)
        if counters:
            state[f"{prefix}{name}.num_batches_tracked"] = np.array(int(rng.integers(1, 10**5)), np.int64)

    state[f"{prefix}conv1.weight"] = _conv(rng, 16, 3, 3).astype(np.float32)
    bn("bn1", 16)
    cin = 16
    for s, width in enumerate((16, 32, 64), start=1):
        for b in range(n):
            layer = f"layer{s}.{b}"
            state[f"{prefix}{layer}.conv1.weight"] = _conv(rng, width, cin, 3).astype(np.float32)
            bn(f"{layer}.bn1", width)
            state[f"{prefix}{layer}.conv2.weight"] = _conv(rng, width, width, 3).astype(np.float32)
            bn(f"{layer}.bn2", width, last=True)
            if option == "B" and cin != width:
                state[f"{prefix}{layer}.downsample.0.weight"] = _conv(rng, width, cin, 1).astype(np.float32)
                bn(f"{layer}.downsample.1", width)
            cin = width
    fc = "linear" if option == "A" else "fc"
    state[f"{prefix}{fc}.weight"] = rng.normal(0, np.sqrt(1 / 64), (num_classes, 64)).astype(np.float32)
    state[f"{prefix}{fc}.bias"] = rng.normal(0, 0.1, num_classes).astype(np.float32)
    return state


# ---- numpy forward in the files' conventions (NCHW) -----------------------------------------------

def normalize(images_uint8, mean, std):
    """torchvision's ToTensor + Normalize: NHWC uint8 -> NCHW (x/255 - mean) / std, float64."""
    x = (images_uint8.astype(np.float64) / 255.0 - np.asarray(mean)) / np.asarray(std)
    return x.transpose(0, 3, 1, 2)


def forward(state, x, *, option: str, prefix: str = "", chunk: int = 128, responses: list | None = None):
    """Logits of a state dict of akamaster's (option A, zeros on both sides of the identity) or
    chenyaofo's (option B) net on NCHW input `x`, as their resnet.py computes them, float64.
    `responses` (one chunk of input only) receives every 3x3 conv's BN output (NCHW, before the
    ReLU or addition: Fig 7's responses), in network order."""
    keep = (lambda v: responses.append(v) or v) if responses is not None else (lambda v: v)  # noqa: E731
    if len(x) > chunk:
        assert responses is None, "responses of one chunk only"
        return np.concatenate([forward(state, x[i:i + chunk], option=option, prefix=prefix, chunk=chunk)
                               for i in range(0, len(x), chunk)])
    p = {k.removeprefix(prefix): np.asarray(v, np.float64) for k, v in state.items()}

    def bn(y, name):
        return batch_norm(y, {"gamma": p[f"{name}.weight"], "beta": p[f"{name}.bias"],
                              "mean": p[f"{name}.running_mean"], "var": p[f"{name}.running_var"]})

    relu = lambda v: np.maximum(v, 0)  # noqa: E731
    y = relu(keep(bn(conv2d(x, p["conv1.weight"], 1, 1), "bn1")))
    s = 1
    while f"layer{s}.0.conv1.weight" in p:
        b = 0
        while f"layer{s}.{b}.conv1.weight" in p:
            name = f"layer{s}.{b}"
            w = p[f"{name}.conv1.weight"]
            stride = 2 if s > 1 and b == 0 else 1
            z = relu(keep(bn(conv2d(y, w, stride, 1), f"{name}.bn1")))
            z = keep(bn(conv2d(z, p[f"{name}.conv2.weight"], 1, 1), f"{name}.bn2"))
            planes, short = w.shape[0], y
            if stride != 1 or y.shape[1] != planes:
                if option == "A":
                    short = np.pad(y[:, :, ::2, ::2], ((0, 0), (planes // 4, planes // 4), (0, 0), (0, 0)))
                else:
                    short = bn(conv2d(y, p[f"{name}.downsample.0.weight"], stride, 0), f"{name}.downsample.1")
            y = relu(z + short)
            b += 1
        s += 1
    fc = "linear" if option == "A" else "fc"
    return y.mean(axis=(2, 3)) @ p[f"{fc}.weight"].T + p[f"{fc}.bias"]


def read_cifar_bin(path):
    """(images NHWC uint8, labels) of a CIFAR-10 binary batch: records of 1 label byte and
    1,024 R, 1,024 G, 1,024 B bytes (the official layout; a shorter file holds fewer records)."""
    raw = np.fromfile(path, np.uint8)
    records = raw[:len(raw) // 3073 * 3073].reshape(-1, 3073)
    return records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), records[:, 0].astype(np.int64)


# ---- torch.save, both forms, with stand-in torch modules -------------------------------------------

class _Storage:
    def __init__(self, key, array):
        self.key, self.array = key, array


def _fake_torch(monkeypatch):
    """Stand-in `torch` / `torch._utils` modules, so that Python's pickler names torch's rebuild
    functions and storage classes by their real module paths (they are never called)."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
    for name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
        def fn(*args):
            raise AssertionError("never called")
        fn.__module__, fn.__qualname__, fn.__name__ = "torch._utils", name, name
        setattr(utils, name, fn)
    for name in ("FloatStorage", "LongStorage"):
        setattr(torch, name, type(name, (), {"__module__": "torch", "__qualname__": name}))
    torch._utils = utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch, utils


def _tensors(obj, torch, utils, v2: bool, keys):
    """`obj` with its arrays replaced by objects that pickle as torch's tensors do, and the storages."""
    storages = {}

    class Tensor:
        def __init__(self, storage):
            self.storage = storage

        def __reduce_ex__(self, protocol):
            a = self.storage.array
            stride = tuple(s // a.itemsize for s in a.strides)
            if v2:
                return (utils._rebuild_tensor_v2, (self.storage, 0, a.shape, stride, False,
                                                   collections.OrderedDict()))
            return (utils._rebuild_tensor, (self.storage, 0, a.shape, stride))

    def convert(value):
        if isinstance(value, dict):
            out = type(value)((k, convert(v)) for k, v in value.items())
            if hasattr(value, "_metadata"):
                out._metadata = value._metadata
            return out
        if isinstance(value, np.ndarray):
            key = keys[len(storages)] if keys is not None else str(len(storages))
            storages[key] = _Storage(key, np.asarray(value, order="C"))  # (0-d stays 0-d)
            return Tensor(storages[key])
        return value

    return convert(obj), storages


def _kind(torch, array):
    return torch.FloatStorage if array.dtype == np.float32 else torch.LongStorage


def _location(location: str) -> str:
    """torch's location tag of a storage: "cpu" is one string literal, so Python's pickler writes it
    once and refers back to it; "cuda:N" is built per storage ("cuda:" + str(N)), a new string each
    time, which the pickler writes out each time. (The files' bytes differ accordingly.)"""
    return location if location == "cpu" else (location + " ")[:-1]


def legacy_bytes(obj, monkeypatch, *, v2: bool = False, location: str = "cuda:0", keys=None,
                 sys_info_order=("protocol_version", "type_sizes", "little_endian")) -> bytes:
    """torch.save(obj, f, _use_new_zipfile_serialization=False) as torch/serialization.py's
    `_legacy_save` writes it (protocol 2): magic number, protocol version, sys_info, the object's
    pickle with storages as persistent ids ("storage", type, key, location, numel, None), the
    sorted storage keys, then per key its element count (8 bytes, little endian) and raw bytes.
    `v2`: torch >= 0.4's `_rebuild_tensor_v2` (else torch 0.3's `_rebuild_tensor`); `keys`: the
    storages' keys in tensor order (torch's are their memory addresses; default "0", "1", ...)."""
    torch, utils = _fake_torch(monkeypatch)
    tensors, storages = _tensors(obj, torch, utils, v2, keys)
    info = {"protocol_version": 1001, "little_endian": True,
            "type_sizes": {"int": 4, "long": 4, "short": 2}}  # struct's standard ("=") sizes

    class Pickler(pickle.Pickler):
        def persistent_id(self, o):
            if isinstance(o, _Storage):
                return ("storage", _kind(torch, o.array), o.key, _location(location), o.array.size, None)
            return None

    buf = io.BytesIO()
    for value in (0x1950A86A20F9469CFC6C, 1001, {k: info[k] for k in sys_info_order}):
        pickle.dump(value, buf, protocol=2)
    Pickler(buf, protocol=2).dump(tensors)
    pickle.dump(sorted(storages), buf, protocol=2)
    for key in sorted(storages):
        a = storages[key].array
        buf.write(struct.pack("<q", a.size) + a.astype(a.dtype.newbyteorder("<")).tobytes())
    return buf.getvalue()


def zip_bytes(state, monkeypatch, *, archive: str = "archive", location: str = "cuda:0",
              byteorder: bool = False) -> bytes:
    """torch.save(state, f) in the zip form of torch 1.6-1.x: `<archive>/data.pkl` (protocol 2,
    `_rebuild_tensor_v2`, persistent ids ("storage", type, key, location, numel)), the storages
    `<archive>/data/<key>` (sorted keys), `<archive>/version`; each record stored (no compression)
    with its data aligned to 64 bytes by an "FB" extra field, as torch's zip writer does.
    `byteorder`: torch 2's `<archive>/byteorder` record too."""
    torch, utils = _fake_torch(monkeypatch)
    tensors, storages = _tensors(state, torch, utils, True, None)

    class Pickler(pickle.Pickler):
        def persistent_id(self, o):
            if isinstance(o, _Storage):
                return ("storage", _kind(torch, o.array), o.key, _location(location), o.array.size)
            return None

    pkl = io.BytesIO()
    Pickler(pkl, protocol=2).dump(tensors)
    records = [("data.pkl", pkl.getvalue())]
    if byteorder:
        records.append(("byteorder", b"little"))
    records += [(f"data/{k}", storages[k].array.astype(storages[k].array.dtype.newbyteorder("<")).tobytes())
                for k in sorted(storages)]
    records.append(("version", b"3\n"))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, data in records:
            info = zipfile.ZipInfo(f"{archive}/{name}", date_time=(1980, 1, 1, 0, 0, 0))
            start = buf.tell() + 30 + len(info.filename) + 4  # local header, name, FB's own 4 bytes
            pad = -start % 64
            info.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
            z.writestr(info, data)
    return buf.getvalue()


def torch_load(data: bytes, monkeypatch):
    """What torch.load (torch/serialization.py's `_legacy_load` / `_load`) makes of `data`, with
    Python's own unrestricted unpickler and stand-in torch modules whose storages are numpy
    arrays: the unpickled object, tensors as numpy arrays. For checking files written here."""
    torch, utils = _fake_torch(monkeypatch)
    storages = {}

    class Lazy:
        def __init__(self, key, offset, size, stride):
            self.key, self.offset, self.size, self.stride = key, offset, size, stride

    utils._rebuild_tensor = lambda storage, offset, size, stride: Lazy(storage, offset, size, stride)
    utils._rebuild_tensor_v2 = lambda storage, offset, size, stride, *_: Lazy(storage, offset, size, stride)
    dtypes = {torch.FloatStorage: np.dtype("<f4"), torch.LongStorage: np.dtype("<i8")}

    class Unpickler(pickle.Unpickler):
        def persistent_load(self, pid):
            assert pid[0] == "storage" and len(pid) in (5, 6) and (len(pid) == 5 or pid[5] is None)
            storages.setdefault(pid[2], [dtypes[pid[1]], pid[4], None])
            return pid[2]

    if data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            [pkl] = [n for n in z.namelist() if n.endswith("/data.pkl")]
            obj = Unpickler(io.BytesIO(z.read(pkl))).load()
            for key, entry in storages.items():
                entry[2] = np.frombuffer(z.read(f"{pkl[:-len('data.pkl')]}data/{key}"), entry[0])
    else:
        f = io.BytesIO(data)
        assert pickle.load(f) == 0x1950A86A20F9469CFC6C and pickle.load(f) == 1001
        assert pickle.load(f)["little_endian"]
        obj = Unpickler(f).load()
        for key in pickle.load(f):
            dtype, numel, _ = storages[key]
            (count,) = struct.unpack("<q", f.read(8))
            assert count == numel
            storages[key][2] = np.frombuffer(f.read(count * dtype.itemsize), dtype)
        assert not f.read()  # nothing after the last storage

    def resolve(v):
        if isinstance(v, Lazy):
            a = storages[v.key][2]
            strides = [s * a.itemsize for s in v.stride]
            return np.lib.stride_tricks.as_strided(a[v.offset:], v.size, strides).copy()
        if isinstance(v, dict):
            return type(v)((k, resolve(x)) for k, x in v.items())
        return v

    return resolve(obj)
