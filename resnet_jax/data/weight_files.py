"""Readers (and a writer) of the files other frameworks' trained ResNets come in, as numpy arrays.

- Caffe `.caffemodel` (the authors' released ResNet-50/101/152) and `.binaryproto` (their mean
  image): binary protobuf `NetParameter` / `BlobProto`, parsed with the `protobuf` runtime through
  the few message types declared here with BVLC Caffe's field numbers (src/caffe/proto/caffe.proto);
  no generated code, no protoc. Protobuf holds data only: parsing runs nothing from the file.
- safetensors (the form model hubs distribute torchvision weights in): an 8-byte little-endian
  header length, a JSON header {name: {dtype, shape, data_offsets}}, then the raw tensors.
- PyTorch `.pth`/`.pt`/`.th` (torch.save's zip and legacy forms): data/torch_files.py.

Every problem is a WeightFileError with one line naming the file and, where there is one, the first
tensor (or layer) at fault.
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError



class WeightFileError(ValueError):
    """A weight file that cannot be read as what it claims to be; one line."""


# ---- Caffe ---------------------------------------------------------------------------------------

# (message, [(field, number, type, label, message type)]) with the numbers of BVLC caffe.proto.
# Only the fields read here; the parser skips every other field of the real messages.
_T = descriptor_pb2.FieldDescriptorProto
_OPT, _REP = _T.LABEL_OPTIONAL, _T.LABEL_REPEATED
_CAFFE_MESSAGES = {
    "BlobShape": [("dim", 1, _T.TYPE_INT64, _REP, None)],
    "BlobProto": [("shape", 7, _T.TYPE_MESSAGE, _OPT, "BlobShape"),
                  # packed repeated float / double: one length-delimited record on the wire, read
                  # here as its raw bytes (np.frombuffer), not as millions of Python floats
                  ("data", 5, _T.TYPE_BYTES, _OPT, None),
                  ("double_data", 8, _T.TYPE_BYTES, _OPT, None),
                  ("num", 1, _T.TYPE_INT32, _OPT, None), ("channels", 2, _T.TYPE_INT32, _OPT, None),
                  ("height", 3, _T.TYPE_INT32, _OPT, None), ("width", 4, _T.TYPE_INT32, _OPT, None)],
    "ConvolutionParameter": [("bias_term", 2, _T.TYPE_BOOL, _OPT, None),
                             ("pad", 3, _T.TYPE_UINT32, _REP, None),
                             ("kernel_size", 4, _T.TYPE_UINT32, _REP, None),
                             ("stride", 6, _T.TYPE_UINT32, _REP, None)],
    "PoolingParameter": [("pool", 1, _T.TYPE_INT32, _OPT, None),  # an enum on the wire: MAX 0, AVE 1
                         ("kernel_size", 2, _T.TYPE_UINT32, _OPT, None),
                         ("stride", 3, _T.TYPE_UINT32, _OPT, None),
                         ("pad", 4, _T.TYPE_UINT32, _OPT, None)],
    "BatchNormParameter": [("eps", 3, _T.TYPE_FLOAT, _OPT, None)],
    "LayerParameter": [("name", 1, _T.TYPE_STRING, _OPT, None), ("type", 2, _T.TYPE_STRING, _OPT, None),
                       ("blobs", 7, _T.TYPE_MESSAGE, _REP, "BlobProto"),
                       ("convolution_param", 106, _T.TYPE_MESSAGE, _OPT, "ConvolutionParameter"),
                       ("pooling_param", 121, _T.TYPE_MESSAGE, _OPT, "PoolingParameter"),
                       ("batch_norm_param", 139, _T.TYPE_MESSAGE, _OPT, "BatchNormParameter")],
}
_PACKAGE = "resnet_jax_caffe_subset"
NET_LAYER_FIELD, NET_V1_LAYERS_FIELD = 100, 2  # NetParameter.layer, NetParameter.layers (V1)


def _caffe_classes() -> dict[str, type]:
    """Message classes for _CAFFE_MESSAGES, in a private descriptor pool."""
    file = descriptor_pb2.FileDescriptorProto(name=f"{_PACKAGE}.proto", package=_PACKAGE,
                                              syntax="proto2")
    for name, fields in _CAFFE_MESSAGES.items():
        msg = file.message_type.add(name=name)
        for field, number, type_, label, type_name in fields:
            f = msg.field.add(name=field, number=number, type=type_, label=label)
            if type_name:
                f.type_name = f".{_PACKAGE}.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
            for name in _CAFFE_MESSAGES}


_CLASSES: dict[str, type] | None = None


def _caffe(name: str) -> type:
    global _CLASSES
    if _CLASSES is None:
        _CLASSES = _caffe_classes()
    return _CLASSES[name]


@dataclasses.dataclass(frozen=True)
class CaffeLayer:
    name: str
    type: str
    blobs: list[np.ndarray]
    params: dict[str, Any]  # the layer's convolution/pooling/batch-norm settings that were set


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise IndexError
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _layer_name_prefix(record: memoryview) -> str:
    """The name of a layer whose record is cut short: its field 1 (written first by Caffe)."""
    try:
        tag, pos = _varint(record, 0)
        if tag == (1 << 3 | 2):
            size, pos = _varint(record, pos)
            if pos + size <= len(record):
                return bytes(record[pos:pos + size]).decode("utf-8", "replace")
    except (IndexError, ValueError):
        pass
    return "?"


def blob_array(blob) -> np.ndarray:
    """A BlobProto's data in its shape (`shape`, or the legacy num/channels/height/width)."""
    if blob.HasField("shape"):
        shape = tuple(int(d) for d in blob.shape.dim)
    else:
        shape = (blob.num, blob.channels, blob.height, blob.width)
    raw, dtype = (blob.data, "<f4") if blob.data or not blob.double_data else (blob.double_data, "<f8")
    if len(raw) != int(np.prod(shape)) * np.dtype(dtype).itemsize:
        raise ValueError(f"holds {len(raw)} bytes of data for shape {list(shape)}")
    return np.frombuffer(raw, dtype).astype(np.float32).reshape(shape)


