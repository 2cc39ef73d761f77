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
