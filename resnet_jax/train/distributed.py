"""Multi-host setup and host-fed batches for data parallelism over every device of every process.

One process per host (or per GPU), all running the same command. `initialize` must run before
anything touches a JAX backend. Datasets that fit in memory (CIFAR, digits) are replicated on all
devices and need nothing more; a host-fed input pipeline has each process load only its own rows of
the global batch and assemble the global array with `global_batch_from_process_local`.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

# The same names JAX reads for the coordinator; ours add the process count and index.
ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID = (
    "JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
# Seconds without a heartbeat after which a process counts as lost (JAX's default: 100).
ENV_HEARTBEAT_TIMEOUT = "RESNET_JAX_HEARTBEAT_TIMEOUT"
LOST_PROCESS_EXIT = 4  # the exit code of a process whose job lost another process


class DistributedConfigError(ValueError):
    """Inconsistent multi-process flags or environment."""


def _lost_process(cause: str) -> None:
    """One line and a documented exit code for a process whose job lost another process (JAX
    would abort with a core dump, or wait in a collective that cannot finish). The other
    processes cannot be waited for, so nothing else is run: the workdir's lock goes with the
    process, and an unfinished checkpoint is removed by the rerun."""
    cause = " ".join(cause.split())
    cause = cause if len(cause) <= 200 else cause[:200] + "..."
    os.write(2, (f"resnet-jax train: error: {cause}: the run stopped; restart every process with the "
                 "same command to resume from the last checkpoint\n").encode())
    os._exit(LOST_PROCESS_EXIT)


# Set while the processes train together (`watching`): outside it, at the end of a run or on the
# way out of a failed one, a process that has left is not a lost one.
_watching = threading.Event()


@contextlib.contextmanager
def watching():
    """Around the training loop: a process lost meanwhile is reported by `_watch` (exit 4)."""
    _watching.set()
    try:
        yield
    finally:
        _watching.clear()


def _watch(num_processes: int, interval: float = 1.0) -> None:
    """Stop this process (`_lost_process`) once the coordination service counts another process
    as lost (no heartbeat for the heartbeat timeout) or is itself unreachable (process 0 lost).
    `get_live_nodes` returns only once every live process has asked too, so an answer may come
    after the training loop (or after another process left): only one given while watching counts."""
    from jax._src import distributed as jax_distributed  # noqa: PLC0415 (its client: no public API)

    client, everyone = jax_distributed.global_state.client, list(range(num_processes))
    while not _leaving.is_set():
        time.sleep(interval)
        if not _watching.is_set():
            continue
        try:
            live = client.get_live_nodes(everyone)
        except Exception as e:  # noqa: BLE001 (the coordinator is gone: any failure to ask)
            if _watching.is_set():
                _lost_process(f"process 0 (the coordinator) of this multi-process run was lost ({e})")
            return
        if (lost := sorted(set(everyone) - set(live))) and _watching.is_set():
            _lost_process(f"process{'es' if len(lost) > 1 else ''} {', '.join(map(str, lost))} of "
                          "this multi-process run stopped sending heartbeats (lost)")


_leaving = threading.Event()  # set by `leave`: the watch ends


def leave() -> None:
    """At the end of a finished (or preempted) run on every process: leave the job in order.

    With recoverable processes (`_join`) JAX's shutdown barrier no longer holds process 0 until
    the others have disconnected, so process 0 could stop the coordination service while another
    process is still saying goodbye to it, and that one aborts. So all meet at a barrier, the
    others disconnect, and process 0 shuts the service down (at exit) only after they have gone."""
    from jax._src import distributed as jax_distributed  # noqa: PLC0415 (its client: no public API)

    client = jax_distributed.global_state.client
    if client is None or jax.process_count() == 1:
        return
    _leaving.set()
    everyone = list(range(jax.process_count()))
    try:
        client.wait_at_barrier("resnet_jax-leave", _heartbeat_timeout[0] * 1000)
        if jax.process_index() != 0:
            jax.distributed.shutdown()
            return
        # Each call returns once every process still connected has asked too (none will now: the
        # watch has ended) or has left, or is counted lost by the heartbeat timeout.
        while set(client.get_live_nodes(everyone)) - {0}:
            time.sleep(0.1)
    except Exception:  # noqa: BLE001 (a process lost on the way out: nothing left to wait for)
        return


_heartbeat_timeout = [100]  # seconds, as given to JAX (its default)
# What a collective with a lost process fails with (CPU: gloo's TCP pairs; GPU: NCCL, gRPC).
_PEER_GONE = re.compile(r"closed by peer|Connection reset|Gloo|NCCL|UNAVAILABLE|Socket closed", re.I)


def wait_if_lost(error: BaseException) -> None:
    """Where `error` may be a collective failing because another process was lost, give `_watch`
    the heartbeat timeout to say so (it exits the process); return if it does not."""
    if jax.process_count() == 1 or not _PEER_GONE.search(f"{error!r} {error.__cause__!r}"):
        return
    with watching():
        time.sleep(_heartbeat_timeout[0] + 5)


def _join(coordinator: str | None = None, num_processes: int | None = None,
          process_id: int | None = None) -> None:
    """`jax.distributed.initialize`, with a lost process reported by `_watch` rather than by the
    coordination service's abort of every other process (JAX's recoverability mode)."""
    kwargs = {}
    if timeout := _env_int(ENV_HEARTBEAT_TIMEOUT):
        kwargs["heartbeat_timeout_seconds"] = _heartbeat_timeout[0] = timeout
    jax.config.update("jax_enable_recoverability", True)
    jax.distributed.initialize(coordinator, num_processes, process_id, **kwargs)
    threading.Thread(target=_watch, args=(jax.process_count(),), daemon=True,
                     name="resnet_jax-lost-process-watch").start()


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, auto: bool = False) -> bool:
    """Join a multi-process JAX job; returns whether one was joined.

    Explicit: `coordinator` ("host:port" of process 0), `num_processes` and `process_id` (flags, or
    the JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID environment variables).
    `auto=True` lets JAX detect them (Cloud TPU pods, Slurm, Open MPI, Kubernetes).

    A process lost later (killed, its host gone) stops the others with one line and exit code
    LOST_PROCESS_EXIT, within the heartbeat timeout (RESNET_JAX_HEARTBEAT_TIMEOUT seconds, JAX's
    default 100 if unset).
    """
    coordinator = coordinator or os.environ.get(ENV_COORDINATOR) or None
    num_processes = num_processes if num_processes is not None else _env_int(ENV_NUM_PROCESSES)
    process_id = process_id if process_id is not None else _env_int(ENV_PROCESS_ID)
    explicit = {"coordinator": coordinator, "num_processes": num_processes, "process_id": process_id}
    given = [k for k, v in explicit.items() if v is not None]
    if given and len(given) < 3:
        missing = sorted(set(explicit) - set(given))
        raise DistributedConfigError(f"multi-process training needs --coordinator, --num_processes and "
                                     f"--process_id together; missing {', '.join(missing)}")
    if given:
        if num_processes < 1 or not 0 <= process_id < num_processes:
            raise DistributedConfigError(f"process_id must be in [0, {num_processes}), got {process_id}")
        if num_processes == 1:
            return False
        _join(coordinator, num_processes, process_id)
        return True
    if auto:
        _join()
        return True
    return False


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise DistributedConfigError(f"{name} must be an integer, got {value!r}") from None


def global_batch_from_process_local(local: np.ndarray, mesh: Mesh, batch_axis: int = 0) -> jax.Array:
    """One global batch, sharded over the data axis, from each process's own rows (no copies
    between hosts): the multi-host counterpart of `jax.device_put(batch, batch_sharding)`.
    `batch_axis` 1 for a stack of batches (n, B, ...), as a scanned chunk takes them."""
    sharding = NamedSharding(mesh, P(*[None] * batch_axis, mesh.axis_names[0]))
    return jax.make_array_from_process_local_data(sharding, np.asarray(local))


def fetch(tree):
    """Host (numpy) values of a tree of arrays, also of arrays sharded over several processes (the
    seeds of a multi-seed run over hosts). Every process must call it at the same point: with
    several processes it all-gathers."""
    if jax.process_count() == 1:
        return jax.device_get(tree)

    def one(x):
        if isinstance(x, jax.Array) and not x.is_fully_replicated:
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return jax.device_get(x)

    return jax.tree.map(one, tree)