def read_caffemodel(path: str) -> dict[str, CaffeLayer]:
    """{layer name: CaffeLayer} of a binary NetParameter, layers with blobs only, in file order.

    The top level is walked here (not parsed whole) so that a truncated file names the layer it
    breaks off in."""
    data = memoryview(read_bytes(path))
    layers: dict[str, CaffeLayer] = {}
    pos = 0
    layer_cls = _caffe("LayerParameter")
    while pos < len(data):
        try:
            tag, pos = _varint(data, pos)
            number, wire = tag >> 3, tag & 7
            if wire == 0:
                _, pos = _varint(data, pos)
                continue
            if wire == 1 or wire == 5:
                pos += 8 if wire == 1 else 4
                continue
            if wire != 2:
                raise ValueError(f"wire type {wire}")
            size, pos = _varint(data, pos)
        except (IndexError, ValueError):
            raise WeightFileError(f"{path} is not a Caffe NetParameter (or is cut short at byte "
                                  f"{pos})") from None
        record, pos = data[pos:pos + size], pos + size
        if len(record) < size:
            raise WeightFileError(f"{path} is truncated: it breaks off in layer "
                                  f"{_layer_name_prefix(record)!r}")
        if number == NET_V1_LAYERS_FIELD:
            raise WeightFileError(f"{path} uses Caffe's V1 layer format; upgrade it with Caffe's "
                                  "upgrade_net_proto_binary first")
        if number != NET_LAYER_FIELD:
            continue
        try:
            layer = layer_cls.FromString(bytes(record))
        except DecodeError:
            raise WeightFileError(f"{path}: layer {_layer_name_prefix(record)!r} is not a valid "
                                  "LayerParameter") from None
        if not len(layer.blobs):
            continue
        try:
            blobs = [blob_array(b) for b in layer.blobs]
        except ValueError as e:
            raise WeightFileError(f"{path}: a blob of layer {layer.name!r} {e}") from None
        params = {}
        for field in ("convolution_param", "pooling_param", "batch_norm_param"):
            if layer.HasField(field):
                msg = getattr(layer, field)
                params[field] = {f.name: (list(v) if f.is_repeated else v)
                                 for f, v in msg.ListFields()}
        layers[layer.name] = CaffeLayer(layer.name, layer.type, blobs, params)
    if not layers:
        raise WeightFileError(f"{path} holds no Caffe layers with weights")
    return layers


def read_binaryproto(path: str) -> np.ndarray:
    """A BlobProto file (Caffe's mean image): its array, as stored (e.g. 1x3x224x224 BGR)."""
    try:
        blob = _caffe("BlobProto").FromString(read_bytes(path))
        return blob_array(blob)
    except (DecodeError, ValueError) as e:
        raise WeightFileError(f"{path} is not a Caffe BlobProto: {e}") from None


