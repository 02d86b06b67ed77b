"""PyTorch's torch.save files read without torch (data/torch_files.py): akamaster's real legacy
ResNet-20 file, crafted legacy and zip files of every published CIFAR ResNet, and files that must be
refused (a pickle that would run code, files cut short or missing a storage)."""

import collections
import io
import os
import pickle
import pickletools
import re
import zipfile

import numpy as np
import pytest

import torch_fakes as fakes
from resnet_jax.data import torch_files
from resnet_jax.data.weight_files import WeightFileError

REAL_RESNET20 = fakes.REAL_RESNET20
REAL_SHA256 = "12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8"
needs_real = pytest.mark.skipif(not os.path.exists(REAL_RESNET20),
                                reason="../shared/real (akamaster's ResNet-20, CIFAR-10 images) is absent")
# a legacy file's first three pickles: magic number, protocol version, sys_info
HEAD = b"".join(pickle.dumps(v, protocol=2) for v in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}))


def _legacy_storage_keys(data: bytes) -> list[str]:
    """The storage keys of a legacy file's tensors in pickle order (torch's are decimal memory
    addresses), read off its opcodes without unpickling anything."""
    stream = io.BytesIO(data)
    for _ in range(3):  # magic number, protocol version, sys_info
        for _ in pickletools.genops(stream):
            pass
    return [arg for _, arg, _ in pickletools.genops(stream) if isinstance(arg, str) and arg.isdigit()]


@needs_real
def test_the_real_akamaster_file_reads_and_the_fake_writer_reproduces_it_byte_for_byte(monkeypatch):
    """akamaster's resnet20-12fca82f.th: torch 0.3's legacy form of a DataParallel checkpoint.
    Written again from what was read (same storage keys, location cuda:0), the test writer gives
    the file's exact bytes, so the crafted files below are in the real format, not a guess of it."""
    import hashlib

    data = open(REAL_RESNET20, "rb").read()
    assert hashlib.sha256(data).hexdigest() == REAL_SHA256
    read = torch_files.read_torch(REAL_RESNET20)
    assert (read.form, read.rebuild) == (torch_files.LEGACY, torch_files.REBUILD_V1)
    assert read.wrapper == (("best_prec1", pytest.approx(91.78, abs=1e-4)), ("state_dict", None))
    # resnet.py's ResNet-20: conv1/bn1, 9 blocks of two convs + BNs, linear; 0.27M params (README)
    assert len(read.state) == 5 + 9 * 10 + 2 and all(k.startswith("module.") for k in read.state)
    params = sum(v.size for k, v in read.state.items() if not k.endswith(("running_mean", "running_var")))
    assert params == 269_722
    assert read.state["module.layer2.0.conv1.weight"].shape == (32, 16, 3, 3)
    assert read.state["module.linear.weight"].shape == (10, 64)
    wrapper = {k: (collections.OrderedDict(read.state) if k == "state_dict" else v) for k, v in read.wrapper}
    assert fakes.legacy_bytes(wrapper, monkeypatch, keys=_legacy_storage_keys(data)) == data


def _akamaster_file(depth, path, monkeypatch, **kw):
    state = fakes.cifar_state(depth, option="A", seed=depth, prefix="module.")
    path.write_bytes(fakes.legacy_bytes({"best_prec1": 91.5, "state_dict": state}, monkeypatch, **kw))
    return state


def _chenyaofo_file(depth, classes, path, monkeypatch, **kw):
    state = fakes.cifar_state(depth, option="B", num_classes=classes, seed=depth + classes, counters=True)
    path.write_bytes(fakes.zip_bytes(state, monkeypatch, **kw))
    return state


def _same(read, state):
    assert list(read) == list(state)
    for key, value in state.items():
        assert read[key].dtype == value.dtype and read[key].shape == value.shape, key
        np.testing.assert_array_equal(read[key], value, err_msg=key)


@pytest.mark.parametrize("depth", fakes.AKAMASTER_DEPTHS_FAST)
def test_crafted_akamaster_files_of_every_depth_read_exactly(depth, tmp_path, monkeypatch):
    state = _akamaster_file(depth, tmp_path / f"resnet{depth}.th", monkeypatch)
    monkeypatch.undo()  # the stand-in torch modules are gone before we read
    read = torch_files.read_torch(str(tmp_path / f"resnet{depth}.th"))
    assert read.form == torch_files.LEGACY and read.wrapper[0] == ("best_prec1", 91.5)
    _same(read.state, state)


