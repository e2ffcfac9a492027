"""A Dask client: a LocalCluster on this machine (`--workers N`) or an existing
scheduler (`--scheduler ADDRESS`), started from SLURM, Kubernetes or by hand (docs/batch.md)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any


def cores() -> int:
    """The cores this process may use (a SLURM or container CPU set, else the machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def worker_threads(workers: int, threads: int | None) -> int:
    """Torch threads per worker: the cores shared among the workers unless given, so
    workers x threads never oversubscribes the machine."""
    if workers < 1:
        raise ValueError(f"--workers must be at least 1; got {workers}")
    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be at least 1; got {threads}")
    return threads if threads is not None else max(1, cores() // workers)


@contextlib.contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None, threads: int = 1) -> Iterator[Any]:
    """A connected `distributed.Client`, closed (with its LocalCluster) on exit.

    A LocalCluster's workers run one task at a time (one Dask thread each) and give
    torch `threads` threads: the model is the unit of work, and two tasks sharing a
    process would contend for its cores and for the GIL in post-processing."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise ValueError(f"cannot reach the Dask scheduler at {scheduler} ({exc}); check the address, "
                             "or run without --scheduler") from None
        with client:
            yield client
        return
    with contextlib.ExitStack() as stack:
        # Without Dask's MALLOC_TRIM_THRESHOLD_, which slows torch in the workers (tasks._undo_malloc_trim).
        stack.enter_context(dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}))
        cluster = stack.enter_context(LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
            silence_logs=logging.ERROR, env={"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}))
        yield stack.enter_context(Client(cluster))
