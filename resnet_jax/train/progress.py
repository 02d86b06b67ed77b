"""A training run's progress on stderr: a bar in a terminal, one line per log interval elsewhere.

In a terminal, a tqdm bar redrawn in place. Where stderr is not a terminal (CI, batch schedulers,
`nohup`, `2>log`), redraws would fill the log with carriage returns, so each log interval becomes
one line, beside absl's own:

    step 300/6400  loss 1.2345  train_err 41.23%  test_err 40.00%  lr 0.1  1234 img/s  ETA 12m34s
"""

from __future__ import annotations

import sys
import time

import numpy as np
from absl import logging
from tqdm import tqdm

_SHOWN = (("loss", "loss"), ("train_error", "train_err"), ("test_error", "test_err"))


def _duration(seconds: float) -> str:
    minutes, s = divmod(int(round(seconds)), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}h{m:02d}m" if hours else f"{m}m{s:02d}s" if m else f"{s}s"


class Progress:
    """`update(step, records)` at every log interval (the records of one or several seeds);
    `close()` at the end. Shows nothing if not `enabled` (other processes, config.run.progress)."""

    def __init__(self, total: int, initial: int, enabled: bool = True, stream=None):
        stream = stream or sys.stderr
        self.total, self.enabled = total, enabled
        self._bar = None
        if enabled and stream.isatty():
            self._bar = tqdm(total=total, initial=initial, unit="step", file=stream, dynamic_ncols=True,
                             smoothing=0.1)
        self._since = None  # (step, time) of the first update: the first interval pays for compiling

    def line(self, step: int, records: list[dict], now: float) -> str:
        """The non-terminal form of the progress at `step`: means over the seeds' `records`."""
        mean = lambda k: float(np.mean([r[k] for r in records]))  # noqa: E731
        parts = [f"step {step}/{self.total}", f"loss {mean('loss'):.4f}"]
        parts += [f"{short} {100 * mean(key):.2f}%" for key, short in _SHOWN[1:] if key in records[0]]
        parts.append(f"lr {records[0]['lr']:.4g}")
        parts.append(f"{records[0]['images_per_sec']:.0f} img/s"
                     + (f" per seed ({len(records)} seeds)" if len(records) > 1 else ""))
        if self._since is not None and self._since[0] < step < self.total:
            rate = (now - self._since[1]) / (step - self._since[0])  # seconds per step, evals included
            parts.append(f"ETA {_duration(rate * (self.total - step))}")
        return "  ".join(parts)

    def update(self, step: int, records: list[dict]) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if self._bar is not None:
            self._bar.set_postfix({("mean_" if len(records) > 1 else "") + key:  # over the seeds
                                   f"{np.mean([r[key] for r in records]):.4f}"
                                   for key, _ in _SHOWN if key in records[0]}, refresh=False)
            self._bar.update(step - self._bar.n)
        else:
            logging.info("%s", self.line(step, records, now))
        if self._since is None:
            self._since = (step, now)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
