"""Reading a run's TensorBoard event files back with TensorBoard's own reader (no TensorFlow)."""

from __future__ import annotations

import json

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from resnet_jax import runs
from resnet_jax.train.tensorboard_log import CONFIG_TAG, scalars


def read_events(workdir: str) -> tuple[dict[str, list[tuple[int, float]]], list[tuple[int, str]]]:
    """({tag: [(step, value)]}, [(step, config text)]) as TensorBoard shows `workdir`."""
    events = EventAccumulator(workdir, size_guidance={"scalars": 0, "tensors": 0})  # 0: keep all
    events.Reload()
    tags = events.Tags()
    values = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in tags["scalars"]}
    texts = [(e.step, e.tensor_proto.string_val[0].decode())
             for e in events.Tensors(f"{CONFIG_TAG}/text_summary")]
    return values, texts


def assert_events_mirror_metrics(workdir: str) -> None:
    """TensorBoard shows exactly metrics.jsonl: each record's numbers under their names at its
    step, once, and config.json as the one text. Values as float32, the width of an event's
    simple_value: exact after that rounding, since both are the same logged float."""
    assert len(runs.event_files(workdir)) == 1, runs.event_files(workdir)
    values, texts = read_events(workdir)
    expected: dict[str, list] = {}
    for record in runs.read_metrics(workdir):
        for tag, value in scalars(record).items():
            expected.setdefault(tag, []).append((record["step"], float(np.float32(value))))
    assert values == expected
    assert {"loss", "train_error", "test_error", "lr", "images_per_sec"} <= set(values)
    [(_, text)] = texts
    assert json.loads(text.removeprefix("```json\n").removesuffix("\n```")) == runs.read_json(
        runs.config_path(workdir))
