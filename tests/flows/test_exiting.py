"""A process that ends through `flows.exiting` (the command, a batch's workers) skips the interpreter's teardown
and loses nothing: its exit code, its output, its log lines and its other exit handlers are what they would be."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PROGRAM = """
import atexit, logging, logging.handlers, sys
from flows import exiting

exiting.install()
# a handler that writes only when logging shuts down (logging's exit handler was registered before exiting's)
buffered = logging.handlers.MemoryHandler(10_000, target=logging.FileHandler(sys.argv[1]), flushOnClose=True)
logging.getLogger().addHandler(buffered)
logging.getLogger().setLevel(logging.INFO)
atexit.register(lambda: print("a later exit handler ran", flush=False))
print("x" * 100_000, end="")  # buffered, not flushed: a pipe gets it all only if the end flushes it
logging.getLogger("demo").info("last words")
how = sys.argv[2]
try:
    if how == "returns":
        pass
    elif how == "exit-3":
        sys.exit(3)
    elif how == "message":
        sys.exit("a message")
    elif how == "raises":
        raise RuntimeError("boom")
except BaseException as stop:
    exiting.finish(stop)
    raise
exiting.finish()
"""


@pytest.mark.parametrize(
    ("how", "code", "stderr"),
    [("returns", 0, ""), ("exit-3", 3, ""), ("message", 1, "a message"), ("raises", 1, "RuntimeError: boom")],
)
def test_the_exit_code_output_logs_and_exit_handlers_are_kept(tmp_path: Path, how: str, code: int, stderr: str) -> None:
    log = tmp_path / "run.log"
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PROGRAM), str(log), how],
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert done.returncode == code, done.stderr
    assert done.stdout == "x" * 100_000 + "a later exit handler ran\n"
    assert stderr in done.stderr
    assert log.read_text() == "last words\n"
