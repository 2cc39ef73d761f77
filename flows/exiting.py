"""How the command and a batch's worker processes end: without the interpreter's teardown.

A process that has imported torch and diffusers spends about 1.7 s (2-core CPU) after its last exit handler
tearing the interpreter down (module dictionaries, garbage collection) with nothing left to save: the command
waits for it, and so does the end of a batch's process pool, once per worker. `install()` registers `_end`
first among the process's exit handlers; atexit runs the later-registered first, so by then the non-daemon
threads have been joined and every other handler has run (Prefect's log and event senders drain there). `_end`
does what the teardown would still have done for us: it flushes and closes the logging handlers (their own
handler was registered before this one), flushes the standard streams, and ends the process with its exit code.
Files are written through context managers (the store's writers commit or roll back inside them), so no
buffered data waits for the teardown.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys

_code = 1  # what the interpreter exits with when an exception escapes the command


def install(code: int = 1) -> None:
    """End this process without the teardown, with exit code `code` unless `finish` says otherwise."""
    global _code
    _code = code
    atexit.register(_end)


def finish(stop: BaseException | None = None) -> None:
    """The exit code the interpreter would give: 0 when the command returned; a SystemExit's code (None: 0, an
    integer: itself, a message: 1); 130 for Ctrl-C."""
    global _code
    if stop is None:
        _code = 0
    elif isinstance(stop, SystemExit):
        _code = 0 if stop.code is None else stop.code if isinstance(stop.code, int) else 1
    elif isinstance(stop, KeyboardInterrupt):
        _code = 130
    else:
        _code = 1


def _end() -> None:
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):  # closed or replaced
            pass
    os._exit(_code & 0xFF)
