"""The run directory's guard rails: a workdir proved writable before any work, one run per
workdir, and write failures as one-line errors.

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
import tempfile
from typing import Iterator

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from resnet_jax import runs
from resnet_jax.configs import ConfigError
from resnet_jax.data import DatasetError


class WorkdirBusy(RuntimeError):
    """Another live process holds the workdir's lock."""


@contextlib.contextmanager
def exclusive(workdir: str, untouched_on: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Hold `<workdir>/.lock` (created if needed, with the pid and host of its holder) until exit;
    raises WorkdirBusy naming the holder, writing nothing, if another process has it. The lock file
    stays behind, except where the body raises one of `untouched_on` (a run refused before writing
    anything): then the lock file, and the workdir if this made it, are left as they were."""
    made = not os.path.isdir(workdir)
    os.makedirs(workdir, exist_ok=True)
    path = runs.lock_path(workdir)
    fd, created, before, locked = _open_locked(path)
    try:
        if locked:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        try:
            yield
        except untouched_on:
            if created:  # removed while held: a run waiting for it then locks a new file instead
                os.remove(path)
                if made:
                    with contextlib.suppress(OSError):
                        os.rmdir(workdir)  # (only if nothing else is in it)
            elif locked:
                os.ftruncate(fd, 0)
                os.pwrite(fd, before, 0)
            raise
    finally:
        os.close(fd)  # releases the lock


def _open_locked(path: str) -> tuple[int, bool, bytes, bool]:
    """(descriptor of `path`, whether this created it, its text before, whether it holds the
    lock: False where the filesystem has no locks). A lock file that its holder removed before we
    locked it is not the lock any more: then the new file is locked instead."""
    while True:
        created = True
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            created = False
            try:
                fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:  # removed in between: try again
                continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").split()
            os.close(fd)
            pid, host = (holder + ["?", "?"])[:2]  # "?": the holder has not written them yet
            raise WorkdirBusy(f"workdir {os.path.dirname(path)} is in use by pid {pid} on host {host}: "
                              "let that run finish (or stop it), or use another workdir") from None
        except OSError as e:
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                os.close(fd)
                raise
            # Some network and FUSE filesystems have no locks: run unguarded rather than not at all.
            logging.warning("cannot lock %s (%s): make sure no other run uses this workdir",
                            path, e.strerror)
            return fd, created, b"", False
        if os.fstat(fd).st_nlink == 0:  # its holder removed it before we locked it
            os.close(fd)
            continue
        return fd, created, os.pread(fd, 4096, 0), True


# Bad input found before the run writes anything (the config, a checkpoint of another run, the
# data, a damaged metrics.jsonl): exit 2, and the run folder stays as it was.
NOTHING_WRITTEN = (ConfigError, DatasetError)


def check_workdir(workdir: str) -> None:
    """Prove `workdir` (or, if it does not exist yet, its nearest existing parent) a writable
    directory, without creating anything, so a bad path fails before any work or output."""
    probe = os.path.abspath(workdir)
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):  # (the path given, or a parent of it, is a file)
        raise ConfigError(f"workdir {workdir!r} is not a directory ({probe} is a file)")
    try:
        with tempfile.TemporaryFile(dir=probe):  # unique name: all processes probe at once
            pass
        if os.path.isdir(workdir):
            os.listdir(workdir)
    except OSError as e:
        raise ConfigError(f"workdir {workdir!r} is not a writable directory "
                          f"({e.strerror}: {probe})") from None


@contextlib.contextmanager
def lock_workdir(workdir: str):
    """One run per workdir: process 0, the one that writes, holds `workdir`'s lock for the run's
    life (the other processes of a multi-process run share its workdir); all processes learn
    whether it got it, and all raise ConfigError, before anything is written, if not."""
    busy = None
    with contextlib.ExitStack() as stack:
        if jax.process_index() == 0:
            try:  # a run refused before it wrote anything leaves the lock (and workdir) as it was
                stack.enter_context(exclusive(workdir, untouched_on=NOTHING_WRITTEN))
            except WorkdirBusy as e:
                busy = str(e)
        if jax.process_count() > 1:  # a collective: every process learns process 0's answer
            locked = multihost_utils.broadcast_one_to_all(np.int32(busy is None))
            if not locked and busy is None:
                busy = f"workdir {workdir} is in use by another run (see process 0's error)"
        if busy:
            raise ConfigError(busy)
        yield
