"""`edit_library`: every asset of a manifest through `edit_asset`, a few at a time, with one summary at the end.

Each manifest row becomes one task run (`edit-one-asset`, named after the row) that runs the `edit-asset`
flow as a subflow: the asset is personalised once and all its edits are sampled from that model. At most
`max_concurrency` assets run at once, each in a worker process of its own (Prefect's process pool; one
asset at a time runs in this process). A bad asset or a failed stage fails that asset's task run and
subflow only; the others go on. Every committed stage is reused by the next run, so re-running a batch
after a crash computes only what is missing.

At the end, the batch summary is
- a `batch` artifact in the store (key from the manifest's digest and the start time) holding `summary`
  (Parquet, one row per asset) and `index` (`index.html`, the gallery: source and edits in 3D, metrics, retries);
- a Prefect table artifact `edit-library-summary` and a link artifact to the HTML index;
- the flow's return value, and its final state: Completed, or Failed with "k of n assets failed" whose
  data is `BatchFailed` carrying the same summary (the CLI reads it with `batch_summary(state)`).
Progress: a Prefect progress artifact and one line per finished asset on stderr.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_link_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.runtime import task_run as runtime_task_run
from prefect.states import Failed, State

from dreamedit3d_core.config import PipelineConfig, pipeline_config
from dreamedit3d_core.environment import setting
from flows.batch_index import html_index
from flows.batch_models import AssetOutcome, BatchFailed, BatchSummary, batch_summary
from flows.batch_table import summary_table
from flows.deployments import WORKER_ENV
from flows.edit_asset import edit_asset, run_tags, untagged_task_runs
from flows.manifest import ManifestEntry, read_manifest
from flows.planning import plan_asset, remaining_seconds, typical_seconds
from flows.remote_library import RemoteLibrary, absolute_location, is_url, local_location
from flows.worker_pool import task_runner
from storage import ArtifactStore, artifact_key, file_digest
from tasks.progress import duration

BATCH_CODE_VERSION = "1"
TABLE_ARTIFACT_KEY = "edit-library-summary"
__all__ = ["TABLE_ARTIFACT_KEY", "BatchFailed", "BatchSummary", "absolute_store", "batch_summary", "edit_library"]


def _asset_run_name() -> str:
    entry = runtime_task_run.parameters["entry"]
    return f"row-{entry.row}-{Path(entry.asset).name}"


def _edit_one_asset(
    entry: ManifestEntry,
    store: str,
    config: PipelineConfig,
    seed: int = 0,
    distributed: bool = False,
    manifest: str | None = None,
) -> AssetOutcome | State:
    """One manifest row through `edit_asset` (a subflow). A failure is returned as this task run's Failed state."""
    started = dt.datetime.now(dt.UTC)
    clock = time.perf_counter()
    from prefect import tags
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    # The asset's run is found by preset, store and manifest. It sends no heartbeat of its own (the batch's run
    # does): the heartbeat thread sleeps in 1 s steps and a run's end waits for it, about 0.5 s per asset.
    with tags(*run_tags(config, store, manifest)), temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        state = edit_asset(
            asset_path=entry.asset,
            edits=list(entry.edits),
            store=store,
            config=config,
            seed=seed,
            distributed=distributed,
            return_state=True,
        )
    seconds = round(time.perf_counter() - clock, 3)
    if state.is_completed():
        summary = state.result().summary()
        return AssetOutcome(
            row=entry.row,
            asset=entry.asset,
            asset_id=summary["asset_id"],
            status="completed",
            seconds=seconds,
            edits=list(entry.edits),
            stages=summary["stages"],
            outputs=summary["outputs"],
        )
    error = state.result(raise_on_failure=False)
    asset_id = _asset_id(entry)
    stages = _ledger_stages(store, asset_id, started)
    failed_stage = next((s["stage"] for s in reversed(stages) if s["status"] == "failed"), None)
    reason = " ".join(f"{type(error).__name__}: {error}".split()) if isinstance(error, BaseException) else state.message
    outcome = AssetOutcome(
        row=entry.row,
        asset=entry.asset,
        asset_id=asset_id,
        status="failed",
        error=f"{failed_stage}: {reason}" if failed_stage else reason,
        seconds=seconds,
        edits=list(entry.edits),
        stages=stages,
    )
    return Failed(message=outcome.error, data=outcome)


