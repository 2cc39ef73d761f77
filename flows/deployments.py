"""Stages on another work pool: one flow, `run-stage`, that runs any stage of the catalog from its JSON call,
and `run_stage_remotely`, which the flows call to run a stage there.

prefect.yaml deploys `run-stage` once to the `gpu` work pool (`run-stage/gpu`): every stage the catalog puts
on the gpu pool (`Stage.pool`) runs as a run of that deployment, so a new GPU stage needs no new deployment.
A flow running with `distributed=True` calls `run_stage_remotely`, which starts that deployment with
`run_deployment`, waits for it and hands back the stage's `StageRef`, exactly as the stage task would have
returned it in this process. The artifacts travel through the store, never through Prefect: the run's
parameters are the stage's name and its `StageCall` as JSON (small references and config sections), its
result is the `StageRef`.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from typing import Any

from prefect import flow, get_run_logger

from dreamedit3d_core.environment import setting
from storage import ArtifactStore
from tasks import interruption
from tasks.catalog import all_stages, find_stage
from tasks.prefect_task import run_task
from tasks.running import run_stage
from tasks.stage import Stage, StageCall, StageRef, planned

STAGE_FLOW = "run-stage"
# Seconds between two looks at a remote run's state: a GPU stage takes far longer, so this is all latency.
POLL_SECONDS = 1.0
ATTEMPTS_ENV = "DREAMEDIT3D_REMOTE_ATTEMPTS"
WORKER_ENV = "DREAMEDIT3D_WORKER"  # optional worker label, logged by every run so the UI shows who ran it


class RemoteStageError(RuntimeError):
    """A stage run that did not complete, or that committed another artifact than this code expects."""


def deployment_name(pool: str) -> str:
    """`<flow name>/<deployment name>` of the stage deployment on `pool`, as in prefect.yaml."""
    return f"{STAGE_FLOW}/{pool}"


def remote_pools() -> list[str]:
    """The pools the catalog sends stages to when a flow runs distributed (the cpu pool runs the flows)."""
    return sorted({stage.pool for stage in all_stages() if stage.pool != "cpu"})


def remote_attempts() -> int:
    """How many runs a GPU stage gets when its workers are lost (`DREAMEDIT3D_REMOTE_ATTEMPTS`, 3)."""
    return max(1, setting(ATTEMPTS_ENV))


def run_stage_remotely(stage: Stage, call: StageCall) -> StageRef:
    """Run one stage as a run of its pool's deployment, wait for it, and return its `StageRef`.

    A stage whose artifact is already committed is not sent anywhere: its task returns it here, cached.
    Otherwise the key is planned here first: the remote run must commit exactly that artifact, or the workers run
    other code (or settings) than this flow, which is refused. The reference is the run's persisted result
    when this process can read it (same host, or shared result storage); otherwise it is rebuilt from the
    store: the artifact is committed, so the stage returns it at once without computing.

    A run that crashed (its worker was lost) is started again, up to `remote_attempts()` runs in all; another
    worker picks it up, waits for the lost holder's lock to lapse and resumes from the stage's checkpoints. A
    run whose worker dies while holding the key's lock on a shared store is seen here as soon as that lock
    lapses (`wait_for_stage_run`); one that dies before is seen when Prefect marks it Crashed (its zombie
    detection, docs/scaling.md). A run that failed (the stage's own error) is not started again.
    """
    from prefect.deployments import run_deployment

    expected = planned(stage, call)
    store = ArtifactStore(expected.store_uri)
    if store.is_committed(expected.key):  # nothing to compute: no remote run, the task returns it here as cached
        return run_task(stage, call)
    attempts = remote_attempts()
    for attempt in range(1, attempts + 1):
        flow_run = run_deployment(
            deployment_name(stage.pool),
            parameters={"stage": stage.name, "call": call.model_dump(mode="json")},
            timeout=0,  # started here, waited for below, where a lost worker can be told from a slow one
        )
        state, run_name = wait_for_stage_run(flow_run.id, store, expected.key)
        if state.is_completed():
            break
        ended = f"{state.name}: {state.message or 'no message'}"
        if state.is_crashed() and attempt < attempts and not interruption.requested():
            line = (
                f"[{expected.asset_id}] {stage.name}: run {run_name} crashed ({ended}); "
                f"starting it again (run {attempt + 1} of {attempts})"
            )
            get_run_logger().warning(line)
            sys.stderr.write(line + "\n")  # the terminal of a `batch --distributed` shows it too
            continue
        raise RemoteStageError(
            f"stage {stage.name!r} of {expected.asset_id} did not complete on the {stage.pool} pool "
            f"(flow run {run_name!r}, {flow_run.id}): {ended}"
        )
    ref = _persisted_result(state)
    if ref is not None and ref.key != expected.key:
        raise RemoteStageError(
            f"stage {stage.name!r} of {expected.asset_id}: the {stage.pool} worker committed {ref.key} but this flow "
            f"expects {expected.key}; do the workers run the same code version and settings?"
        )
    if not store.is_committed(expected.key):
        raise RemoteStageError(
            f"stage {stage.name!r} of {expected.asset_id}: flow run {run_name!r} completed but "
            f"{expected.key} is not committed in {store.root_uri}; do the workers use the same store?"
        )
    if ref is None:
        ref = ref_from_store(stage, call, str(flow_run.id), store)
    return ref


def wait_for_stage_run(flow_run_id: Any, store: ArtifactStore, key: str) -> tuple[Any, str]:
    """The final state of a stage run, and its name (given when it starts: the stage's). While it is Running,
    the key's lock in the store (S3 leases) says whether its worker is alive: a run whose lease lapsed lost
    its worker, and is marked Crashed here."""
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    with get_client(sync_client=True) as client:
        while True:
            flow_run = client.read_flow_run(flow_run_id)
            state = flow_run.state
            if state is not None and state.is_final():
                return state, flow_run.name
            if state is not None and state.is_running():
                lease = store.lock_info(key)
                if lease is not None and lease.lapsed and lease.holder.get("run_id") == str(flow_run_id):
                    who = f"{lease.holder.get('host', '?')} (pid {lease.holder.get('pid', '?')})"
                    crashed = Crashed(
                        message=f"its worker was lost: {who} stopped renewing the lock of {key} "
                        f"{lease.age_s:.0f} s ago (lease {lease.lease_s:.0f} s)"
                    )
                    client.set_flow_run_state(flow_run_id, crashed, force=True)
                    return crashed, flow_run.name
            time.sleep(POLL_SECONDS)


def _persisted_result(state: Any) -> StageRef | None:
    try:
        value = state.result(raise_on_failure=True)
    except Exception:  # not persisted, or in storage this process cannot reach
        return None
    try:
        return value if isinstance(value, StageRef) else StageRef.model_validate(value)
    except ValueError:
        return None


def ref_from_store(stage: Stage, call: StageCall, flow_run_id: str, store: ArtifactStore) -> StageRef:
    """The committed artifact's reference (returned without computing), with the remote ledger row's status."""
    ref = run_stage(stage, call)
    rows = [
        row
        for row in store.ledger.read().to_pylist()
        if row["key"] == ref.key and row["run_id"] == flow_run_id and row["status"] in ("computed", "cached")
    ]
    if not rows:
        return ref
    return ref.model_copy(update={"status": rows[-1]["status"], "seconds": round(rows[-1]["seconds"], 3)})


def check_deployments() -> None:
    """Fail before any work when the server lacks a pool's stage deployment (run `prefect deploy --all`)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    missing = []
    with get_client(sync_client=True) as client:
        for pool in remote_pools():
            try:
                client.read_deployment_by_name(deployment_name(pool))
            except ObjectNotFound:
                missing.append(deployment_name(pool))
    if missing:
        raise ValueError(
            f"distributed mode needs the deployment(s) {', '.join(missing)} on the Prefect server "
            "(run `prefect deploy --all` in the project folder and start a worker on each pool)"
        )


@flow(name=STAGE_FLOW, flow_run_name="{stage}", persist_result=True, result_serializer="json")
def run_stage_flow(stage: str, call: dict[str, Any]) -> StageRef:
    """One stage of one asset, on the worker that picked this run up; `call` is the stage's `StageCall` as JSON.
    The result is persisted as JSON: a caller on the same host (or with shared result storage) reads it back."""
    declared = find_stage(stage)
    get_run_logger().info(
        "stage %s on host %s, pid %s, worker %s",
        stage,
        socket.gethostname(),
        os.getpid(),
        setting(WORKER_ENV),
    )
    return run_task(declared, StageCall.model_validate(call))
