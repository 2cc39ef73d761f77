"""Progress bars on stderr for long loops (sampling steps, training steps); stdout stays for --json."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tqdm import tqdm


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[..., None]]:
    """Yields `on_step(step, total, *extra)`, the callback the core loops call after each step."""
    bar: tqdm | None = None

    def on_step(step: int, total: int, *extra: object) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=description, file=sys.stderr, leave=False, dynamic_ncols=True,
                       disable=not sys.stderr.isatty())
        bar.update(step - bar.n)

    try:
        yield on_step
    finally:
        if bar is not None:
            bar.close()


@contextmanager
def progress_lines(description: str, every: float = 0.05) -> Iterator[Callable[..., None]]:
    """Like `progress_bar`, and for long stages whose stderr is a log file rather than a terminal: a line
    `description: done/total (rate/s)` every `every` of the total (and at the end) when stderr is not a tty."""
    import time

    started, reported = time.perf_counter(), [0]
    with progress_bar(description) as bar:

        def on_step(step: int, total: int, *extra: object) -> None:
            bar(step, total, *extra)
            if sys.stderr.isatty():
                return
            if step == total or step - reported[0] >= max(1, int(every * total)):
                reported[0] = step
                rate = step / max(time.perf_counter() - started, 1e-9)
                detail = "".join(f" {x:.4f}" if isinstance(x, float) else f" {x}" for x in extra if x is not None)
                # write, not print: a flow with log_prints=True turns print() into log records
                sys.stderr.write(f"{description}: {step}/{total} ({rate:.1f}/s){detail}\n")
                sys.stderr.flush()

        yield on_step
