"""Pack ImageNet from the folder tree or the official tars into a tfds `imagenet2012` directory
(ArrayRecord shards of the JPEG bytes), without TensorFlow: what `tfds build imagenet2012` writes,
from what the user already has, so `--data_dir DST` then reads it through tfds's fast path.

Records go in the order imagenet_files.py serves them (tfds's own order) and labels are stored as
wnids, which tfds's ClassLabel numbers as it always does. Each shard is written to a temporary name
and renamed, then marked done by a small JSON file of its per-class counts; a rerun after a kill
skips the shards already marked. At the end the marked counts are checked against the source's
per-class counts and against the records each shard file holds, and only then is
`dataset_info.json` written (tfds reads a directory only once it has one).
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
from typing import Callable, Sequence

import numpy as np

from resnet_jax.data.base import DatasetError

NAME, VERSION = "imagenet2012", "5.1.0"
SPLITS = ("train", "validation")
IMAGES_PER_SHARD = 1250  # ~140 MB shards: about 1024 for train, as tfds writes
_PLAN = "resnet_jax_prepare.json"


def version_dir(dst: str) -> str:
    return os.path.join(os.path.expanduser(dst), NAME, VERSION)


def shard_path(dst: str, split: str, shard: int, num_shards: int) -> str:
    return os.path.join(version_dir(dst), f"{NAME}-{split}.array_record-{shard:05d}-of-{num_shards:05d}")


def _shards(n: int, images_per_shard: int) -> list[tuple[int, int]]:
    num = max(1, -(-n // images_per_shard))
    bounds = np.linspace(0, n, num + 1).round().astype(int)
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))


def unfinished(dst: str) -> str | None:
    """The source of a preparation into `dst` that has not finished, if there is one."""
    out = version_dir(dst)
    if os.path.exists(os.path.join(out, "dataset_info.json")):
        return None
    try:
        with open(os.path.join(out, _PLAN)) as f:
            return json.load(f)["src"]
    except (OSError, ValueError, KeyError):
        return None


def _builder(dst: str):
    """tfds's imagenet2012 builder: its features serialize our records, its info describes them."""
    import tensorflow_datasets as tfds  # noqa: PLC0415

    return tfds.builder(NAME, data_dir=os.path.expanduser(dst), file_format="array_record")


def _write_shard(path: str, source, names: Sequence[str], start: int, stop: int, serialize,
                 on_image: Callable[[], None]) -> dict[str, int]:
    from array_record.python.array_record_module import ArrayRecordWriter  # noqa: PLC0415

    counts: collections.Counter = collections.Counter()
    tmp = f"{path}.tmp{os.getpid()}"
    writer = ArrayRecordWriter(tmp, "group_size:1")  # one record per chunk: random access
    try:
        try:
            for i in range(start, stop):
                try:
                    record = source[i]
                except OSError as e:  # the source, not the destination: a dataset problem
                    raise DatasetError(f"reading {names[i]} from {source.root}: "
                                       f"{e.strerror or e}") from None
                wnid = source.classes[record["label"]]
                writer.write(serialize({"image": record["image"], "label": wnid,
                                        "file_name": names[i]}))
                counts[wnid] += 1
                on_image()
        finally:
            writer.close()
        os.replace(tmp, path)
    except BaseException:  # killed or failed: leave no partial shard behind
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    done = f"{path}.done.json"
    with open(f"{done}.tmp", "w") as f:
        json.dump(counts, f)
    os.replace(f"{done}.tmp", done)
    return dict(counts)


def _read_done(path: str) -> dict[str, int] | None:
    try:
        with open(f"{path}.done.json") as f:
            counts = json.load(f)
    except (OSError, ValueError):
        return None
    return counts if os.path.exists(path) else None