@pytest.mark.parametrize("depth,classes", fakes.CHENYAOFO_MODELS)
def test_crafted_chenyaofo_files_read_exactly(depth, classes, tmp_path, monkeypatch):
    state = _chenyaofo_file(depth, classes, tmp_path / f"cifar{classes}_resnet{depth}.pt", monkeypatch)
    monkeypatch.undo()
    read = torch_files.read_torch(str(tmp_path / f"cifar{classes}_resnet{depth}.pt"))
    assert (read.form, read.rebuild, read.wrapper) == (torch_files.ZIP, torch_files.REBUILD_V2, None)
    assert read.state["layer2.0.downsample.0.weight"].shape == (32, 16, 1, 1)
    _same(read.state, state)


def test_other_torch_versions_forms_read_exactly(tmp_path, monkeypatch):
    """torch >= 0.4's legacy form (_rebuild_tensor_v2, a state dict carrying _metadata, cpu
    storages, BN counters) and torch 2's zip (a byteorder record), bare state dicts."""
    state = fakes.cifar_state(20, option="A", counters=True)
    state._metadata = collections.OrderedDict([("", {"version": 1}), ("bn1", {"version": 2})])
    (tmp_path / "v2.th").write_bytes(fakes.legacy_bytes(state, monkeypatch, v2=True, location="cpu"))
    (tmp_path / "t2.pt").write_bytes(fakes.zip_bytes(state, monkeypatch, byteorder=True, archive="t2"))
    monkeypatch.undo()
    for name in ("v2.th", "t2.pt"):
        read = torch_files.read_torch(str(tmp_path / name))
        assert read.rebuild == torch_files.REBUILD_V2 and read.wrapper is None
        _same(read.state, state)


# ---- files that must be refused ------------------------------------------------------------------

class _System:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Eval:
    def __reduce__(self):
        return (eval, ("__import__('os').system('true')",))


