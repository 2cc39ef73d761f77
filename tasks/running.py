"""Running a stage: `run_stage` returns the committed artifact at once when it exists ("cached"), and otherwise
takes the store's lock for the key, calls the stage's compute function and commits ("computed"). Either way
one row goes to the run ledger, with the time and the peak memory.

The compute function sees the stage's inputs only through `StageInputs` (the config sections and upstream
artifacts it declared, typed) and writes only through `StageOutputs` (the artifacts it declared, every one).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import psutil

from dreamedit3d_core.environment import setting
from dreamedit3d_core.mvdiffusion import EditConfig
from storage import Artifact, ArtifactStore, ArtifactWriter, LedgerRecord
from tasks.artifacts import Noun
from tasks.stage import Stage, StageCall, StagePlan, StageRef, cost_profile, planned

L = TypeVar("L")


SHARED_ASSET = "shared"  # the asset id, in the ledger and the store, of work every asset shares (StageInputs.shared)


class UpstreamChanged(RuntimeError):
    """An upstream artifact was recomputed (other content) after this call was planned: run the flow again."""


class StageInputs:
    """What a stage may read: its declared config sections and the artifacts of its declared upstream stages."""

    def __init__(
        self, stage: Stage, call: StageCall, store: ArtifactStore, asset_id: str, scratch: Path | None = None
    ) -> None:
        self.stage = stage
        self.call = call
        self.asset_id = asset_id
        self.store = store
        self._scratch = scratch

    def settings(self, section: str) -> Any:
        return self.stage.pipeline.settings(self.stage, self.call, section)

    def artifact(self, upstream: str) -> Artifact:
        """The committed artifact of an upstream stage, exactly the one this call's key was planned from."""
        if upstream not in (*self.stage.reads, *self.stage.reads_if_run):
            raise KeyError(f"stage {self.stage.name!r} reads {upstream!r} without declaring it in the catalog")
        if upstream not in self.call.upstream:
            raise KeyError(f"stage {self.stage.name!r}: the optional stage {upstream!r} did not run (see `ran`)")
        ref = self.call.upstream[upstream]
        artifact = self.store.get(ref.key)
        if artifact.digest != ref.digest:
            raise UpstreamChanged(
                f"the {upstream} artifact {ref.key} was recomputed since this run started; run the same command again"
            )
        return artifact

    def ran(self, upstream: str) -> bool:
        """Whether an optional upstream stage (`reads_if_run`) ran, so that its artifacts can be loaded."""
        return upstream in self.call.upstream

    def load(self, noun: Noun[Any, L]) -> L:
        if noun not in self.stage.loads:
            raise KeyError(f"stage {self.stage.name!r} loads {noun.name!r} without declaring it in the catalog")
        return noun.load(self.artifact(self.stage.pipeline.producer(noun).name))

    @property
    def edit(self) -> EditConfig:
        if self.call.edit is None:
            raise KeyError(f"stage {self.stage.name!r} is not a per-edit stage")
        return self.call.edit

    @property
    def source(self) -> Path:
        if self.call.source is None:
            raise KeyError(f"stage {self.stage.name!r} reads no source file")
        return Path(self.call.source)

    def shared(
        self,
        name: str,
        version: str,
        settings: Mapping[str, Any],
        inputs: Mapping[str, str],
        compute: Callable[[], Mapping[str, np.ndarray]],
    ) -> dict[str, np.ndarray]:
        """Work that depends on no asset and that every asset's stage would otherwise repeat (the base model's
        class samples for prior preservation): an artifact of its own, keyed by `name`, `version`, `settings`
        and `inputs` (digests, e.g. the base model's), computed by the first call (`compute()` gives named
        arrays) and read by every later one, on any machine sharing the store. It has a ledger row of its own
        under the asset id "shared": computed once, cached for every other asset."""
        started, clock = datetime.now(timezone.utc), time.perf_counter()
        shared_plan = StagePlan(self.store.root_uri, SHARED_ASSET, name, version, dict(settings), dict(inputs))
        metadata = {"asset_id": SHARED_ASSET, "config": dict(settings), "inputs": dict(inputs),
                    "first_asset": self.asset_id}  # fmt: skip

        def write(writer: ArtifactWriter) -> None:
            writer.tensors("tensors", {key: np.ascontiguousarray(value) for key, value in compute().items()})

        try:
            artifact, status = self.store.compute(shared_plan.key, stage=name, metadata=metadata, fn=write)
        except BaseException as error:
            _append_ledger(self.store, shared_plan, "failed", started, clock, None, error)
            raise
        _append_ledger(self.store, shared_plan, status, started, clock, None, None, {"for_asset": self.asset_id})
        return artifact.tensors("tensors")

    def scratch_dir(self) -> Path:
        """A local folder kept across crashes until the artifact is committed (in-stage checkpoints)."""
        if self._scratch is None:
            raise KeyError(f"stage {self.stage.name!r} does not declare checkpoints in the catalog")
        return self._scratch


