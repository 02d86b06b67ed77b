"""The console progress bar of a training run (on stderr, beside absl's log lines)."""

from __future__ import annotations

import sys

from tqdm import tqdm


def progress_bar(total: int, initial: int, enabled: bool = True) -> tqdm:
    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", file=sys.stderr,
                dynamic_ncols=True, smoothing=0.1)
