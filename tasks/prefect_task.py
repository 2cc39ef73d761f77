"""How a stage becomes a Prefect task: the committed artifact as cache key, and retries only for transient faults.

Prefect's own cache policies either include the run id (no caching across runs) or hash the inputs'
path strings rather than the files behind them. So the cache key is the stage's artifact key together with
the committed attempt's content digest, offered to Prefect only while that artifact is committed. Prefect's
cache entries never expire, so an artifact that is deleted, recomputed or replaced by `verify` must never
meet an old entry: a recomputed artifact has another attempt and digest, hence another cache key, and the
task runs (and finds the new commit at once).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from typing import Any

from prefect import Task, task
from prefect.cache_policies import CachePolicy

from storage import ArtifactStore
from tasks import interruption
from tasks.running import run_stage
from tasks.stage import Stage, StageCall, StageRef, planned


@dataclass
class ArtifactCachePolicy(CachePolicy):
    """Cache key = (store, artifact key, committed attempt and digest), offered only while it is committed."""

    stage: Stage | None = None

    def compute_key(self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any) -> str | None:
        if self.stage is None:
            return None
        try:
            call = inputs["call"] if isinstance(inputs["call"], StageCall) else StageCall.model_validate(inputs["call"])
            key = planned(self.stage, call).key
            record = ArtifactStore(call.store).read_commit(key)
        except Exception:  # not committed (StoreError), or bad input: the task runs and raises its own error
            return None
        store_digest = hashlib.sha256(call.store.encode()).hexdigest()[:12]
        return f"{store_digest}-{key}-{record['attempt']}-{record['digest'][:16]}"


# Faults of the machine, which a second try can get past: I/O that failed, a lost connection, a Blender that
# crashed or hung, a GPU out of memory. Anything else (a refused file, a bad setting, a bug) fails at once.
_MACHINE_FAULTS = (OSError, TimeoutError, ConnectionError)
_NOT_MACHINE_FAULTS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)
_MACHINE_FAULT_NAMES = {"RenderError", "OutOfMemoryError", "IngestCrashed"}  # by name: no torch or bpy import here


def is_machine_fault(error: BaseException) -> bool:
    if isinstance(error, _NOT_MACHINE_FAULTS):
        return False
    if isinstance(error, _MACHINE_FAULTS):
        return True
    return any(cls.__name__ in _MACHINE_FAULT_NAMES for cls in type(error).__mro__)


def is_transient(task: Task, task_run: Any, state: Any) -> bool:
    """Retry only faults of the machine; a user's mistake (a bad file, a bad setting) is tried once, and nothing
    is retried after Ctrl-C (a child that died of the same SIGINT looks like a machine fault)."""
    if interruption.requested():
        return False
    try:
        state.result(raise_on_failure=True)
    except Exception as error:
        return is_machine_fault(error)
    return False


@cache
def prefect_task(stage: Stage) -> Task:
    """The stage as a Prefect task named after it, cached by artifact and retried with backoff."""

    def run(call: StageCall) -> StageRef:
        return run_stage(stage, call)

    run.__name__ = run.__qualname__ = stage.name
    run.__doc__ = stage.about
    return task(
        run,
        name=stage.name,
        cache_policy=ArtifactCachePolicy(stage=stage),
        persist_result=True,
        result_serializer="json",
        retries=stage.retries,
        retry_delay_seconds=[2, 10, 30][: stage.retries] or 0,
        retry_condition_fn=is_transient,
    )


def run_task(stage: Stage, call: StageCall) -> StageRef:
    """Run a stage's task in this process; a result Prefect served from its cache is reported `cached`.
    After Ctrl-C no stage starts, and none returns as if nothing happened."""
    interruption.check()
    state = prefect_task(stage)(call, return_state=True)
    interruption.check()
    ref: StageRef = state.result()
    return ref.as_cached() if state.name == "Cached" else ref