class StageOutputs:
    """Where a stage saves its artifacts: each declared noun once, through its own save."""

    def __init__(self, stage: Stage, writer: ArtifactWriter) -> None:
        self.stage = stage
        self.writer = writer
        self.saved: set[str] = set()

    def save(self, noun: Noun[L, Any], value: L) -> None:
        if noun not in self.stage.makes:
            raise KeyError(f"stage {self.stage.name!r} saves {noun.name!r} without declaring it in the catalog")
        noun.save(self.writer, value)
        self.saved.add(noun.name)

    def check_complete(self) -> None:
        missing = [noun.name for noun in self.stage.makes if noun.name not in self.saved]
        if missing:
            raise RuntimeError(f"stage {self.stage.name!r} finished without saving {missing}")


def run_stage(stage: Stage, call: StageCall) -> StageRef:
    """The stage's committed artifact for `call`, computing and committing it first when it is missing.
    Every run leaves one ledger row, a failed one too (also when the key cannot even be planned: a source
    file the reader refuses); a ledger that cannot be written never hides the stage's own error."""
    started = datetime.now(timezone.utc)
    clock = time.perf_counter()
    try:
        stage_plan = planned(stage, call)
    except BaseException as error:
        unplanned = StagePlan(call.store, _asset_id_of(stage, call), stage.name, stage.code_version, {}, {})
        _append_ledger(ArtifactStore(call.store), unplanned, "failed", started, clock, None, error, key=f"{stage.name}-unplanned")
        raise
    store = ArtifactStore(stage_plan.store_uri)
    key = stage_plan.key
    run_facts = {"preset": call.preset, "profile": cost_profile(stage, call, stage_plan.config)}  # for estimates
    if stage_plan.edit is not None:
        run_facts["edit"] = stage_plan.edit  # which edit the run was for, also when it failed
    metadata = {"asset_id": stage_plan.asset_id, "config": dict(stage_plan.config), "inputs": dict(stage_plan.inputs)}
    monitor = PeakMemory()

    def compute(writer: ArtifactWriter) -> None:
        scratch = store.scratch_dir(key) if stage.checkpoints else None
        outputs = StageOutputs(stage, writer)
        with ScratchSync(store, key, enabled=stage.checkpoints and store.shared_remote):
            extra = stage.compute(StageInputs(stage, call, store, stage_plan.asset_id, scratch), outputs)
        outputs.check_complete()
        if extra:
            writer.metadata.update({"result": dict(extra)})

    status: Literal["computed", "cached"] = "cached"
    try:
        with monitor:
            owner = {"stage": stage.name, "run_id": _flow_run_id()}  # read by a caller waiting on a remote run
            artifact, status = store.compute(key, stage=stage.name, metadata=metadata, fn=compute, owner=owner)
    except BaseException as error:
        _append_ledger(store, stage_plan, "failed", started, clock, monitor, error, run_facts)
        raise
    if stage.checkpoints:
        store.clear_scratch(key)
    seconds = time.perf_counter() - clock
    result = artifact.metadata.get("result", {})
    details = {**run_facts, **result} if status == "computed" else run_facts
    _append_ledger(store, stage_plan, status, started, clock, monitor, None, details)
    return _reference(stage, stage_plan, artifact, status, seconds)


def _reference(
    stage: Stage, stage_plan: StagePlan, artifact: Artifact, status: Literal["computed", "cached"], seconds: float
) -> StageRef:
    """The small reference a stage returns for its committed artifact."""
    return StageRef(
        asset_id=stage_plan.asset_id,
        stage=stage.name,
        key=stage_plan.key,
        digest=artifact.digest,
        status=status,
        seconds=round(seconds, 3),
        artifacts={noun.name: artifact.uri(noun.name) for noun in stage.makes},
        metadata=artifact.metadata.get("result", {}),
        edit=stage_plan.edit,
    )


