"""TensorBoard's view of a run: event files beside metrics.jsonl, written without TensorFlow.

metrics.jsonl (runs.MetricsLog) is the record of a run; the event files show the same records to
`tensorboard --logdir`: every number of every record as a scalar under the record's own name
(loss, train_error, test_error, test_loss, lr, images_per_sec), at the record's step, and the
run's config.json as text. A run of several seeds writes one set per seed folder, so TensorBoard
lists them as runs side by side (as it does the table scripts' one folder per net).

A resumed run starts a new event file holding the records metrics.jsonl kept, then deletes the
older files: each step is shown once, with the values metrics.jsonl has, whatever the previous
process wrote after its last checkpoint. (TensorBoard's own remedy, a purge event, is not honoured
by every reader of event files.)

Nothing here can stop a run: a write that fails (or tensorboardX not installed) is one warning,
after which the run goes on without events; metrics.jsonl still has every record.
"""

from __future__ import annotations

import os
import socket
import time

from absl import logging

from resnet_jax import runs

try:  # pure Python; absent from some preinstalled accelerator images, where runs go on without it
    from tensorboardX import RecordWriter
    from tensorboardX import summary as tbx_summary
    from tensorboardX.proto import event_pb2
    from tensorboardX.proto.summary_pb2 import Summary
except ImportError:  # pragma: no cover (installed with the package)
    RecordWriter = None

CONFIG_TAG = "config"  # the text plugin stores it as "config/text_summary"
_NOT_SCALARS = ("step", "wall_time")  # the event's step, and TensorBoard's own clock


def scalars(record: dict) -> dict[str, float]:
    """The numbers of a metrics.jsonl record that TensorBoard plots, by their names there."""
    return {k: float(v) for k, v in record.items()
            if k not in _NOT_SCALARS and isinstance(v, (int, float)) and not isinstance(v, bool)}


class TensorBoardLog:
    """The event files of one run folder, mirroring its MetricsLog. Disabled (writes nothing) in
    processes other than 0, and after the first failed write."""

    def __init__(self, logdir: str, enabled: bool = True):
        self.logdir, self.enabled, self._writer = logdir, enabled, None

    def _failed(self, what: str, error: BaseException | None) -> None:
        logging.warning("TensorBoard: %s in %s%s; the run goes on without TensorBoard events "
                        "(metrics.jsonl has every record)", what, self.logdir,
                        f" ({runs.os_cause(error)})" if error else "")
        self.enabled = False
        self.close()

    def start(self, records: list[dict], config_json: str, step: int) -> None:
        """A new event file with `records` (what metrics.jsonl holds after `MetricsLog.resume(step)`)
        and the config, then no other event file in the folder."""
        if not self.enabled:
            return
        if RecordWriter is None:
            self._failed("tensorboardX is not installed (pip install tensorboardX)", None)
            return
        now = time.time()
        # TensorBoard's naming: it reads a folder's files in name order, hence the time first.
        path = os.path.join(self.logdir, f"{runs.EVENTS_PREFIX}{now:.0f}.{socket.gethostname()}"
                                         f".{os.getpid()}")
        try:
            self._writer = RecordWriter(path)
            self._event(event_pb2.Event(wall_time=now, file_version="brain.Event:2"))
            text = tbx_summary.text(CONFIG_TAG, "```json\n" + config_json + "\n```")
            self._event(event_pb2.Event(wall_time=now, step=step, summary=text))
            # Earlier records at the times they were logged, as nearly as the run's clock says.
            clock = records[-1]["wall_time"] if records else 0.0
            for record in records:
                self._write(record, now - (clock - record["wall_time"]))
            self._writer.flush()
            for old in runs.event_files(self.logdir):
                if os.path.basename(old) != os.path.basename(path):
                    os.remove(old)
        except OSError as e:
            self._failed("cannot write the event file", e)

    def _event(self, event) -> None:
        self._writer.write(event.SerializeToString())

    def _write(self, record: dict, wall_time: float) -> None:
        values = [tbx_summary.scalar(tag, value).value[0] for tag, value in scalars(record).items()]
        self._event(event_pb2.Event(wall_time=wall_time, step=record["step"],
                                    summary=Summary(value=values)))

    def append(self, record: dict) -> None:
        """One metrics.jsonl record, flushed so a running TensorBoard shows it."""
        if not (self.enabled and self._writer):
            return
        try:
            self._write(record, time.time())
            self._writer.flush()
        except OSError as e:
            self._failed(f"cannot write step {record['step']}", e)

    def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except OSError as e:
                if self.enabled:
                    self._failed("cannot close the event file", e)
