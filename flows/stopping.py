"""Stopping a command at the first Ctrl-C or SIGTERM: its worker processes and their children go with it.

A batch runs its assets in worker processes (Prefect's process pool), and every render runs Blender in a
child process. Raising KeyboardInterrupt in the main thread alone is not enough: the pool's shutdown waits for
the running assets to finish (minutes), and a second Ctrl-C then leaves the workers running as orphans. So the
first signal
1. notes the interrupt for every stage boundary of this process (`tasks.interruption`),
2. stops every process this command started, in this command's session: SIGTERM, then SIGKILL for those
   still alive after a grace period (`stop_descendants`); the auto-started Prefect server runs in a session of
   its own and is left alone,
3. raises KeyboardInterrupt in the main thread, so that the command ends through its normal path, which waits
   for step 2 (`wait_until_stopped`) so that its last line comes after the workers' last words;
4. and, should that path hang anyway, a watchdog ends the process with exit 130 at a deadline (3.5 s after the
   signal).
Nothing is half-committed by this: the store commits an artifact in one rename at the end of its write.
A second signal while stopping is ignored: it is never needed.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

import psutil

from tasks import interruption

# SIGTERM, then SIGKILL for the processes still alive after this: a worker unwinds a write cut short on SIGTERM
# (removing its unfinished files and lock), which waits for the C call it is in (numpy, zarr) to return; 1 s was
# too short under load now and then, and left a crashed writer's files for `verify` to report.
GRACE_S = 2.0
DEADLINE_S = 3.5  # the whole command gone this long after the signal, whatever its own path does
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_stopping = threading.Event()  # a stop signal came (the first one; later ones are ignored)
_descendants_stopped = threading.Event()  # and every process the command started is gone


def descendants() -> list[psutil.Process]:
    """The processes this one started (and theirs) that share its session: not a server started in its own,
    and not multiprocessing's resource tracker, which ends by itself after this process and cleans up what
    the stopped workers left (it ignores SIGTERM)."""
    session = os.getsid(0)
    found = []
    for process in psutil.Process().children(recursive=True):
        try:
            if os.getsid(process.pid) == session and not _is_resource_tracker(process):
                found.append(process)
        except (ProcessLookupError, psutil.Error):
            continue  # ended meanwhile
    return found


def _is_resource_tracker(process: psutil.Process) -> bool:
    return any("multiprocessing.resource_tracker" in part for part in process.cmdline())


def quiet_resource_tracker() -> None:
    """Before any worker starts: the resource tracker cleans up after workers that were stopped, without a
    warning about "leaked semaphore objects" after the command's last line (it inherits this filter)."""
    quiet = "ignore:resource_tracker:UserWarning"
    current = os.environ.get("PYTHONWARNINGS", "")
    if quiet not in current.split(","):
        os.environ["PYTHONWARNINGS"] = f"{current},{quiet}" if current else quiet


def stop_descendants(grace_s: float = GRACE_S, deadline: float | None = None) -> list[int]:
    """SIGTERM to every descendant in this session, SIGKILL to those alive after `grace_s`; their pids. Again
    while new ones turn up, until `deadline` (time.monotonic()): a worker may have started Blender just as it
    was stopped (this process is their subreaper, so such an orphan is still found here)."""
    deadline = time.monotonic() + 3 * grace_s if deadline is None else deadline
    stopped: list[int] = []
    while time.monotonic() < deadline:
        processes = [p for p in descendants() if _alive(p)]
        if not processes:
            break
        for process in processes:
            try:
                process.terminate()
            except psutil.Error:
                pass
        _, alive = psutil.wait_procs(processes, timeout=max(0.05, min(grace_s, deadline - time.monotonic())))
        for process in alive:
            try:
                process.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(alive, timeout=max(0.05, min(0.5, deadline - time.monotonic())))
        stopped += [process.pid for process in processes]
    return stopped


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def adopt_orphans() -> None:
    """Linux: become the subreaper of this command's processes, so that a grandchild whose parent was stopped
    is re-parented here (and found, and stopped) rather than to init."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def install(on_first: Callable[[int], None], farewell: Callable[[], None], exit_code: int = 130) -> None:
    """Handle SIGINT and SIGTERM as described above. `on_first(signum)` runs first (note the interrupt);
    `farewell()` is what the watchdog prints before it ends the process."""
    _stopping.clear()
    _descendants_stopped.clear()

    def watchdog(deadline: float) -> None:
        stop_descendants(deadline=deadline - 0.5)  # the deadline counts from the signal, not from here
        _descendants_stopped.set()
        time.sleep(max(0.0, deadline - time.monotonic()))
        farewell()
        sys.stderr.flush()
        os._exit(exit_code)

    def handler(signum: int, frame: FrameType | None) -> None:
        if _stopping.is_set():
            return  # already stopping
        _stopping.set()
        deadline = time.monotonic() + DEADLINE_S
        on_first(signum)
        threading.Thread(target=watchdog, args=(deadline,), name="dreamedit3d-stop", daemon=True).start()
        raise KeyboardInterrupt

    for signum in STOP_SIGNALS:
        signal.signal(signum, handler)
    quiet_resource_tracker()
    adopt_orphans()


def wait_until_stopped() -> None:
    """After a stop signal: return once every process the command started is gone (at most until the deadline).
    At once when no signal came."""
    if _stopping.is_set():
        _descendants_stopped.wait(timeout=DEADLINE_S)


def ignore_in_worker() -> None:
    """In a worker process: Ctrl-C at the terminal reaches the whole process group, workers included; the
    command that owns them stops them (above), so they do not act on it themselves. The command's SIGTERM
    then ends the worker through its normal path: the interrupt is noted (no stage starts or is retried) and
    KeyboardInterrupt unwinds the stage, so a write cut short removes its unfinished files and lock before
    the worker exits (the command's SIGKILL follows only if that takes longer than its grace period)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _end_worker)


def _end_worker(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: the unwinding is not interrupted again
    interruption.request()
    raise KeyboardInterrupt
