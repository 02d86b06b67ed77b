"""Released-model files with random weights, written here independently of resnet_jax's readers,
and numpy forward passes in each framework's own semantics (NCHW, its layouts and conventions).

- Caffe: protobuf wire format encoded by hand (field numbers of BVLC caffe.proto, typed in here),
  BatchNorm blobs (mean*f, var*f, f), Scale (gamma, beta), conv1 with a bias, pool1 3x3/2 without
  padding and with Caffe's ceil-mode output size, BGR 0-255 input minus a mean image.
- torchvision: a state dict with its key names, as safetensors (header written here) or as a
  torch.save zip (pickled with stand-in torch modules, the way torch pickles a state dict); input
  RGB/255 minus mean, divided by std; pool 3x3/2 padding 1.
"""

from __future__ import annotations

import collections
import io
import json
import pickle
import struct
import sys
import types
import zipfile

import numpy as np

STAGES = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)),
          50: ("bottleneck", (3, 4, 6, 3)), 101: ("bottleneck", (3, 4, 23, 3)),
          152: ("bottleneck", (3, 8, 36, 3))}
TV_MEAN, TV_STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


# ---- random nets (framework-neutral description) --------------------------------------------------

def _bn(rng, c, last=False):
    # The last BN of a residual branch gets small gammas so deep random nets stay finite.
    gamma = rng.uniform(0.05, 0.2, c) if last else rng.uniform(0.5, 1.5, c)
    return {"gamma": gamma, "beta": rng.normal(0, 0.1, c), "mean": rng.normal(0, 0.1, c),
            "var": rng.uniform(0.5, 2.0, c)}


def _conv(rng, cout, cin, k):
    return rng.normal(0, np.sqrt(2.0 / (cin * k * k)), (cout, cin, k, k))


def random_net(depth: int, seed: int = 0, num_classes: int = 1000, conv1_bias: bool = False) -> dict:
    """{"conv1", "conv1_b"?, "bn1", "blocks": [[block dicts per stage]], "fc_w", "fc_b"} float32."""
    rng = np.random.default_rng(seed)
    kind, counts = STAGES[depth]
    net = {"conv1": _conv(rng, 64, 3, 7), "bn1": _bn(rng, 64), "stages": []}
    if conv1_bias:
        net["conv1_b"] = rng.normal(0, 0.1, 64)
    cin = 64
    for s, (width, count) in enumerate(zip((64, 128, 256, 512), counts)):
        blocks = []
        for b in range(count):
            stride = 2 if b == 0 and s > 0 else 1
            out = width * (4 if kind == "bottleneck" else 1)
            if kind == "basic":
                convs = [(_conv(rng, width, cin, 3), _bn(rng, width)),
                         (_conv(rng, width, width, 3), _bn(rng, width, last=True))]
            else:
                convs = [(_conv(rng, width, cin, 1), _bn(rng, width)),
                         (_conv(rng, width, width, 3), _bn(rng, width)),
                         (_conv(rng, out, width, 1), _bn(rng, out, last=True))]
            block = {"convs": convs, "stride": stride}
            if b == 0 and (stride != 1 or cin != out):
                block["proj"] = (_conv(rng, out, cin, 1), _bn(rng, out))
            blocks.append(block)
            cin = out
        net["stages"].append(blocks)
    net["fc_w"] = rng.normal(0, np.sqrt(1.0 / cin), (num_classes, cin))
    net["fc_b"] = rng.normal(0, 0.1, num_classes)
    return _as_f32(net)