def _malicious_files(tmp_path, monkeypatch):
    """Legacy files whose pickles call os.system / builtins.eval (GLOBAL + REDUCE): in the object's
    pickle, in the magic number's place, and as a storage's persistent id."""
    marker = tmp_path / "pwned"
    good = fakes.legacy_bytes({"state_dict": fakes.cifar_state(20, option="A")}, monkeypatch)
    payload = {"state_dict": {"conv1.weight": _System(f"touch {marker}")}}
    files = {
        "in_the_state_dict.th": HEAD + pickle.dumps(payload, protocol=2),
        "as_the_magic_number.th": pickle.dumps(_System(f"touch {marker}"), protocol=2) + good,
        "eval.th": HEAD + pickle.dumps({"conv1.weight": _Eval()}, protocol=2),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return marker, files


def test_malicious_legacy_files_run_nothing(tmp_path, monkeypatch):
    marker, files = _malicious_files(tmp_path, monkeypatch)
    monkeypatch.undo()
    for name in files:
        refused = r"refusing to load (posix\.system|(__builtin__|builtins)\.eval)|not a PyTorch file"
        with pytest.raises(WeightFileError, match=refused) as e:
            torch_files.read_torch(str(tmp_path / name))
        assert "\n" not in str(e.value)
    assert not marker.exists()


def test_a_truncated_legacy_file_names_its_first_tensor_without_data(tmp_path, monkeypatch):
    """The storages follow the pickle in sorted-key order ("0", "1", "10", "100", ...), so a file
    cut short loses the data of tensors spread over the net: the first of them in the state dict
    is named."""
    state = _akamaster_file(56, tmp_path / "resnet56.th", monkeypatch)
    data = (tmp_path / "resnet56.th").read_bytes()
    keys = [str(i) for i in range(len(state))]  # the writer's keys, in tensor order
    cut = len(data) * 3 // 5
    # where each storage's record ends: the records fill the file's end, in sorted-key order;
    # reading stops at the first one cut short, so it and every later one are lost
    ends, end = {}, len(data)
    for key in sorted(keys, reverse=True):
        ends[key] = end
        end -= 8 + state[list(state)[int(key)]].nbytes
    first_cut = min(k for k in sorted(keys) if ends[k] > cut)
    lost = [name for name, key in zip(state, keys) if key >= first_cut]
    (tmp_path / "cut.th").write_bytes(data[:cut])
    with pytest.raises(WeightFileError) as e:
        torch_files.read_torch(str(tmp_path / "cut.th"))
    assert re.fullmatch(rf".*cut\.th: tensor '{re.escape(lost[0])}' has no data: the file is truncated .*",
                        str(e.value)), str(e.value)
    assert lost[0] != next(iter(state))  # (not simply the first tensor)
    (tmp_path / "cut_in_pickle.th").write_bytes(data[:2000])
    with pytest.raises(WeightFileError, match=r"damaged or truncated: its pickle does not read"):
        torch_files.read_torch(str(tmp_path / "cut_in_pickle.th"))


def test_a_zip_missing_a_storage_names_its_tensor(tmp_path, monkeypatch):
    state = _chenyaofo_file(20, 10, tmp_path / "full.pt", monkeypatch)
    names = list(state)
    with zipfile.ZipFile(tmp_path / "full.pt") as src, zipfile.ZipFile(tmp_path / "holed.pt", "w") as dst:
        for item in src.infolist():
            if item.filename != f"archive/data/{names.index('layer2.1.bn1.running_var')}":
                dst.writestr(item, src.read(item))
    with pytest.raises(WeightFileError, match=r"tensor 'layer2\.1\.bn1\.running_var' has no data: its "
                                              r"storage archive/data/\d+ is missing"):
        torch_files.read_torch(str(tmp_path / "holed.pt"))
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[:len(data) // 2])
    with pytest.raises(WeightFileError, match=r"cut\.pt is truncated or not a PyTorch zip file"):
        torch_files.read_torch(str(tmp_path / "cut.pt"))


def test_a_pickled_model_or_other_objects_are_not_state_dicts(tmp_path):
    head = HEAD
    (tmp_path / "list.th").write_bytes(head + pickle.dumps([1, 2], protocol=2))
    with pytest.raises(WeightFileError, match=r"list\.th does not hold a state dict$"):
        torch_files.read_torch(str(tmp_path / "list.th"))
    (tmp_path / "big.th").write_bytes(head.replace(b"\x88", b"\x89"))  # little_endian False
    with pytest.raises(WeightFileError, match=r"big-endian"):
        torch_files.read_torch(str(tmp_path / "big.th"))
    (tmp_path / "text.th").write_bytes(b"hello")
    with pytest.raises(WeightFileError, match=r"not a PyTorch file: neither a zip archive nor"):
        torch_files.read_torch(str(tmp_path / "text.th"))


# ---- writing -------------------------------------------------------------------------------------

def _written_back(read, form, monkeypatch):
    """`read` written by torch_write in `form`, then loaded by the torch.load stand-in (Python's
    own unpickler) and by read_torch: both must give the tensors, the wrapper and the form back."""
    from resnet_jax.data import torch_write

    data = torch_write.legacy_bytes(read) if form == torch_files.LEGACY else torch_write.zip_bytes(read)
    loaded = fakes.torch_load(data, monkeypatch)
    monkeypatch.undo()
    state = loaded["state_dict"] if read.wrapper else loaded
    assert isinstance(state, collections.OrderedDict)
    _same(state, read.state)
    if read.wrapper:
        assert list(loaded) == [k for k, _ in read.wrapper]
        assert all(loaded[k] == v for k, v in read.wrapper if k != "state_dict")
    return data


@pytest.mark.parametrize("form", [torch_files.LEGACY, torch_files.ZIP])
def test_written_files_load_back_exactly(form, tmp_path, monkeypatch):
    _akamaster_file(32, tmp_path / "a.th", monkeypatch)
    _chenyaofo_file(20, 100, tmp_path / "c.pt", monkeypatch)
    monkeypatch.undo()
    for name in ("a.th", "c.pt"):
        read = torch_files.read_torch(str(tmp_path / name))
        (tmp_path / "back").write_bytes(_written_back(read, form, monkeypatch))
        again = torch_files.read_torch(str(tmp_path / "back"))
        assert (again.form, again.rebuild, again.wrapper) == (form, read.rebuild, read.wrapper)
        _same(again.state, read.state)


@needs_real
def test_the_real_file_written_back_in_its_form_loads_back_exactly(tmp_path, monkeypatch):
    read = torch_files.read_torch(REAL_RESNET20)
    (tmp_path / "back.th").write_bytes(_written_back(read, torch_files.LEGACY, monkeypatch))
    again = torch_files.read_torch(str(tmp_path / "back.th"))
    assert (again.rebuild, again.wrapper) == (torch_files.REBUILD_V1, read.wrapper)
    _same(again.state, read.state)