def prepare(src: str, dst: str, sources: dict, *, images_per_shard: int = IMAGES_PER_SHARD,
            progress: str | None = "bar") -> dict[str, int]:
    """Write `sources` ({split: imagenet_files.FileRecords of src}) to a tfds directory under `dst`;
    returns the images per split. Resumes a killed run; raises DatasetError if the counts disagree.

    `progress`: "bar" (a tqdm bar, for a terminal), "lines" (a line on stderr at every 5%, for logs
    where no terminal redraws a bar) or None.
    """
    import sys  # noqa: PLC0415
    import time  # noqa: PLC0415

    from tqdm import tqdm  # noqa: PLC0415

    out = version_dir(dst)
    os.makedirs(out, exist_ok=True)
    plan = {"src": os.path.abspath(os.path.expanduser(src)), "images_per_shard": images_per_shard,
            "splits": {s: len(r) for s, r in sources.items()}}
    plan_path = os.path.join(out, _PLAN)
    if os.path.exists(plan_path):
        with open(plan_path) as f:
            if json.load(f) != plan:
                raise DatasetError(f"{out} holds part of a different preparation (other source or "
                                   "shard size); remove it or choose another destination")
    else:
        with open(f"{plan_path}.tmp", "w") as f:
            json.dump(plan, f)
        os.replace(f"{plan_path}.tmp", plan_path)

    builder = _builder(dst)
    serialize = builder.info.features.serialize_example
    shards = {s: _shards(len(r), images_per_shard) for s, r in sources.items()}
    total = sum(len(r) for r in sources.values())
    done = {s: [_read_done(shard_path(dst, s, k, len(b))) for k in range(len(b))] for s, b in shards.items()}
    already = sum(stop - start for s, b in shards.items() for (start, stop), d in zip(b, done[s]) if d)
    bar = tqdm(total=total, initial=already, unit="img", desc=f"packing {NAME}",
               disable=progress != "bar", smoothing=0.05)
    packed, started, next_line = already, time.monotonic(), 0.05
    for split, source in sources.items():
        names = [os.fsdecode(n) for n in source.names]
        for k, (start, stop) in enumerate(shards[split]):
            if done[split][k] is None:
                path = shard_path(dst, split, k, len(shards[split]))
                done[split][k] = _write_shard(path, source, names, start, stop, serialize,
                                              lambda: bar.update(1))
                packed += stop - start
                if progress == "lines" and packed >= next_line * total:
                    rate = (packed - already) / max(time.monotonic() - started, 1e-9)
                    print(f"packing {NAME}: {packed / total:.0%} ({packed:,}/{total:,} images, "
                          f"{rate:,.0f} images/s)", file=sys.stderr, flush=True)
                    next_line = (int(packed / total / 0.05) + 1) * 0.05
    bar.close()
    _check(dst, sources, shards, done)
    _write_info(builder, dst, shards)
    return {s: len(r) for s, r in sources.items()}


def _check(dst, sources, shards, done) -> None:
    """The packed per-class counts equal the source's; each shard holds what its marker says."""
    from array_record.python.array_record_module import ArrayRecordReader  # noqa: PLC0415

    for split, source in sources.items():
        expected = collections.Counter(source.classes[c] for c in np.asarray(source.label).tolist())
        packed = collections.Counter()
        for k, ((start, stop), counts) in enumerate(zip(shards[split], done[split])):
            path = shard_path(dst, split, k, len(shards[split]))
            reader = ArrayRecordReader(path)
            try:
                held = reader.num_records()
            finally:
                reader.close()
            if held != stop - start or sum(counts.values()) != stop - start:
                raise DatasetError(f"{path}: holds {held} records, expected {stop - start}; delete it "
                                   "and its .done.json and run prepare again")
            packed.update(counts)
        if packed != expected:
            wnid = sorted(set(packed) ^ set(expected) or
                          {w for w in expected if packed[w] != expected[w]})[0]
            raise DatasetError(f"{split}: packed {packed[wnid]} images of {wnid}, the source has "
                               f"{expected[wnid]}; remove {version_dir(dst)} and prepare again")


def _write_info(builder, dst: str, shards) -> None:
    """dataset_info.json (split names, shard lengths), written last: it marks the directory done."""
    import tensorflow_datasets as tfds  # noqa: PLC0415

    out = version_dir(dst)
    template = tfds.core.naming.ShardedFileTemplate(
        data_dir=out, dataset_name=NAME, filetype_suffix="array_record",
        template="{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}")
    splits = []
    for split, bounds in shards.items():
        lengths = [stop - start for start, stop in bounds]
        size = sum(os.path.getsize(shard_path(dst, split, k, len(bounds))) for k in range(len(bounds)))
        splits.append(tfds.core.SplitInfo(name=split, shard_lengths=lengths, num_bytes=size,
                                          filename_template=template.replace(split=split)))
    builder.info.set_splits(tfds.core.SplitDict(splits))
    builder.info.write_to_directory(out)