def read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise WeightFileError(f"{path}: {e.strerror}") from None


# ---- safetensors ---------------------------------------------------------------------------------

SAFETENSORS_DTYPES = {"F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
                      "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "U8": np.dtype("u1")}
_DTYPE_NAMES = {v: k for k, v in SAFETENSORS_DTYPES.items()}


def bfloat16():
    import ml_dtypes  # noqa: PLC0415 (installed with jax)

    return np.dtype(ml_dtypes.bfloat16)


def read_safetensors(path: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """({name: array} in file order, the header's `__metadata__`)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise WeightFileError(f"{path} is not a safetensors file: too short")
            (size,) = struct.unpack("<Q", head)
            if size > 100 << 20:
                raise WeightFileError(f"{path} is not a safetensors file: header of {size} bytes")
            header_bytes = f.read(size)
            body = f.read()
    except OSError as e:
        raise WeightFileError(f"{path}: {e.strerror}") from None
    try:
        header = json.loads(header_bytes)
        if not isinstance(header, dict):
            raise ValueError("not an object")
    except ValueError as e:  # (UnicodeDecodeError and JSONDecodeError are ValueErrors)
        raise WeightFileError(f"{path} is not a safetensors file: bad header ({e})") from None
    metadata = header.pop("__metadata__", None) or {}
    tensors = {}
    entries = sorted(header.items(), key=lambda kv: _offsets(path, kv)[0])
    for name, info in entries:
        begin, end = _offsets(path, (name, info))
        dtype = bfloat16() if info.get("dtype") == "BF16" else SAFETENSORS_DTYPES.get(info.get("dtype"))
        if dtype is None:
            raise WeightFileError(f"{path}: tensor {name!r} has dtype {info.get('dtype')!r}, not a "
                                  f"number type ({', '.join([*SAFETENSORS_DTYPES, 'BF16'])})")
        shape = tuple(int(d) for d in info.get("shape", ()))
        if end > len(body):
            raise WeightFileError(f"{path} is truncated: tensor {name!r} needs bytes {begin}-{end} "
                                  f"of a {len(body)}-byte data section")
        if end - begin != int(np.prod(shape)) * dtype.itemsize:
            raise WeightFileError(f"{path}: tensor {name!r} of shape {shape} and dtype "
                                  f"{info['dtype']} holds {end - begin} bytes")
        tensors[name] = np.frombuffer(body, dtype, int(np.prod(shape)), begin).reshape(shape).copy()
    return tensors, {str(k): str(v) for k, v in metadata.items()}


def _offsets(path: str, item) -> tuple[int, int]:
    name, info = item
    try:
        begin, end = (int(x) for x in info["data_offsets"])
    except (KeyError, TypeError, ValueError):
        raise WeightFileError(f"{path}: tensor {name!r} has no valid data_offsets") from None
    if not 0 <= begin <= end:
        raise WeightFileError(f"{path}: tensor {name!r} has data_offsets {begin}..{end}")
    return begin, end


def safetensors_bytes(tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> bytes:
    """The safetensors encoding of `tensors` (written in the given order, C order, little endian)."""
    header: dict[str, Any] = {"__metadata__": dict(metadata)} if metadata else {}
    chunks, offset = [], 0
    for name, array in tensors.items():
        array = np.asarray(array, order="C")  # (ascontiguousarray would make a scalar 1-d)
        if array.dtype == bfloat16():
            dtype_name = "BF16"
        else:
            array = array.astype(array.dtype.newbyteorder("<"))
            dtype_name = _DTYPE_NAMES.get(array.dtype)
            if dtype_name is None:
                raise ValueError(f"tensor {name!r}: no safetensors dtype for {array.dtype}")
        raw = array.tobytes()
        header[name] = {"dtype": dtype_name, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data section starts 8-byte aligned, as the reference writes
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def file_format(path: str) -> str:
    """'caffe', 'safetensors' or 'pth' (any torch.save file) by the file name; WeightFileError
    otherwise."""
    ext = os.path.splitext(path)[1].lower()
    formats = {".caffemodel": "caffe", ".safetensors": "safetensors", ".pth": "pth", ".pt": "pth",
               ".th": "pth"}
    if ext not in formats:
        raise WeightFileError(f"{path}: expected a .caffemodel, .safetensors, or PyTorch .pth/.pt/.th file")
    return formats[ext]
