"""The restricted unpickler reads what numpy and Python 2 pickled and runs nothing else."""

import pickle

import numpy as np
import pytest

from resnet_jax.data import safe_pickle


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy_arrays_and_containers_round_trip(protocol):
    data = {b"data": np.arange(3 * 5, dtype=np.uint8).reshape(3, 5),
            b"labels": [3, 1, 4], b"filenames": [b"a.png", b"b.png", b"c.png"],
            "floats": np.asfortranarray(np.linspace(-1, 1, 12, dtype=">f4").reshape(3, 4)),
            "scalar": np.int64(7), "ints": (np.arange(4, dtype=np.int16),)}
    out = safe_pickle.load(pickle.dumps(data, protocol=protocol))
    assert out.keys() == data.keys()
    for key in (b"data", "floats"):
        np.testing.assert_array_equal(out[key], data[key])
        assert out[key].dtype == data[key].dtype.newbyteorder("=")
    assert out[b"labels"] == [3, 1, 4] and out[b"filenames"] == data[b"filenames"]
    assert out["scalar"] == 7 and out["ints"][0].tolist() == [0, 1, 2, 3]


class _Boom:
    def __reduce__(self):
        import os
        return (os.system, ("touch SHOULD_NOT_EXIST",))


def test_a_crafted_pickle_is_refused_without_running_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    payload = pickle.dumps({b"data": _Boom()}, protocol=2)
    with pytest.raises(safe_pickle.UnsafePickleError, match=r"refusing to load (posix|os)\.system"):
        safe_pickle.load(payload)
    assert not (tmp_path / "SHOULD_NOT_EXIST").exists()


def test_object_arrays_and_persistent_ids_are_refused():
    with pytest.raises(safe_pickle.UnsafePickleError, match="only numeric arrays"):
        safe_pickle.load(pickle.dumps(np.array([1, "x"], dtype=object), protocol=2))

    class P(pickle.Pickler):
        def persistent_id(self, obj):
            return "storage" if obj == "x" else None
    import io
    buf = io.BytesIO()
    P(buf, protocol=2).dump(["x"])
    with pytest.raises(safe_pickle.UnsafePickleError, match="persistent"):
        safe_pickle.load(buf.getvalue())
    assert safe_pickle.load(buf.getvalue(), persistent_load=lambda pid: pid.upper()) == ["STORAGE"]
