"""GPU stages as their own deployments, and `run_stage_remotely`, which the flows call to run one there.

Each GPU stage (`invert`, `finetune`, `sample`) has a flow here, `run-<stage>-stage`, deployed to the `gpu`
work pool by prefect.yaml. A flow running with `distributed=True` calls `run_stage_remotely`, which starts
that deployment with `run_deployment`, waits for it and hands back the stage's `StageRef`, exactly as the
stage task would have returned it in this process. The artifacts travel through the store, never through
Prefect: the run's parameters are the stage's inputs as JSON (small references and configs), its result is
the `StageRef`.
"""

from __future__ import annotations

import importlib
import os
import socket
import typing
from typing import Any

from prefect import Task, flow, get_run_logger
from pydantic import BaseModel, TypeAdapter

from dreamedit3d_core.config import GPU_STAGES
from storage import ArtifactStore
from tasks.stage import StageRef

# Seconds between two looks at a remote run's state: a GPU stage takes far longer, so this is all latency.
POLL_SECONDS = 1.0
WORKER_ENV = "DREAMEDIT3D_WORKER"  # optional worker label, logged by every run so the UI shows who ran it


class RemoteStageError(RuntimeError):
    """A stage deployment that did not complete, or that committed another artifact than this code expects."""


def deployment_name(stage: str) -> str:
    """`<flow name>/<deployment name>` of a GPU stage, as in prefect.yaml."""
    _check_stage(stage)
    return f"run-{stage}-stage/run-{stage}-stage"


def stage_task(stage: str) -> Task:
    """The Prefect task of a GPU stage (`tasks.<stage>.<stage>`)."""
    _check_stage(stage)
    return getattr(importlib.import_module(f"tasks.{stage}"), stage)