# The task wraps a module-level function, so that a process pool pickles the function by reference
# (imported in the worker process with this module's globals) rather than by value.
edit_one_asset = task(
    _edit_one_asset, name="edit-one-asset", task_run_name=_asset_run_name, cache_policy=NO_CACHE, retries=0
)


def _asset_id(entry: ManifestEntry) -> str | None:
    """The asset id `ingest` gives this file (its name and digest), without running anything."""
    from tasks.ingest import identify_source

    try:
        return identify_source(entry.asset)[0]
    except Exception:  # an unreadable file: the outcome names the row and the path instead
        return None


def _ledger_stages(store: str, asset_id: str | None, since: dt.datetime) -> list[dict[str, Any]]:
    """The stages of one asset since `since`, from the ledger (the subflow failed, so it returned none)."""
    if asset_id is None:
        return []
    latest: dict[str, dict[str, Any]] = {}
    for row in ArtifactStore(store).ledger.read().to_pylist():
        if row["asset_id"] == asset_id and row["start"] >= since:
            latest[row["key"]] = row  # rows are sorted by start: the last one per key wins
    return [
        {"stage": row["stage"], "key": row["key"], "status": row["status"], "seconds": round(row["seconds"], 3)}
        for row in latest.values()
    ]


def _outcome(future: Any, entry: ManifestEntry) -> AssetOutcome:
    """The outcome a task run returned, or one built from whatever broke the task itself."""
    try:
        future.wait()  # the final state from the run itself, not a (possibly older) copy read from the API
        value = future.state.result(raise_on_failure=False)
    except Exception as error:  # the worker's answer did not come back whole (an error that does not unpickle)
        value = error
    if isinstance(value, AssetOutcome):
        return value
    reason = f"{type(value).__name__}: {value}" if isinstance(value, BaseException) else str(future.state.message)
    return AssetOutcome(
        row=entry.row, asset=entry.asset, status="failed", error=" ".join(reason.split()), edits=entry.edits
    )


def absolute_store(store: str) -> str:
    """A local store as an absolute path, so that workers in other folders (or processes) find the same one."""
    return store if "://" in store else str(Path(store).expanduser().resolve())


def _batch_run_name() -> str:
    from prefect.runtime import flow_run

    return f"batch {Path(str(flow_run.parameters.get('manifest', ''))).name}"


@flow(name="edit-library", flow_run_name=_batch_run_name, log_prints=True)
def edit_library(
    manifest: str,
    store: str,
    preset: str = "world",
    overrides: dict[str, Any] | None = None,
    max_concurrency: int = 2,
    distributed: bool = False,
    seed: int = 0,
    command: str | None = None,
) -> BatchSummary:
    """Every asset of `manifest` (CSV, Parquet or YAML) with its edits; at most `max_concurrency` at once.

    `preset` and `overrides` (the mapping a `--config` YAML holds) give the batch's config; each row's
    overrides are merged on top. `distributed`: the GPU stages run as deployments on the `gpu` pool.
    `command`: the command line that started the batch, shown in the gallery as the way to retry failures.
    The whole manifest is validated before any work. Ends Failed ("k of n assets failed") when any asset
    failed, with the summary still attached (see `batch_summary`).
    """
    if max_concurrency < 1:
        raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
    started = dt.datetime.now(dt.UTC)
    clock = time.perf_counter()
    store = absolute_store(store)
    manifest = absolute_location(manifest)
    base = pipeline_config(preset, overrides)
    entries = read_manifest(manifest, base)
    if distributed:
        from flows.deployments import check_deployments

        check_deployments()
    logger = get_run_logger()
    logger.info(
        "%d assets from %s, %d at a time, store %s; host %s, pid %s, worker %s",
        *(len(entries), manifest, max_concurrency, store),
        *(socket.gethostname(), os.getpid(), setting(WORKER_ENV)),
    )
    progress = create_progress_artifact(0.0, description=f"assets done of {len(entries)} in {Path(manifest).name}")
    expected = _expected_seconds(entries, store, base, seed)
    known = [seconds for seconds in expected.values() if seconds is not None]
    _announce(
        f"[batch] {len(entries)} assets, {max_concurrency} at a time; "
        + (f"about {duration(sum(known) / max_concurrency)} from past runs of the same stages" if len(known) == len(entries)
           else "no estimate yet (stages without past runs in this store)")  # fmt: skip
    )
    outcomes: list[AssetOutcome] = []
    with untagged_task_runs(), task_runner(store, max_concurrency) as runner:
        futures = {
            runner.submit(
                edit_one_asset,
                {"entry": e, "store": store, "config": e.config(base), "seed": seed, "distributed": distributed,
                 "manifest": manifest},  # fmt: skip
            ): e
            for e in entries
        }
        for future in as_completed(list(futures)):
            outcome = _outcome(future, futures[future])
            outcomes.append(outcome)
            left = _time_left(outcomes, entries, expected, time.perf_counter() - clock, max_concurrency)
            _announce(f"[batch {len(outcomes)}/{len(entries)}] row {outcome.row}: {outcome.line()}{left}")
            update_progress_artifact(progress, 100.0 * len(outcomes) / len(entries))
    outcomes.sort(key=lambda outcome: outcome.row)
    summary = BatchSummary(
        manifest=manifest, store=store, started=started, seconds=time.perf_counter() - clock, assets=outcomes,
        preset=preset,
    )  # fmt: skip
    summary = _publish(summary, preset, distributed, command, base.evaluate.report_3d)
    logger.info("%s; summary %s; index %s", summary.message, summary.summary_uri, summary.index_uri)
    if summary.failed:
        return Failed(message=summary.message, data=BatchFailed(summary))  # type: ignore[return-value]
    return summary