def cached_ref(stage: Stage, call: StageCall) -> StageRef | None:
    """The stage's committed artifact for `call` as `run_stage` would return it cached, or None when it is
    not committed; computes nothing and writes no ledger row (for plans and dry runs)."""
    stage_plan = planned(stage, call)
    store = ArtifactStore(stage_plan.store_uri)
    if not store.is_committed(stage_plan.key):
        return None
    return _reference(stage, stage_plan, store.get(stage_plan.key), "cached", 0.0)


def _asset_id_of(stage: Stage, call: StageCall) -> str:
    """The asset a call is about, without planning it (for the ledger row of a plan that failed)."""
    if stage.pipeline.asset_id is not None:
        return stage.pipeline.asset_id
    if call.upstream:
        return next(iter(call.upstream.values())).asset_id
    if call.source is not None and stage.name_source is not None:
        try:
            return stage.name_source(call.source)
        except OSError:
            return Path(call.source).stem
    return "unknown"


class ScratchSync:
    """On a shared object store, uploads a stage's new checkpoints from its local scratch folder every
    `interval` seconds (and once more when the stage fails), so another worker can resume from them."""

    def __init__(self, store: ArtifactStore, key: str, enabled: bool, interval: float | None = None) -> None:
        self.store, self.key, self.enabled = store, key, enabled
        self.interval = interval if interval is not None else setting("DREAMEDIT3D_CHECKPOINT_SYNC_S")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _push(self) -> None:
        try:
            self.store.push_scratch(self.key)
        except OSError as error:  # the next push tries again; the stage itself goes on
            sys.stderr.write(f"warning: could not upload checkpoints of {self.key}: {error}\n")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._push()

    def __enter__(self) -> ScratchSync:
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        if self.enabled:
            self._stop.set()
            self._thread.join()
            if kind is not None:
                self._push()


class PeakMemory:
    """Samples this process's RSS plus its children's (Blender runs in a subprocess) while a stage runs."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak_rss = 0
        self.peak_gpu: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

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
    if "torch" not in sys.modules:  # a stage that never imported torch used no GPU
        return False
    import torch

    return torch.cuda.is_available()


def _flow_run_id() -> str | None:
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    return None if context is None or context.flow_run is None else str(context.flow_run.id)


INTERRUPTED_ERROR = "interrupted (Ctrl-C or a stop signal): run the same command again to resume"


def _error_text(error: BaseException) -> str:
    """What the ledger says about a failed run: the error, or that it was interrupted (not a fault)."""
    if isinstance(error, KeyboardInterrupt) or type(error).__name__ in ("TerminationSignal", "Abort"):
        return INTERRUPTED_ERROR
    return f"{type(error).__name__}: {error}"[:2000]


def _append_ledger(
    store: ArtifactStore,
    stage_plan: StagePlan,
    status: str,
    started: datetime,
    clock: float,
    monitor: PeakMemory | None,
    error: BaseException | None,
    details: Mapping[str, Any] | None = None,
    key: str | None = None,
) -> None:
    """One ledger row. While a stage's own error is on its way out, a ledger that cannot be written (a full
    disk, a lost connection) is reported beside it, never instead of it."""
    try:
        store.ledger.append(
            LedgerRecord(
                asset_id=stage_plan.asset_id,
                stage=stage_plan.stage,
                key=key or stage_plan.key,
                status=status,
                start=started,
                end=datetime.now(timezone.utc),
                seconds=time.perf_counter() - clock,
                peak_rss_bytes=monitor.peak_rss if monitor else 0,
                peak_gpu_bytes=monitor.peak_gpu if monitor else None,
                host=socket.gethostname(),
                run_id=_flow_run_id(),
                error=None if error is None else _error_text(error),
                details=json.dumps(details, default=str) if details else None,
            )
        )
    except Exception as ledger_error:
        if error is None:
            raise
        sys.stderr.write(f"warning: the run ledger could not record this failure ({type(ledger_error).__name__}: {ledger_error})\n")
