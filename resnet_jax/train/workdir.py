"""The run directory's guard rails: one run per workdir, and write failures as one-line errors.

- One run per workdir: the writing process holds an exclusive `flock` on `<workdir>/.lock` for the
  run's life (the kernel releases it when the process dies, however it dies), so a second run on the
  same workdir stops before writing anything instead of interleaving records and checkpoints.
- A failed write (disk full, I/O error, permissions) raises `runs.RunIOError`, whose message names
  the OS cause; the loop adds the last good checkpoint, and the CLI exits 3.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
from typing import Iterator

from absl import logging

from resnet_jax import runs


class WorkdirBusy(RuntimeError):
    """Another live process holds the workdir's lock."""


@contextlib.contextmanager
def exclusive(workdir: str) -> Iterator[None]:
    """Hold `<workdir>/.lock` (created if needed, with the pid and host of its holder) until exit;
    raises WorkdirBusy naming the holder if another process has it. The lock file stays behind:
    removing it would let two runs lock two different files of the same name."""
    os.makedirs(workdir, exist_ok=True)
    path = runs.lock_path(workdir)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").split()
            pid, host = (holder + ["?", "?"])[:2]  # "?": the holder has not written them yet
            raise WorkdirBusy(f"workdir {workdir} is in use by pid {pid} on host {host}: let that "
                              "run finish (or stop it), or use another workdir") from None
        except OSError as e:
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
            # Some network and FUSE filesystems have no locks: run unguarded rather than not at all.
            logging.warning("cannot lock %s (%s): make sure no other run uses this workdir",
                            path, e.strerror)
        else:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
