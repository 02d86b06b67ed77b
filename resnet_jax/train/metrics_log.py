"""Per-interval metrics as JSON lines (appended and flushed), and the console progress bar."""

from __future__ import annotations

import json
import os
import sys

from tqdm import tqdm


class MetricsLog:
    """`<workdir>/metrics.jsonl`, one record per log interval; resume-safe (no duplicate steps)."""

    def __init__(self, path: str, enabled: bool = True):
        self.path, self.enabled = path, enabled

    def read(self) -> list[dict]:
        if not os.path.exists(self.path):
            return []
        with open(self.path) as f:
            lines = [line for line in f if line.strip()]
        # A run killed mid-write can leave a partial last line; that record is recomputed on resume.
        if lines and not lines[-1].endswith("\n"):
            lines.pop()
        return [json.loads(line) for line in lines]

    def resume(self, step: int) -> float:
        """Drop records past `step` (written after the checkpoint we resume from); returns the wall
        time already spent, so the resumed run's clock continues."""
        if not self.enabled:
            return 0.0
        kept = [r for r in self.read() if r["step"] <= step]
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in kept)
        os.replace(tmp, self.path)
        return kept[-1]["wall_time"] if kept else 0.0

    def append(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())


def read_metrics(workdir: str) -> list[dict]:
    return MetricsLog(os.path.join(workdir, "metrics.jsonl")).read()


def progress_bar(total: int, initial: int, enabled: bool = True) -> tqdm:
    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", file=sys.stderr,
                dynamic_ncols=True, smoothing=0.1)