def inputs_to_json(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A stage task's keyword arguments as the JSON parameters of its deployment."""
    return {
        name: value.model_dump(mode="json") if isinstance(value, BaseModel) else value for name, value in kwargs.items()
    }


def inputs_from_json(stage: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """JSON parameters back to the typed arguments of the stage task (StageRefs, configs), validated."""
    hints = typing.get_type_hints(stage_task(stage).fn)
    unknown = set(inputs) - set(hints) - {"return"}
    if unknown:
        raise ValueError(
            f"stage {stage!r} takes no input(s) {sorted(unknown)}; it takes {sorted(set(hints) - {'return'})}"
        )
    return {name: TypeAdapter(hints[name]).validate_python(value) for name, value in inputs.items()}


def run_stage_remotely(stage_name: str, kwargs: dict[str, Any]) -> StageRef:
    """Run one GPU stage as its deployment on the `gpu` pool, wait for it, and return its `StageRef`.

    A stage whose artifact is already committed is not sent anywhere: its task returns it here, cached.
    Otherwise the key is planned here first: the remote run must commit exactly that artifact, or the workers run
    other code (or settings) than this flow, which is refused. The reference is the run's persisted result
    when this process can read it (same host, or shared result storage); otherwise it is rebuilt from the
    store: the artifact is committed, so the stage task returns it at once without computing.
    """
    from prefect.deployments import run_deployment

    from flows.edit_asset import run_stage_task

    expected = importlib.import_module(f"tasks.{stage_name}").plan(**kwargs)
    store = ArtifactStore(expected.store_uri)
    if store.is_committed(expected.key):  # nothing to compute: no GPU run, the task returns it here as cached
        return run_stage_task(stage_task(stage_name), **kwargs)
    flow_run = run_deployment(
        deployment_name(stage_name),
        parameters={"inputs": inputs_to_json(kwargs)},
        timeout=None,
        poll_interval=POLL_SECONDS,
    )
    state = flow_run.state
    if state is None or not state.is_completed():
        ended = "no state" if state is None else f"{state.name}: {state.message or 'no message'}"
        raise RemoteStageError(
            f"stage {stage_name!r} of {expected.asset_id} did not complete on the gpu pool "
            f"(flow run {flow_run.name!r}, {flow_run.id}): {ended}"
        )
    ref = _persisted_result(state)
    if ref is not None and ref.key != expected.key:
        raise RemoteStageError(
            f"stage {stage_name!r} of {expected.asset_id}: the gpu worker committed {ref.key} but this flow "
            f"expects {expected.key}; do the workers run the same code version and settings?"
        )
    if not store.is_committed(expected.key):
        raise RemoteStageError(
            f"stage {stage_name!r} of {expected.asset_id}: flow run {flow_run.name!r} completed but "
            f"{expected.key} is not committed in {store.root_uri}; do the workers use the same store?"
        )
    if ref is None:
        ref = ref_from_store(stage_name, kwargs, str(flow_run.id), store)
    return ref


def _persisted_result(state: Any) -> StageRef | None:
    try:
        value = state.result(raise_on_failure=True)
    except Exception:  # not persisted, or in storage this process cannot reach
        return None
    try:
        return value if isinstance(value, StageRef) else StageRef.model_validate(value)
    except ValueError:
        return None


def ref_from_store(stage: str, kwargs: dict[str, Any], flow_run_id: str, store: ArtifactStore) -> StageRef:
    """The committed artifact's reference (the task returns it without computing), with the remote ledger status."""
    ref: StageRef = stage_task(stage).fn(**kwargs)
    rows = [
        row
        for row in store.ledger.read().to_pylist()
        if row["key"] == ref.key and row["run_id"] == flow_run_id and row["status"] in ("computed", "cached")
    ]
    if not rows:
        return ref
    return ref.model_copy(update={"status": rows[-1]["status"], "seconds": round(rows[-1]["seconds"], 3)})


def _check_stage(stage: str) -> None:
    if stage not in GPU_STAGES:
        raise ValueError(f"{stage!r} is not a GPU stage; GPU stages are {', '.join(GPU_STAGES)}")


def check_deployments(stages: tuple[str, ...] = GPU_STAGES) -> None:
    """Fail before any work when the server lacks a GPU stage's deployment (run `prefect deploy --all`)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    missing = []
    with get_client(sync_client=True) as client:
        for stage in stages:
            try:
                client.read_deployment_by_name(deployment_name(stage))
            except ObjectNotFound:
                missing.append(deployment_name(stage))
    if missing:
        raise ValueError(
            f"distributed mode needs the deployment(s) {', '.join(missing)} on the Prefect server "
            "(run `prefect deploy --all` in the project folder and start a worker on the gpu pool)"
        )


def _run_gpu_stage(stage: str, inputs: dict[str, Any]) -> StageRef:
    from flows.edit_asset import run_stage_task

    get_run_logger().info(
        "stage %s on host %s, pid %s, worker %s",
        stage,
        socket.gethostname(),
        os.getpid(),
        os.environ.get(WORKER_ENV, "-"),
    )
    return run_stage_task(stage_task(stage), **inputs_from_json(stage, inputs))


# One flow per GPU stage, so that each is its own deployment (own pool, concurrency, schedule, history).
# The result is persisted as JSON: a caller on the same host (or with shared result storage) reads it back.


@flow(name="run-invert-stage", persist_result=True, result_serializer="json")
def run_invert_stage(inputs: dict[str, Any]) -> StageRef:
    """Phase 1 (`invert`) of one asset; `inputs` are the stage task's arguments as JSON."""
    return _run_gpu_stage("invert", inputs)


@flow(name="run-finetune-stage", persist_result=True, result_serializer="json")
def run_finetune_stage(inputs: dict[str, Any]) -> StageRef:
    """Phase 2 (`finetune`) of one asset; `inputs` are the stage task's arguments as JSON."""
    return _run_gpu_stage("finetune", inputs)


@flow(name="run-sample-stage", persist_result=True, result_serializer="json")
def run_sample_stage(inputs: dict[str, Any]) -> StageRef:
    """The views of one edit (`sample`); `inputs` are the stage task's arguments as JSON."""
    return _run_gpu_stage("sample", inputs)
