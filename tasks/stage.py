"""What every stage task shares: the artifact key, the cache check, the ledger row and peak memory.

A stage task is: `StagePlan` (stage name, code version, config, input digests -> artifact key), then
`run_stage`, which returns the committed artifact at once when it exists ("cached") and otherwise takes the
store's lock for the key, calls the stage's `compute(writer)` and commits ("computed"). Either way one row
goes to the run ledger. Tasks hold no maths: `compute` reads inputs, calls `dreamedit3d_core`, writes outputs.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

import psutil
from pydantic import BaseModel, ConfigDict

from storage import Artifact, ArtifactStore, ArtifactWriter, LedgerRecord, artifact_key


class StageRef(BaseModel):
    """The small reference a stage task returns: where its artifacts are and how it got them."""

    model_config = ConfigDict(frozen=True)

    asset_id: str
    stage: str
    key: str
    digest: str
    status: Literal["computed", "cached"]
    seconds: float
    artifacts: dict[str, str]  # artifact noun -> URI
    metadata: dict[str, Any] = {}

    def as_cached(self) -> StageRef:
        return self.model_copy(update={"status": "cached", "seconds": 0.0})


@dataclass(frozen=True)
class StagePlan:
    """Everything that decides a stage's artifact: recompute exactly when one of these changes."""

    store_uri: str
    asset_id: str
    stage: str
    code_version: str
    config: Mapping[str, Any]
    inputs: Mapping[str, str]  # input name -> digest (file bytes, or an upstream artifact's digest)

    @property
    def key(self) -> str:
        return artifact_key(self.stage, self.code_version, self.config, self.inputs)


def upstream_digests(**upstream: StageRef) -> dict[str, str]:
    return {name: ref.digest for name, ref in upstream.items()}


class PeakMemory:
    """Samples this process's RSS plus its children's (Blender runs in a subprocess) while a stage runs."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.peak_gpu: int | None = None

    def _sample(self) -> None:
        process = psutil.Process(os.getpid())
        rss = process.memory_info().rss
        for child in process.children(recursive=True):
            try:
                rss += child.memory_info().rss
            except psutil.Error:
                pass
        self.peak_rss = max(self.peak_rss, rss)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._cuda = _cuda_available()
        if self._cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self._cuda:
            import torch

            self.peak_gpu = int(torch.cuda.max_memory_allocated())


def _cuda_available() -> bool:
    import sys

    if "torch" not in sys.modules:  # a stage that never imported torch used no GPU
        return False
    import torch

    return torch.cuda.is_available()


def run_stage(
    plan: StagePlan,
    compute: Callable[[ArtifactWriter], Mapping[str, Any] | None],
    items: Mapping[str, str],
    *,
    store: ArtifactStore | None = None,
) -> StageRef:
    """Return the stage's committed artifact, computing and committing it first when it is missing.

    `items` maps each artifact noun the user sees (`renders`, `cameras`, ...) to the store item holding
    it. `compute` may return metadata (counts, warnings) that is kept in the manifest.
    """
    store = store or ArtifactStore(plan.store_uri)
    key = plan.key
    started = datetime.now(timezone.utc)
    clock = time.perf_counter()
    metadata = {"asset_id": plan.asset_id, "config": dict(plan.config), "inputs": dict(plan.inputs)}
    monitor = PeakMemory()
    status: Literal["computed", "cached"] = "cached"
    try:
        with monitor:

            def compute_with_metadata(writer: ArtifactWriter) -> None:
                extra = compute(writer)
                if extra:
                    writer.metadata.update({"result": dict(extra)})

            artifact, status = store.compute(
                key, stage=plan.stage, metadata=metadata, fn=compute_with_metadata
            )
    except BaseException as error:
        _ledger(store, plan, key, "failed", started, clock, monitor, error)
        raise
    seconds = time.perf_counter() - clock
    result = artifact.metadata.get("result", {})
    _ledger(store, plan, key, status, started, clock, monitor, None, result if status == "computed" else None)
    return StageRef(
        asset_id=plan.asset_id,
        stage=plan.stage,
        key=key,
        digest=artifact.digest,
        status=status,
        seconds=round(seconds, 3),
        artifacts={noun: artifact.uri(item) for noun, item in items.items()},
        metadata=result,
    )


def open_artifact(ref: StageRef, store_uri: str) -> Artifact:
    return ArtifactStore(store_uri).get(ref.key)


def _flow_run_id() -> str | None:
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    return None if context is None or context.flow_run is None else str(context.flow_run.id)


def _ledger(
    store: ArtifactStore,
    plan: StagePlan,
    key: str,
    status: str,
    started: datetime,
    clock: float,
    monitor: PeakMemory,
    error: BaseException | None,
    details: Mapping[str, Any] | None = None,
) -> None:
    store.ledger.append(
        LedgerRecord(
            asset_id=plan.asset_id,
            stage=plan.stage,
            key=key,
            status=status,
            start=started,
            end=datetime.now(timezone.utc),
            seconds=time.perf_counter() - clock,
            peak_rss_bytes=monitor.peak_rss,
            peak_gpu_bytes=monitor.peak_gpu,
            host=socket.gethostname(),
            run_id=_flow_run_id(),
            error=None if error is None else f"{type(error).__name__}: {error}"[:2000],
            details=json.dumps(details, default=str) if details else None,
        )
    )
