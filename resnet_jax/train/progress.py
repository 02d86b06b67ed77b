"""A training run's progress on stderr: a bar in a terminal, one line per log interval elsewhere.

In a terminal, a tqdm bar redrawn in place. Where stderr is not a terminal (CI, batch schedulers,
`nohup`, `2>log`), or with `--config.progress=false`, redraws would fill the log with carriage
returns, so each log interval becomes one line, beside absl's own:

    step 300/6400  loss 1.2345  train_err 41.23%  test_err 40.00%  lr 0.1  1234 img/s  ETA 12m34s

The first call of a run (or of a resumed run) compiles the training step, which can take longer
than many intervals of training; it is reported once, on its own line, and left out of the ETA
(the loop leaves it out of img/s), so neither extrapolates the compile time over the whole run.
The first evaluation compiles too: the interval that holds it shows no ETA, and the ETA counts from
its end. Bar and lines show the same numbers: errors in percent, the same ETA.
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


def _metrics(records: list[dict]) -> str:
    """Loss and errors (in percent), one seed's or, said so, the mean over several seeds' records:
    the same text in the bar and in the lines."""
    mean = lambda k: float(np.mean([r[k] for r in records]))  # noqa: E731
    parts = [f"loss {mean('loss'):.4f}"]
    parts += [f"{short} {100 * mean(key):.2f}%" for key, short in _SHOWN[1:] if key in records[0]]
    prefix = f"mean of {len(records)} seeds: " if len(records) > 1 else ""
    return prefix + "  ".join(parts)


class Progress:
    """`compiled()` when the run's first call has returned, `update(step, records)` at every log
    interval (the records of one or several seeds), `close()` at the end. Shows nothing if not
    `enabled` (processes other than 0); `bar=False` (config.run.progress) gives the lines in a terminal."""

    def __init__(self, total: int, initial: int, enabled: bool = True, bar: bool = True, stream=None):
        self._stream = stream or sys.stderr
        self.total, self.initial, self.enabled = total, initial, enabled
        self._bar = None
        if enabled and bar and self._stream.isatty():
            # tqdm's own rate and ETA would count the compiling: the postfix carries ours
            self._bar = tqdm(total=total, initial=initial, unit="step", file=self._stream, dynamic_ncols=True,
                             bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]")
        self._started = time.perf_counter()
        self._since = None  # (step, time) from which the ETA extrapolates: after the compiles
        self._evaluated = False

    def compiled(self) -> float:
        """Marks the return of the run's first call (jit compiles on it; its steps run after it
        returns, dispatch being asynchronous) and says once how long it took. Returns that time,
        from which the loop measures img/s."""
        now = time.perf_counter()
        self._since = (self.initial, now)
        message = (f"compiled in {_duration(now - self._started)} (the first call; not counted in "
                   "img/s or ETA)")
        if self._bar is not None:
            self._bar.write(message, file=self._stream)
        elif self.enabled:
            logging.info("%s", message)
        return now

    def _eta(self, step: int, now: float) -> str:
        if self._since is None or not self._since[0] < step < self.total:
            return ""
        rate = (now - self._since[1]) / (step - self._since[0])  # seconds per step, evals included
        return f"ETA {_duration(rate * (self.total - step))}"

    def line(self, step: int, records: list[dict], eta: str = "") -> str:
        """The non-terminal form of the progress at `step`."""
        parts = [f"step {step}/{self.total}", _metrics(records), f"lr {records[0]['lr']:.4g}",
                 f"{records[0]['images_per_sec']:.0f} img/s" + (" per seed" if len(records) > 1 else "")]
        return "  ".join(parts + [eta] if eta else parts)

    def update(self, step: int, records: list[dict]) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        first_evaluation = "test_error" in records[0] and not self._evaluated
        eta = "" if first_evaluation else self._eta(step, now)  # that interval compiled the evaluation
        if self._bar is not None:
            self._bar.set_postfix_str("  ".join(filter(None, [_metrics(records), eta])), refresh=False)
            self._bar.update(step - self._bar.n)
        else:
            logging.info("%s", self.line(step, records, eta))
        if first_evaluation or self._since is None:  # (no compiled(): count from the first interval's end)
            self._since = (step, time.perf_counter())
        self._evaluated |= first_evaluation

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
