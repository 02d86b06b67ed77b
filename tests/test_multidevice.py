"""Data parallelism on 8 (virtual CPU) devices equals 1 device; BN groups are independent of how the
batch is split. Runs tests/multidevice_check.py in a subprocess, since the device count is fixed
when JAX starts."""

from __future__ import annotations

import json
import sys

import pytest

import scaleout_helpers as h

TOL = 1e-5  # float32 sums in a different order: differences of a few ulps


@pytest.fixture(scope="module")
def diffs():
    result = h.run([sys.executable, "tests/multidevice_check.py"], h.env(8), timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_training_steps_on_8_devices_equal_1_device_with_global_bn(diffs):
    d = diffs["train_steps_global_bn"]
    assert d.pop("devices") == 8
    assert all(v < TOL for v in d.values()), d


def test_group_bn_on_8_devices_equals_sync_bn_group_by_group(diffs):
    d = diffs["group_bn"]
    assert all(v < TOL for v in d.values()), d


def test_host_fed_batch_assembles_the_global_batch(diffs):
    assert diffs["host_fed"] == {"rows": [0, 32], "shards": 8, "shard_rows": 4, "diff": 0.0}
