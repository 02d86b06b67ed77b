"""resnet_jax/runs.py: the run folder's one JSON writer is atomic, and reading a run needs no JAX."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import pytest

from resnet_jax import runs


def test_write_json_replaces_the_file_whole_or_not_at_all(tmp_path, monkeypatch):
    path = str(tmp_path / "results.json")
    runs.write_json(path, {"test_error": 0.5})
    runs.write_json(path, '{"from": "to_json_best_effort"}')  # text that already is JSON
    assert runs.read_json(path) == {"from": "to_json_best_effort"}

    def disk_full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(runs.os, "replace", disk_full)
    with pytest.raises(runs.RunIOError) as error:
        runs.write_json(path, {"test_error": 0.25})
    assert str(error.value) == f"cannot write {path} (No space left on device)"
    assert runs.read_json(path) == {"from": "to_json_best_effort"}  # the old file, intact
    assert os.listdir(tmp_path) == ["results.json"]  # no temporary file left behind


def test_a_seed_folder_is_found_beside_its_runs_checkpoints(tmp_path):
    run = tmp_path / "run"
    (run / "seed3").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"seed": 2, "num_seeds": 2}))
    assert runs.multi_seed_parent(str(run / "seed3"), 3) is None  # no checkpoints/ yet
    (run / "checkpoints").mkdir()
    assert runs.multi_seed_parent(str(run / "seed3"), 3) == str(run)
    assert runs.multi_seed_parent(str(run / "seed3") + "/", 3) == str(run)
    assert runs.multi_seed_parent(str(run / "seed3"), 2) is None  # another seed's folder


def test_reading_runs_imports_no_jax():
    code = ("import sys, resnet_jax.runs; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'flax', 'orbax')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
