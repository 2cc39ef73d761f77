"""How a stage becomes a Prefect task: the artifact key as cache key, and retries only for transient faults.

Prefect's own cache policies either include the run id (no caching across runs) or hash the inputs'
path strings rather than the files behind them, and a cached result whose artifact was deleted would
still read as Cached. So the cache key is the stage's artifact key, and it is offered to Prefect only
while the artifact is committed in the store: delete the artifact and the task runs again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from prefect import Task, task
from prefect.cache_policies import CachePolicy

from storage import ArtifactStore
from tasks.stage import StagePlan

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class ArtifactCachePolicy(CachePolicy):
    """Cache key = (store, artifact key), offered only while that artifact is committed."""

    plan: Callable[..., StagePlan] | None = None

    def compute_key(self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any) -> str | None:
        if self.plan is None:
            return None
        try:
            plan = self.plan(**inputs)
        except Exception:  # bad input: let the task run and raise its own clear error
            return None
        if not ArtifactStore(plan.store_uri).is_committed(plan.key):
            return None
        store_digest = hashlib.sha256(plan.store_uri.encode()).hexdigest()[:12]
        return f"{store_digest}-{plan.key}"


def is_transient(task: Task, task_run: Any, state: Any) -> bool:
    """Retry crashes and I/O faults; never a user's mistake (bad files, bad configs raise ValueError)."""
    try:
        state.result(raise_on_failure=True)
    except (ValueError, FileNotFoundError, IsADirectoryError, PermissionError):
        return False
    except Exception:
        return True
    return False


def stage_task(stage: str, plan: Callable[..., StagePlan], *, retries: int = 2) -> Callable[[F], F]:
    """Declare a stage as a Prefect task named after it, cached by artifact and retried with backoff."""

    def decorate(fn: F) -> F:
        return task(  # type: ignore[return-value]
            fn,
            name=stage,
            cache_policy=ArtifactCachePolicy(plan=plan),
            persist_result=True,
            result_serializer="json",
            retries=retries,
            retry_delay_seconds=[2, 10, 30][:retries] or 0,
            retry_condition_fn=is_transient,
        )

    return decorate
