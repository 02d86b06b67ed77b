"""Host-fed training: grain's worker defaults and the warning when the host cannot keep up."""

import pytest

from resnet_jax import configs
from resnet_jax.data import imagenet
from resnet_jax.train import feeds


def test_auto_workers_leave_one_core_to_training(monkeypatch):
    monkeypatch.setattr(imagenet.os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert imagenet.worker_count(imagenet.AUTO_WORKERS) == 15
    monkeypatch.setattr(imagenet.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert imagenet.worker_count(-1) == 1  # a one-core host still decodes apart from training
    assert imagenet.worker_count(0) == 0 and imagenet.worker_count(5) == 5
    assert configs.imagenet_config().data.num_workers == imagenet.AUTO_WORKERS
    config = configs.imagenet_config()
    config.data.num_workers = -2
    with pytest.raises(configs.ConfigError, match="num_workers"):
        configs.validate(config, num_devices=1)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_input_monitor_warns_once_naming_the_workers_that_would_keep_up(monkeypatch, caplog):
    clock = Clock()
    monkeypatch.setattr(feeds.time, "perf_counter", clock)
    monitor = feeds.InputMonitor(num_workers=2, window=4, skip=1)
    # devices busy when every chunk arrives: fed fast enough, never a verdict
    for _ in range(1 + 3 * 4):  # the compile chunk, then three windows
        clock.now += 1.0
        assert not monitor.arrived(100, devices_idle=False)
    # now the devices idle at 3 chunks in 4: 100 images per second arrive
    verdicts = []
    for i in range(4):
        clock.now += 1.0
        verdicts.append(monitor.arrived(100, devices_idle=i > 0))
    assert verdicts == [False, False, False, True]
    clock.now += 0.25  # the devices take 100 images in 0.25 s: 400/s, 4x the feed
    message = monitor.measured(100, 0.25)
    assert "feeds 100 images/s" in message and "take 400" in message
    assert "about 8 grain workers" in message and "now 2" in message
    assert message in caplog.text
    clock.now += 1.0
    assert not monitor.arrived(100, devices_idle=True)  # said once
