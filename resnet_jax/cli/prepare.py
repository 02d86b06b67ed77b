"""`resnet-jax prepare imagenet SRC DST`: pack ImageNet once into ArrayRecord shards (a tfds
`imagenet2012` directory), from the folder tree or the official tars in SRC, without TensorFlow.

Training reads SRC directly too (`--config.data_dir=SRC`); packing pays off where SRC is on slow or
networked storage, or when several runs share it. Killed, it resumes at the first unfinished shard;
at the end it checks the images per class. Exit status: 0 done, 2 bad input (a missing or
incomplete SRC, a DST holding another preparation), 3 a write failed (disk full, permissions).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import sys

DATASETS = ("imagenet",)
INDEX_SUFFIX = ".resnet_jax_index.npz"  # imagenet_files' index cached beside the data


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog=argv[0], description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=DATASETS)
    parser.add_argument("src", help="folder holding train/ + val/ folders or ILSVRC2012_img_train.tar + "
                                    "ILSVRC2012_img_val.tar")
    parser.add_argument("dst", help="tfds data_dir to write (then train with --config.data_dir=DST)")
    parser.add_argument("--images_per_shard", type=int, default=None,
                        help="images per ArrayRecord shard (default 1250, about 140 MB)")
    parser.add_argument("--no_progress", action="store_true",
                        help="no progress report (default: a bar in a terminal, else a line per 5%%)")
    args = parser.parse_args(argv[1:])
    if args.images_per_shard is not None and args.images_per_shard <= 0:
        parser.exit(2, f"{argv[0]}: error: --images_per_shard must be positive\n")

    from resnet_jax.data import DatasetError, imagenet, imagenet_files, imagenet_pack  # noqa: PLC0415

    src = os.path.expanduser(args.src)
    # Reading SRC caches its index beside the data (imagenet_files); a preparation that fails
    # leaves SRC as it found it.
    indexes_before = set(glob.glob(os.path.join(glob.escape(src), "*" + INDEX_SUFFIX)))

    def fail(message: str, code: int) -> None:
        for path in set(glob.glob(os.path.join(glob.escape(src), "*" + INDEX_SUFFIX))) - indexes_before:
            with contextlib.suppress(OSError):
                os.remove(path)
        print(f"{argv[0]}: error: {message}", file=sys.stderr)
        sys.exit(code)

    missing = [s for s in imagenet_pack.SPLITS if not imagenet_files.layout(src, s)]
    if missing:
        fail(f"{args.src}: no {' and no '.join(f'{imagenet_files.FOLDERS[s]}/ folder or '
                                               f'{imagenet_files.TARS[s]}' for s in missing)}", 2)
    if os.path.isdir(os.path.join(src, imagenet.NAME)) and not imagenet_pack.unfinished(src):
        fail(f"{args.src} is already a tfds data_dir: train from it as it is", 2)
    try:
        sources = {s: imagenet_files.open_split(s, src, imagenet.NUM_CLASSES) for s in imagenet_pack.SPLITS}
        kwargs = {} if args.images_per_shard is None else {"images_per_shard": args.images_per_shard}
        progress = None if args.no_progress else "bar" if sys.stderr.isatty() else "lines"
        counts = imagenet_pack.prepare(src, args.dst, sources, progress=progress, **kwargs)
    except DatasetError as e:
        fail(str(e), 2)
    except OSError as e:
        fail(f"writing {args.dst}: {e.strerror or e}{f' ({e.filename})' if e.filename else ''}", 3)
    print(f"{imagenet.NAME} in {imagenet_pack.version_dir(args.dst)}: "
          + ", ".join(f"{n:,} {s} images" for s, n in counts.items())
          + f"; train with --config.data_dir={args.dst}")
