"""Ctrl-C, remembered for the whole process, so that an interrupted run stops instead of carrying on.

The CLI's SIGINT handler calls `request()` and raises KeyboardInterrupt in the main thread. That exception can
be lost on its way: caught inside Prefect's engine, or never raised where a child process (Blender) got the
signal first and the stage saw only a failed render, which it would retry. So every stage boundary asks
`check()`, and no stage is retried once an interrupt was requested.
"""

from __future__ import annotations

import threading

_requested = threading.Event()


def request() -> None:
    _requested.set()


def requested() -> bool:
    return _requested.is_set()


def check() -> None:
    """Raise KeyboardInterrupt when Ctrl-C was pressed: called before and after every stage."""
    if _requested.is_set():
        raise KeyboardInterrupt
