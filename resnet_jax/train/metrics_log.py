"""Per-interval metrics as JSON lines (appended and flushed), and the console progress bar."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys

from tqdm import tqdm

from resnet_jax.train.workdir import RunIOError, os_cause


class MetricsLog:
    """`<workdir>/metrics.jsonl`, one record per log interval; resume-safe (no duplicate steps).

    Each record is one line appended by a single write(2) and fsynced, so a reader sees whole
    records; a process killed mid-write leaves at most a partial last line, which `read` ignores
    and `resume` removes. A failed write (disk full) is undone and raised as RunIOError.
    """

    def __init__(self, path: str, enabled: bool = True):
        self.path, self.enabled = path, enabled

    def read(self) -> list[dict]:
        if not os.path.exists(self.path):
            return []
        with open(self.path, "rb") as f:
            lines = f.read().split(b"\n")
        # The text after the last newline is a record still being written, or cut short by a kill:
        # not a record yet (a resumed run recomputes it).
        return [json.loads(line) for line in lines[:-1] if line.strip()]

    def resume(self, step: int) -> float:
        """Drop records past `step` (written after the checkpoint we resume from); returns the wall
        time already spent, so the resumed run's clock continues."""
        if not self.enabled:
            return 0.0
        kept = [r for r in self.read() if r["step"] <= step]
        tmp = self.path + ".tmp"
        try:  # a new file swapped in whole: a kill leaves the old one or the new one
            with open(tmp, "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in kept)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise RunIOError(f"cannot write {self.path} ({os_cause(e)})") from None
        return kept[-1]["wall_time"] if kept else 0.0

    def append(self, record: dict) -> None:
        if not self.enabled:
            return
        line = (json.dumps(record) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            size = os.fstat(fd).st_size
            try:
                if os.write(fd, line) != len(line):  # a full disk can take part of the line
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                os.fsync(fd)
            except OSError as e:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)  # no partial record stays behind
                raise RunIOError(f"cannot write {self.path} ({os_cause(e)})") from None
        finally:
            os.close(fd)


def read_metrics(workdir: str) -> list[dict]:
    return MetricsLog(os.path.join(workdir, "metrics.jsonl")).read()


def progress_bar(total: int, initial: int, enabled: bool = True) -> tqdm:
    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", file=sys.stderr,
                dynamic_ncols=True, smoothing=0.1)