def _expected_seconds(entries: list[Any], store: str, base: Any, seed: int) -> dict[int, float | None]:
    """Per manifest row, the expected seconds of what is left to compute (None: some stage has no history)."""
    typical = typical_seconds(store)
    expected: dict[int, float | None] = {}
    for entry in entries:
        try:
            seconds, unknown = remaining_seconds(plan_asset(entry.asset, entry.edits, store, entry.config(base), seed, typical))
        except Exception:  # a file the reader will refuse: its own run says why
            seconds, unknown = 0.0, 0
        expected[entry.row] = None if unknown else seconds
    return expected


def _time_left(
    outcomes: list[AssetOutcome], entries: list[Any], expected: dict[int, float | None], elapsed: float, concurrency: int
) -> str:
    """`; about 12m left`: from the ledger's history where every remaining asset has one, else from the pace
    of the assets done so far."""
    done = {outcome.row for outcome in outcomes}
    remaining = [entry.row for entry in entries if entry.row not in done]
    if not remaining:
        return f"; all done in {duration(elapsed)}"
    history = [expected[row] for row in remaining]
    if all(seconds is not None for seconds in history):
        left = sum(history) / concurrency  # type: ignore[arg-type]
    else:
        left = elapsed / len(done) * len(remaining)
    return f"; about {duration(left)} left"


def _announce(line: str) -> None:
    # stderr, so that stdout stays for --json; one line per finished asset.
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _publish(summary: BatchSummary, preset: str, distributed: bool, command: str | None, viewer_3d: bool) -> BatchSummary:
    """Write the summary table and the gallery (HTML index) to the store; add the Prefect table and link artifacts."""
    store = ArtifactStore(summary.store)
    config = {"started": summary.started.isoformat(), "preset": preset, "distributed": distributed}
    manifest = local_location(summary.manifest)
    local_copy = RemoteLibrary(manifest).fetch_manifest() if is_url(manifest) else manifest
    key = artifact_key("batch", BATCH_CODE_VERSION, config, {"manifest": file_digest(local_copy)})
    metadata = {"manifest": summary.manifest, "completed": summary.completed, "failed": summary.failed, **config}
    with store.write(key, stage="batch", metadata=metadata) as writer:
        writer.table("summary", summary_table(summary))
        gallery = html_index(summary, preset=preset, command=command, viewer_3d=viewer_3d)
        writer.file("index", gallery.encode(), filename="index.html")
    assert writer.artifact is not None
    summary = summary.model_copy(
        update={"summary_uri": writer.artifact.uri("summary"), "index_uri": writer.artifact.uri("index")}
    )
    create_table_artifact(
        key=TABLE_ARTIFACT_KEY,
        table=[
            {
                "row": a.row,
                "asset": a.asset_id or Path(a.asset).name,
                "status": a.status,
                "computed": sum(s["status"] == "computed" for s in a.stages),
                "cached": sum(s["status"] == "cached" for s in a.stages),
                "seconds": round(a.seconds, 1),
                "error": a.error or "",
            }
            for a in summary.assets
        ],
        description=f"{summary.message}: {Path(summary.manifest).name} -> {summary.store}",
    )
    create_link_artifact(link=str(summary.index_uri), link_text="the batch's gallery (HTML)", description=summary.message)
    return summary


