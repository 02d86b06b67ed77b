"""Orbax's output when a checkpoint read or write fails, kept to our one-line report.

A failed save or restore makes orbax log tracebacks from its own threads, and the reads/writes it
abandons print 'Exception ignored' / 'Event loop is closed' tracebacks when collected, up to
interpreter exit. A user's error must stay one line (train/checkpoint.py reports it), so these are
dropped, and only these.
"""

from __future__ import annotations

import contextlib
import logging as std_logging
import os
import sys

from absl import logging


class _DropOrbaxErrors(std_logging.Filter):
    """Orbax's error logs, and asyncio's 'exception was never retrieved' for the futures of the
    writes that a failed save abandoned."""

    def filter(self, record: std_logging.LogRecord) -> bool:
        return not (record.levelno >= std_logging.ERROR and (
            f"{os.sep}orbax{os.sep}" in record.pathname
            or (record.name == "asyncio" and "never retrieved" in str(record.msg))))


_ORBAX_FILTER = _DropOrbaxErrors()
_quiet_depth = [0]  # nested users (a restore inside a run) share the one filter


def quiet_logs(on: bool) -> None:
    """Orbax logs a failed read or write with its traceback from its own threads; we report the
    failure in one line instead."""
    _quiet_depth[0] += 1 if on else -1
    for target in (logging.get_absl_logger(), std_logging.getLogger("asyncio")):
        (target.addFilter if _quiet_depth[0] > 0 else target.removeFilter)(_ORBAX_FILTER)


@contextlib.contextmanager
def quiet():
    """Around a restore that may fail: orbax's error logs and aborted reads stay silent."""
    quiet_logs(True)
    silence_aborted_io()
    try:
        yield
    finally:
        quiet_logs(False)


def silence_aborted_io() -> None:
    """After a failed read or write, tensorstore's other reads/writes of it are abandoned: their
    coroutines, collected later (up to interpreter exit), would each print an 'Exception ignored'
    traceback. Drop those, and only those (installed once, for the life of the process)."""
    if getattr(sys.unraisablehook, "_resnet_jax", False):
        return
    default = sys.unraisablehook

    def hook(unraisable):
        code = getattr(unraisable.object, "cr_code", None)
        frames, tb = [], unraisable.exc_traceback
        while tb is not None:
            frames.append(tb.tb_frame.f_code.co_filename)
            tb = tb.tb_next
        if code is not None:
            frames.append(code.co_filename)
        if not any(f"{os.sep}orbax{os.sep}" in f for f in frames) and not (
                isinstance(unraisable.exc_value, RuntimeError)
                and str(unraisable.exc_value) == "Event loop is closed"):
            default(unraisable)

    hook._resnet_jax = True
    sys.unraisablehook = hook

    # Tensorstore's completion callbacks of those abandoned operations find orbax's event loop
    # closed, and print that through sys.excepthook (from its own threads, never the main one's
    # uncaught exception, which has frames of ours).
    default_excepthook = sys.excepthook

    def excepthook(kind, value, tb):
        if not (kind is RuntimeError and str(value) == "Event loop is closed"):
            default_excepthook(kind, value, tb)

    sys.excepthook = excepthook


def gist(error: Exception, limit: int = 240) -> str:
    """The first line of an orbax/tensorstore error, without its multi-kilobyte JSON spec ("" if
    it has no text), at most `limit` characters."""
    text = str(error).split(" [tensorstore_spec", 1)[0].split(". See full TensorStore", 1)[0].strip()
    text = text.splitlines()[0] if text else ""
    return text if len(text) <= limit else text[:limit] + "..."