def _as_f32(x):
    if isinstance(x, dict):
        return {k: _as_f32(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_as_f32(v) for v in x)
    return x.astype(np.float32) if isinstance(x, np.ndarray) else x


# ---- numpy forward pass (NCHW) -------------------------------------------------------------------

def conv2d(x, w, stride=1, pad=0, bias=None):
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    ho, wo = (h - kh) // stride + 1, (wd - kw) // stride + 1
    s = x.strides
    cols = np.lib.stride_tricks.as_strided(x, (n, ho, wo, c, kh, kw),
                                           (s[0], s[2] * stride, s[3] * stride, s[1], s[2], s[3]))
    y = cols.reshape(n * ho * wo, c * kh * kw) @ w.reshape(o, -1).T
    y = y.reshape(n, ho, wo, o).transpose(0, 3, 1, 2)
    return y if bias is None else y + bias[None, :, None, None]


def batch_norm(x, bn, eps=1e-5):
    def ch(v):
        return v[None, :, None, None]
    return (x - ch(bn["mean"])) / np.sqrt(ch(bn["var"]) + eps) * ch(bn["gamma"]) + ch(bn["beta"])


def max_pool_3x3_s2(x, caffe: bool):
    """torchvision: padding 1, floor size. Caffe: no padding, ceil size, last window clipped."""
    n, c, h, w = x.shape
    if caffe:
        ho, wo, pad = -(-(h - 3) // 2) + 1, -(-(w - 3) // 2) + 1, 0
    else:
        ho, wo, pad = (h + 2 - 3) // 2 + 1, (w + 2 - 3) // 2 + 1, 1
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=-np.inf)
    out = np.empty((n, c, ho, wo), x.dtype)
    for i in range(ho):
        for j in range(wo):
            out[:, :, i, j] = xp[:, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3].max(axis=(2, 3))
    return out


def forward(net, x, *, caffe: bool, stride_on_3x3: bool):
    """Logits of `net` on the NCHW input `x` (already in the framework's input convention)."""
    relu = lambda v: np.maximum(v, 0)  # noqa: E731
    y = relu(batch_norm(conv2d(x, net["conv1"], 2, 3, net.get("conv1_b")), net["bn1"]))
    y = max_pool_3x3_s2(y, caffe)
    for blocks in net["stages"]:
        for block in blocks:
            convs, stride = block["convs"], block["stride"]
            z = y
            for i, (w, bn) in enumerate(convs):
                k = w.shape[-1]
                if len(convs) == 2:
                    s = stride if i == 0 else 1
                else:
                    s = stride if i == (1 if stride_on_3x3 else 0) else 1
                z = batch_norm(conv2d(z, w, s, k // 2), bn)
                if i < len(convs) - 1:
                    z = relu(z)
            short = y
            if "proj" in block:
                short = batch_norm(conv2d(y, block["proj"][0], stride, 0), block["proj"][1])
            y = relu(z + short)
    # pool5 (Caffe's 7x7 average at 224) is the global average pool; fc1000 / fc.
    return y.mean(axis=(2, 3)) @ net["fc_w"].T + net["fc_b"]


def torchvision_input(images_uint8):
    x = (images_uint8.astype(np.float64) / 255.0 - TV_MEAN) / TV_STD
    return x.transpose(0, 3, 1, 2)


def caffe_input(images_uint8, mean_bgr):
    """BGR, 0-255, minus the CxHxW mean image."""
    return images_uint8[..., ::-1].astype(np.float64).transpose(0, 3, 1, 2) - mean_bgr[None]


# ---- torchvision files ---------------------------------------------------------------------------

def torchvision_state(net) -> collections.OrderedDict:
    state = collections.OrderedDict()

    def bn(prefix, p):
        state[f"{prefix}.weight"], state[f"{prefix}.bias"] = p["gamma"], p["beta"]
        state[f"{prefix}.running_mean"], state[f"{prefix}.running_var"] = p["mean"], p["var"]
        state[f"{prefix}.num_batches_tracked"] = np.array(0, np.int64)

    state["conv1.weight"] = net["conv1"]
    bn("bn1", net["bn1"])
    for s, blocks in enumerate(net["stages"]):
        for b, block in enumerate(blocks):
            for i, (w, p) in enumerate(block["convs"], start=1):
                state[f"layer{s + 1}.{b}.conv{i}.weight"] = w
                bn(f"layer{s + 1}.{b}.bn{i}", p)
            if "proj" in block:
                state[f"layer{s + 1}.{b}.downsample.0.weight"] = block["proj"][0]
                bn(f"layer{s + 1}.{b}.downsample.1", block["proj"][1])
    state["fc.weight"], state["fc.bias"] = net["fc_w"], net["fc_b"]
    return state


def write_safetensors(path, state, metadata=None):
    """The format as the safetensors reference writes it: u64 LE header size, JSON header with
    byte offsets into the data section, padded with spaces to 8 bytes, then the raw bytes."""
    codes = {np.dtype("float32"): "F32", np.dtype("int64"): "I64"}
    header, offset, chunks = {}, 0, []
    if metadata:
        header["__metadata__"] = metadata
    for name, a in state.items():
        raw = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": codes[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


class _FakeStorage:
    def __init__(self, key, array):
        self.key, self.array = key, array


def write_pth(path, state, monkeypatch):
    """A torch.save zip of `state`: <name>/data.pkl (protocol 2; tensors reduce to
    torch._utils._rebuild_tensor_v2 with a persistent storage id) and <name>/data/<key>."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):  # never called: only pickled by name
        raise AssertionError

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2

    class FloatStorage:
        pass

    class LongStorage:
        pass

    for cls in (FloatStorage, LongStorage):
        cls.__module__, cls.__qualname__ = "torch", cls.__name__
        setattr(torch, cls.__name__, cls)
    torch._utils = utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)

    class Tensor:
        def __init__(self, storage, array):
            self.storage, self.array = storage, array

        def __reduce_ex__(self, protocol):
            a = self.array
            stride = tuple(s // a.itemsize for s in a.strides)
            return (_rebuild_tensor_v2, (self.storage, 0, a.shape, stride, False,
                                         collections.OrderedDict()))

    storages, obj = {}, collections.OrderedDict()
    for i, (name, a) in enumerate(state.items()):
        a = np.ascontiguousarray(a)
        storages[str(i)] = _FakeStorage(str(i), a)
        obj[name] = Tensor(storages[str(i)], a)

    class Pickler(pickle.Pickler):
        def persistent_id(self, o):
            if isinstance(o, _FakeStorage):
                kind = FloatStorage if o.array.dtype == np.float32 else LongStorage
                return ("storage", kind, o.key, "cpu", o.array.size)
            return None

    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(obj)
    name = "archive"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{name}/data.pkl", buf.getvalue())
        z.writestr(f"{name}/byteorder", "little")
        z.writestr(f"{name}/version", "3\n")
        for key, s in storages.items():
            z.writestr(f"{name}/data/{key}", s.array.astype("<" + s.array.dtype.str[1:]).tobytes())


# ---- Caffe files (protobuf wire format by hand) --------------------------------------------------

def _varint(n):
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def _field(number, payload: bytes):  # length-delimited (wire type 2)
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _uint(number, value):  # varint (wire type 0)
    return _varint(number << 3) + _varint(value)


def blob(array) -> bytes:
    """BlobProto: shape (7) = BlobShape{dim (1), packed}, data (5), packed floats."""
    dims = b"".join(_varint(d) for d in array.shape)
    return _field(7, _field(1, dims)) + _field(5, np.asarray(array, "<f4").tobytes())


def layer(name, type_, blobs, conv_stride=None) -> bytes:
    """LayerParameter: name (1), type (2), blobs (7), convolution_param (106) {stride (6)}."""
    msg = _field(1, name.encode()) + _field(2, type_.encode())
    msg += b"".join(_field(7, blob(b)) for b in blobs)
    if conv_stride is not None:
        msg += _field(106, _uint(1, 64) + _uint(6, conv_stride))
    return msg


def caffe_letter(depth, count, b):
    if depth > 50 and count > 3:
        return "a" if b == 1 else f"b{b - 1}"
    return "abcdefghijklmnopqrstuvwxyz"[b - 1]


def caffemodel_bytes(net, depth, rng_seed=1, v15=False) -> bytes:
    """NetParameter: name (1), layer (100) repeated, in the prototxt's order (ReLU, Eltwise and
    pooling layers have no blobs; one of each is written all the same)."""
    rng = np.random.default_rng(rng_seed)
    out = [_field(1, f"ResNet-{depth}".encode())]

    def conv_bn(conv_name, bn_name, scale_name, w, p, stride, bias=None):
        out.append(_field(100, layer(conv_name, "Convolution", [w] + ([bias] if bias is not None else []),
                                     conv_stride=stride)))
        factor = np.float32(rng.uniform(500, 1000))
        out.append(_field(100, layer(bn_name, "BatchNorm", [p["mean"] * factor, p["var"] * factor,
                                                              np.array([factor], np.float32)])))
        out.append(_field(100, layer(scale_name, "Scale", [p["gamma"], p["beta"]])))

    conv_bn("conv1", "bn_conv1", "scale_conv1", net["conv1"], net["bn1"], 2, net["conv1_b"])
    out.append(_field(100, layer("conv1_relu", "ReLU", [])))
    out.append(_field(100, layer("pool1", "Pooling", [])))
    counts = STAGES[depth][1]
    for s, blocks in enumerate(net["stages"], start=2):
        for b, block in enumerate(blocks, start=1):
            tag = f"{s}{caffe_letter(depth, counts[s - 2], b)}"
            if "proj" in block:
                conv_bn(f"res{tag}_branch1", f"bn{tag}_branch1", f"scale{tag}_branch1",
                        *block["proj"], block["stride"])
            for i, (w, p) in enumerate(block["convs"]):
                br = "abc"[i]
                stride = block["stride"] if i == (1 if v15 else 0) else 1
                conv_bn(f"res{tag}_branch2{br}", f"bn{tag}_branch2{br}", f"scale{tag}_branch2{br}",
                        w, p, stride)
            out.append(_field(100, layer(f"res{tag}", "Eltwise", [])))
    out.append(_field(100, layer("pool5", "Pooling", [])))
    out.append(_field(100, layer("fc1000", "InnerProduct", [net["fc_w"], net["fc_b"]])))
    return b"".join(out)


def mean_binaryproto(mean_bgr) -> bytes:
    """BlobProto in the legacy 4-D form: num (1), channels (2), height (3), width (4), data (5)."""
    c, h, w = mean_bgr.shape
    return (_uint(1, 1) + _uint(2, c) + _uint(3, h) + _uint(4, w)
            + _field(5, np.asarray(mean_bgr, "<f4").tobytes()))
