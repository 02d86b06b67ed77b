"""The run folder: what `resnet-jax train` writes where, and the one way each file is written and read.

    <workdir>/
      config.json            the run's config (experiments/*.py plus flags), written at every start
      metrics.jsonl          one JSON record per log interval, appended (MetricsLog)
      events.out.tfevents.*  the same records and the config for TensorBoard (train/tensorboard_log.py)
      results.json           the final test error and what produced it, written at the end
      checkpoints/<step>/    orbax checkpoints (train/checkpoint.py); several seeds' stacked together
      corrupt_checkpoints/   checkpoints that failed to restore, moved aside by a resume
      .lock                  held by the process writing the run (train/workdir.py)
      input_mean.npy         imported released models only (`resnet-jax import`): the mean their
                             input convention subtracts, HxWx3 RGB in [0, 1] (else the training mean)
    with several seeds trained together (`--seeds N`), also
      seeds.json             their aggregate (throughput of all seeds, each seed's results)
      seed{s}/               each seed as if it had been run alone: config.json, metrics.jsonl,
                             events, results.json (its checkpoints are its slice of the run's)

Every other module asks this one for these names, and every JSON file the package writes goes
through `write_json` (whole or not at all). Nothing here needs JAX, so the analysis and the shell
scripts' helpers can read runs cheaply.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import logging
import os
import re

CONFIG = "config.json"
METRICS = "metrics.jsonl"
RESULTS = "results.json"
SEEDS = "seeds.json"
CHECKPOINTS = "checkpoints"
CORRUPT_CHECKPOINTS = "corrupt_checkpoints"
LOCK = ".lock"
EVENTS_PREFIX = "events.out.tfevents."  # TensorBoard finds event files by this part of their name
INPUT_MEAN = "input_mean.npy"


class RunIOError(RuntimeError):
    """A write to the workdir failed (a checkpoint, metrics.jsonl, config or results); one line."""


class MetricsError(ValueError):
    """A whole line of metrics.jsonl that is not a JSON record (damaged on disk); names file:line."""


def config_path(workdir: str) -> str:
    return os.path.join(workdir, CONFIG)


def metrics_path(workdir: str) -> str:
    return os.path.join(workdir, METRICS)


def results_path(workdir: str) -> str:
    return os.path.join(workdir, RESULTS)


def seeds_path(workdir: str) -> str:
    return os.path.join(workdir, SEEDS)


def lock_path(workdir: str) -> str:
    return os.path.join(workdir, LOCK)


def input_mean_path(workdir: str) -> str:
    return os.path.join(workdir, INPUT_MEAN)


def checkpoint_dir(workdir: str) -> str:
    return os.path.abspath(os.path.join(workdir, CHECKPOINTS))


def corrupt_checkpoint_dir(workdir: str) -> str:
    return os.path.join(workdir, CORRUPT_CHECKPOINTS)


def seed_dir(workdir: str, seed: int) -> str:
    """Where seed `seed` of a multi-seed run logs, as if it had been run alone."""
    return os.path.join(workdir, f"seed{seed}")


def event_files(workdir: str) -> list[str]:
    """The run's TensorBoard event files, oldest first (TensorBoard reads them in name order)."""
    return sorted(glob.glob(os.path.join(glob.escape(workdir), EVENTS_PREFIX + "*")))


def has_checkpoints(workdir: str) -> bool:
    return os.path.isdir(checkpoint_dir(workdir))


def os_cause(error: BaseException | None) -> str:
    """The OS reason behind a failed write, e.g. 'No space left on device': an OSError anywhere in
    the exception chain, or the `os_error_code` tensorstore puts in the status that orbax raises;
    otherwise the error's first line."""
    seen = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno:
            return os.strerror(seen.errno)
        if code := re.search(r"os_error_code='?(\d+)", str(seen)):
            return os.strerror(int(code.group(1)))
        seen = seen.__cause__ or seen.__context__
    if error is None:
        return "unknown cause"
    text = str(error).split(" [tensorstore_spec", 1)[0].strip()
    text = text.splitlines()[0] if text else type(error).__name__
    return text if len(text) <= 200 else text[:200] + "..."


def write_text(path: str, text: str) -> None:
    """Replace `path` with `text` whole or not at all: a reader, or a run killed mid-write, sees
    the old file or the new one, never half of one. RunIOError (naming the cause) if it cannot."""
    write_bytes(path, text.encode())


def write_bytes(path: str, data: bytes) -> None:
    """`write_text` for bytes (an exported weight file): whole or not at all."""
    tmp = path + ".tmp"  # same folder, so the rename is atomic
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise RunIOError(f"cannot write {path} ({os_cause(e)})") from None


