"""Where a batch's assets run: one at a time in this process, several at once each in a process of its own."""

from __future__ import annotations

import os

from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner


def task_runner(store: str, max_concurrency: int) -> TaskRunner:
    """One asset at a time in this process; several at once each in a process of its own.

    Not threads: loading a model (diffusers / transformers `from_pretrained`) patches torch's module
    constructors process-wide for a moment, and a model built in another thread then comes out empty.
    """
    if max_concurrency == 1:
        return ThreadPoolTaskRunner(max_workers=1)
    if store.startswith("memory://"):
        raise ValueError("a memory:// store lives in one process: run it with max_concurrency=1")
    threads = max(1, (os.cpu_count() or 1) // max_concurrency)
    return ProcessPoolTaskRunner(max_workers=max_concurrency, initializer=share_cores, initargs=(threads,))


def share_cores(threads: int) -> None:
    """In each worker process: its share of the cores, so that concurrent assets do not oversubscribe them;
    Ctrl-C left to the command that owns the worker (it stops its workers itself: `flows.stopping`); and an
    exit without the interpreter's teardown, which the end of the pool would wait for (`flows.exiting`)."""
    from flows import exiting

    # before torch registers its exit handlers, so that they run first; exit code 0: the pool reads none (a worker
    # that crashed has printed its traceback)
    exiting.install(code=0)
    import torch

    from flows.stopping import ignore_in_worker

    ignore_in_worker()

    os.environ["OMP_NUM_THREADS"] = str(threads)  # OpenMP libraries loaded later (reconstruction, metrics)
    torch.set_num_threads(threads)
