"""Progress of long loops (training and sampling steps) for people and for logs.

On a terminal: a progress bar on stderr. Everywhere (a Prefect worker's log file, a batch redirected to a
file): a line every `DREAMEDIT3D_PROGRESS_EVERY_S` seconds (10 by default), on the first step and on the
last, with the step, the loss where the loop has one, the time so far and the time left; the same line goes to
the Prefect run's log when the loop runs inside a flow run. stdout stays for --json.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from tqdm import tqdm

from dreamedit3d_core.environment import setting


def every_seconds() -> float:
    return setting("DREAMEDIT3D_PROGRESS_EVERY_S")


def duration(seconds: float) -> str:
    """12 s, 3m05s, 1h02m."""
    seconds = max(int(round(seconds)), 0)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


ESTIMATE_AFTER_STEPS = 3  # steps timed before the time left is said


def progress_line(
    description: str, step: int, total: int, elapsed: float, *extra: object, step_seconds: float | None = None
) -> str:
    """`invert: step 40/200 (20%), loss 0.0812, 12 s so far, about 48 s left`. `step_seconds`: the measured
    time of one step; None while it is still being measured ("estimating")."""
    parts = [f"{description}: step {step}/{total} ({100 * step // max(total, 1)}%)"]
    for value in extra:
        if isinstance(value, Mapping):
            parts += [f"{name} {number:.4g}" for name, number in value.items() if isinstance(number, (int, float))]
        elif isinstance(value, float):
            parts.append(f"loss {value:.4g}")
    parts.append(f"{duration(elapsed)} so far")
    if 0 < step < total:
        parts.append("estimating the time left" if step_seconds is None else f"about {duration(step_seconds * (total - step))} left")
    return ", ".join(parts)


def _run_logger() -> logging.Logger | logging.LoggerAdapter | None:
    """The Prefect run's logger inside a flow run (a task run of one included), else None: a task run without a
    flow run (a stage run on its own) has no run log to send lines to."""
    try:
        from prefect.context import FlowRunContext
        from prefect.exceptions import MissingContextError
        from prefect.logging import get_run_logger
    except ImportError:
        return None
    if FlowRunContext.get() is None:
        return None
    try:
        return get_run_logger()
    except MissingContextError:
        return None


@contextmanager
def progress(description: str, every_s: float | None = None) -> Iterator[Callable[..., None]]:
    """Yields `on_step(step, total, *extra)`, the callback the core loops call after each step (`extra`: a
    float loss or a mapping of named losses)."""
    every_s = every_seconds() if every_s is None else every_s
    terminal = sys.stderr.isatty()
    logger = _run_logger()
    started = time.perf_counter()
    last_line = [-float("inf")]
    first: list[tuple[int, float]] = []  # the first step seen and when: the time left counts step time only
    bar: tqdm | None = None

    def on_step(step: int, total: int, *extra: object) -> None:
        nonlocal bar
        if terminal:
            if bar is None:
                bar = tqdm(total=total, desc=description, file=sys.stderr, leave=False, dynamic_ncols=True)
            bar.update(step - bar.n)
        now = time.perf_counter()
        if not first:  # what came before the first step (loading, prior samples, a resumed run's steps) is not step time
            first.append((step, now))
        timed = step - first[0][0]
        step_seconds = (now - first[0][1]) / timed if timed >= ESTIMATE_AFTER_STEPS else None
        if step == 1 or step == total or now - last_line[0] >= every_s:
            last_line[0] = now
            line = progress_line(description, step, total, now - started, *extra, step_seconds=step_seconds)
            if logger is not None:
                logger.info(line)
            if not terminal:
                # write, not print: a flow with log_prints=True turns print() into log records
                sys.stderr.write(line + "\n")
                sys.stderr.flush()

    try:
        yield on_step
    finally:
        if bar is not None:
            bar.close()