def output_folder(path: str) -> None:
    """Make the folder of an output file a command will write (`--out NEW/fig.png`) and check it
    is writable, before the command's work: RunIOError (naming the cause) if it cannot be."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    except OSError as e:
        raise RunIOError(f"cannot write {path} ({os_cause(e)})") from None


def write_json(path: str, value) -> None:
    """The one JSON writer: `value` (dicts, lists, numbers; or text that already is JSON, such as
    `ConfigDict.to_json_best_effort()`) written atomically by `write_text`."""
    write_text(path, value if isinstance(value, str) else json.dumps(value, indent=2))


def read_json(path: str):
    """A JSON file's value; OSError if it cannot be read, ValueError if it is not JSON."""
    with open(path) as f:
        return json.load(f)


def read_results(workdir: str) -> dict | None:
    """The run's results.json, or None if it has not finished (or the file is unreadable)."""
    try:
        return read_json(results_path(workdir))
    except (OSError, ValueError):
        return None


class MetricsLog:
    """A JSON-lines file (`<workdir>/metrics.jsonl`: one record per log interval); resume-safe.

    Each record is one line appended by a single write(2) and fsynced, so a reader sees whole
    records; a process killed mid-write leaves at most a partial last line, which `read` ignores
    and `resume` removes. A failed write (disk full) is undone and raised as RunIOError.
    """

    def __init__(self, path: str, enabled: bool = True):
        self.path, self.enabled = path, enabled

    def read(self) -> list[dict]:
        """The records; MetricsError naming file:line for a whole line that is not one."""
        records = self._lines()
        for number, record in records:
            if record is None:
                raise MetricsError(f"{self.path}:{number} is not a JSON record: the file is damaged")
        return [record for _, record in records]

    def _lines(self) -> list[tuple[int, dict | None]]:
        """(line number, record or None if the line is not one) of each non-empty whole line."""
        if not os.path.exists(self.path):
            return []
        with open(self.path, "rb") as f:
            lines = f.read().split(b"\n")
        # The text after the last newline is a record still being written, or cut short by a kill:
        # not a record yet (a resumed run recomputes it).
        parsed = []
        for number, line in enumerate(lines[:-1], 1):
            if line.strip():
                try:
                    record = json.loads(line)
                except ValueError:
                    record = None
                parsed.append((number, record if isinstance(record, dict) and "step" in record
                               else None))
        return parsed

    def resume(self, step: int, last_record: int | None = None) -> float:
        """Drop records past `step` (written after the checkpoint we resume from); returns the wall
        time already spent, so the resumed run's clock continues. `last_record`: the step of the
        newest record written before that checkpoint (default `step`). A damaged line after that
        record (records are in step order) is dropped with the records past `step`, with a
        warning; one that may be a record the resumed run keeps raises MetricsError."""
        if not self.enabled:
            return 0.0
        last_record = step if last_record is None else last_record
        kept, latest = [], 0
        for number, record in self._lines():
            if record is None:
                if latest < last_record:  # (a fresh start, last_record 0, keeps nothing)
                    raise MetricsError(
                        f"{self.path}:{number} is not a JSON record and may hold the record of a "
                        f"step up to {step}, where the run resumes: restore the file, or remove "
                        "that line to resume without it")
                logging.warning("%s:%d is not a JSON record; dropped with the records past step %d, "
                                "which the resumed run writes again", self.path, number, step)
                continue
            latest = record["step"]
            if latest <= step:
                kept.append(record)
        write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
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
    """The run's metrics.jsonl records ([] if it has none yet)."""
    return MetricsLog(metrics_path(workdir)).read()


def has_metrics(workdir: str) -> bool:
    return os.path.exists(metrics_path(workdir))


def curves(workdir: str) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """The run's training curve [(step, train_error)] (each the mean over its log interval) and
    test curve [(step, test_error)], errors as fractions."""
    records = read_metrics(workdir)
    return ([(r["step"], r["train_error"]) for r in records],
            [(r["step"], r["test_error"]) for r in records if "test_error" in r])


def load_results(runs_dir: str) -> list[dict]:
    """Every results.json under `runs_dir` (a multi-seed run's seeds each have one), each with its
    folder under "workdir", in path order."""
    results = []
    for path in sorted(glob.glob(os.path.join(runs_dir, "**", RESULTS), recursive=True)):
        results.append({**read_json(path), "workdir": os.path.dirname(path)})
    return results


def multi_seed_parent(workdir: str, seed: int) -> str | None:
    """The run folder one level up if `workdir` is named as seed `seed`'s folder of a multi-seed
    run (`seed{seed}/`, beside the run's config.json and stacked checkpoints/); otherwise None.
    Whether that run trained `seed` is its config's to say (analysis/load.py)."""
    parent = os.path.dirname(os.path.abspath(workdir))
    if (os.path.abspath(workdir) == os.path.abspath(seed_dir(parent, seed))
            and has_checkpoints(parent) and os.path.isfile(config_path(parent))):
        return parent
    return None
