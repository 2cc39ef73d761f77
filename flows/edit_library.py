"""`edit_library`: every asset of a manifest through `edit_asset`, a few at a time, with one summary at the end.

Each manifest row becomes one task run (`edit-one-asset`, named after the row) that runs the `edit-asset`
flow as a subflow: the asset is personalised once and all its edits are sampled from that model. At most
`max_concurrency` assets run at once, each in a worker process of its own (Prefect's process pool; one
asset at a time runs in this process). A bad asset or a failed stage fails that asset's task run and
subflow only; the others go on. Every committed stage is reused by the next run, so re-running a batch
after a crash computes only what is missing.

At the end, the batch summary is
- a `batch` artifact in the store (key from the manifest's digest and the start time) holding `summary`
  (Parquet, one row per asset) and `index` (`index.html`, each asset's previews and outputs);
- a Prefect table artifact `edit-library-summary` and a link artifact to the HTML index;
- the flow's return value, and its final state: Completed, or Failed with "k of n assets failed" whose
  data is `BatchFailed` carrying the same summary (the CLI reads it with `batch_summary(state)`).
Progress: a Prefect progress artifact and one line per finished asset on stderr.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
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
from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner
from pydantic import BaseModel, Field

from dreamedit3d_core.config import PipelineConfig, pipeline_config
from flows.deployments import WORKER_ENV
from flows.edit_asset import edit_asset
from flows.manifest import ManifestEntry, read_manifest
from storage import ArtifactStore, artifact_key, file_digest

BATCH_CODE_VERSION = "1"
TABLE_ARTIFACT_KEY = "edit-library-summary"

SUMMARY_SCHEMA = pa.schema(
    [
        pa.field("row", pa.int64(), nullable=False),
        pa.field("asset", pa.string(), nullable=False),
        pa.field("asset_id", pa.string()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error", pa.string()),
        pa.field("seconds", pa.float64(), nullable=False),
        pa.field("edits", pa.list_(pa.string())),
        pa.field(
            "stages",
            pa.list_(
                pa.struct(
                    [("stage", pa.string()), ("key", pa.string()), ("status", pa.string()), ("seconds", pa.float64())]
                )
            ),
        ),
        pa.field("outputs", pa.string()),  # JSON: artifact noun -> URI, per-edit ones under "edits"
    ]
)


class AssetOutcome(BaseModel):
    """What happened to one manifest row."""

    row: int
    asset: str
    asset_id: str | None = None
    status: Literal["completed", "failed"]
    error: str | None = None
    seconds: float = 0.0
    edits: list[str] = Field(default_factory=list)
    stages: list[dict[str, Any]] = Field(default_factory=list)  # {stage, key, status, seconds}, as for `edit`
    outputs: dict[str, Any] = Field(default_factory=dict)

    def line(self) -> str:
        """One line for the terminal."""
        name = self.asset_id or Path(self.asset).name
        if self.status == "failed":
            return f"{name}: failed after {self.seconds:.1f} s: {self.error}"
        counts = {status: sum(s["status"] == status for s in self.stages) for status in ("computed", "cached")}
        return f"{name}: completed in {self.seconds:.1f} s ({counts['computed']} computed, {counts['cached']} cached)"


class BatchSummary(BaseModel):
    manifest: str
    store: str
    started: dt.datetime
    seconds: float
    assets: list[AssetOutcome]
    summary_uri: str | None = None  # the Parquet table in the store
    index_uri: str | None = None  # the HTML index in the store

    @property
    def completed(self) -> int:
        return sum(asset.status == "completed" for asset in self.assets)

    @property
    def failed(self) -> int:
        return sum(asset.status == "failed" for asset in self.assets)

    @property
    def message(self) -> str:
        if self.failed:
            return f"{self.failed} of {len(self.assets)} assets failed"
        return f"all {len(self.assets)} assets completed"

    def to_json(self) -> dict[str, Any]:
        """The CLI's `--json` object for `batch`."""
        return {
            "completed": self.completed,
            "failed": self.failed,
            "assets": [
                {
                    "asset": a.asset,
                    "asset_id": a.asset_id,
                    "row": a.row,
                    "status": a.status,
                    "error": a.error,
                    "stages": a.stages,
                    "outputs": a.outputs,
                }
                for a in self.assets
            ],
            "summary": self.summary_uri,
            "index": self.index_uri,
            "seconds": round(self.seconds, 3),
        }

    def text(self) -> str:
        lines = [f"{self.message} ({self.seconds:.1f} s)"]
        lines += [f"  row {a.row:<4} {a.status:<9} {a.line()}" for a in self.assets]
        lines += [f"summary: {self.summary_uri}", f"index:   {self.index_uri}"]
        return "\n".join(lines)


class BatchFailed(RuntimeError):
    """Some assets failed: the data of the flow's Failed state, carrying the whole summary."""

    def __init__(self, summary: BatchSummary) -> None:
        super().__init__(summary.message)
        self.summary = summary

    def __reduce__(self) -> tuple[Any, ...]:  # pickled with the summary, not with the message
        return (BatchFailed, (self.summary,))


def batch_summary(state: State) -> BatchSummary:
    """The summary from the final state of an `edit_library` run; re-raises when the batch itself broke."""
    value = state.result(raise_on_failure=False)
    if isinstance(value, BatchSummary):
        return value
    if isinstance(value, BatchFailed):
        return value.summary
    if isinstance(value, BaseException):
        raise value
    raise RuntimeError(f"edit-library ended {state.name} without a summary: {state.message}")


def _asset_run_name() -> str:
    entry = runtime_task_run.parameters["entry"]
    return f"row-{entry.row}-{Path(entry.asset).name}"


def _edit_one_asset(
    entry: ManifestEntry, store: str, config: PipelineConfig, seed: int = 0, distributed: bool = False
) -> AssetOutcome | State:
    """One manifest row through `edit_asset` (a subflow). A failure is returned as this task run's Failed state."""
    started = dt.datetime.now(dt.UTC)
    clock = time.perf_counter()
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
    asset_id = _asset_id(entry, store, config)
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


def _asset_id(entry: ManifestEntry, store: str, config: PipelineConfig) -> str | None:
    """The asset id `ingest` gives this file (its name and digest), without running anything."""
    from tasks.ingest import plan

    try:
        return plan(store, entry.asset, config.ingest).asset_id
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
    future.wait()  # the final state from the run itself, not a (possibly older) copy read from the API
    value = future.state.result(raise_on_failure=False)
    if isinstance(value, AssetOutcome):
        return value
    reason = f"{type(value).__name__}: {value}" if isinstance(value, BaseException) else str(future.state.message)
    return AssetOutcome(
        row=entry.row, asset=entry.asset, status="failed", error=" ".join(reason.split()), edits=entry.edits
    )


def absolute_store(store: str) -> str:
    """A local store as an absolute path, so that workers in other folders (or processes) find the same one."""
    return store if "://" in store else str(Path(store).expanduser().resolve())


@flow(name="edit-library", log_prints=True)
def edit_library(
    manifest: str,
    store: str,
    preset: str = "tiny",
    overrides: dict[str, Any] | None = None,
    max_concurrency: int = 2,
    distributed: bool = False,
    seed: int = 0,
) -> BatchSummary:
    """Every asset of `manifest` (CSV, Parquet or YAML) with its edits; at most `max_concurrency` at once.

    `preset` and `overrides` (the mapping a `--config` YAML holds) give the batch's config; each row's
    overrides are merged on top. `distributed`: the GPU stages run as deployments on the `gpu` pool.
    The whole manifest is validated before any work. Ends Failed ("k of n assets failed") when any asset
    failed, with the summary still attached (see `batch_summary`).
    """
    if max_concurrency < 1:
        raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
    started = dt.datetime.now(dt.UTC)
    clock = time.perf_counter()
    store = absolute_store(store)
    manifest = str(Path(manifest).expanduser().resolve())
    base = pipeline_config(preset, overrides)
    entries = read_manifest(manifest, base)
    if distributed:
        from flows.deployments import check_deployments

        check_deployments()
    logger = get_run_logger()
    logger.info(
        "%d assets from %s, %d at a time, store %s; host %s, pid %s, worker %s",
        *(len(entries), manifest, max_concurrency, store),
        *(socket.gethostname(), os.getpid(), os.environ.get(WORKER_ENV, "-")),
    )
    progress = create_progress_artifact(0.0, description=f"assets done of {len(entries)} in {Path(manifest).name}")
    outcomes: list[AssetOutcome] = []
    with _task_runner(store, max_concurrency) as runner:
        futures = {
            runner.submit(
                edit_one_asset,
                {"entry": e, "store": store, "config": e.config(base), "seed": seed, "distributed": distributed},
            ): e
            for e in entries
        }
        for future in as_completed(list(futures)):
            outcome = _outcome(future, futures[future])
            outcomes.append(outcome)
            _announce(f"[batch {len(outcomes)}/{len(entries)}] row {outcome.row}: {outcome.line()}")
            update_progress_artifact(progress, 100.0 * len(outcomes) / len(entries))
    outcomes.sort(key=lambda outcome: outcome.row)
    summary = BatchSummary(
        manifest=manifest, store=store, started=started, seconds=time.perf_counter() - clock, assets=outcomes
    )
    summary = _publish(summary, preset, distributed)
    logger.info("%s; summary %s; index %s", summary.message, summary.summary_uri, summary.index_uri)
    if summary.failed:
        return Failed(message=summary.message, data=BatchFailed(summary))  # type: ignore[return-value]
    return summary


def _task_runner(store: str, max_concurrency: int) -> TaskRunner:
    """One asset at a time in this process; several at once each in a process of its own.

    Not threads: loading a model (diffusers / transformers `from_pretrained`) patches torch's module
    constructors process-wide for a moment, and a model built in another thread then comes out empty.
    """
    if max_concurrency == 1:
        return ThreadPoolTaskRunner(max_workers=1)
    if store.startswith("memory://"):
        raise ValueError("a memory:// store lives in one process: run it with max_concurrency=1")
    threads = max(1, (os.cpu_count() or 1) // max_concurrency)
    return ProcessPoolTaskRunner(max_workers=max_concurrency, initializer=_share_cores, initargs=(threads,))


def _share_cores(threads: int) -> None:
    """In each worker process: its share of the cores, so that concurrent assets do not oversubscribe them."""
    import torch

    os.environ["OMP_NUM_THREADS"] = str(threads)  # OpenMP libraries loaded later (reconstruction, metrics)
    torch.set_num_threads(threads)


def _announce(line: str) -> None:
    # stderr, so that stdout stays for --json; one line per finished asset.
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _publish(summary: BatchSummary, preset: str, distributed: bool) -> BatchSummary:
    """Write the summary table and HTML index to the store; add the Prefect table and link artifacts."""
    store = ArtifactStore(summary.store)
    config = {"started": summary.started.isoformat(), "preset": preset, "distributed": distributed}
    key = artifact_key("batch", BATCH_CODE_VERSION, config, {"manifest": file_digest(summary.manifest)})
    metadata = {"manifest": summary.manifest, "completed": summary.completed, "failed": summary.failed, **config}
    with store.write(key, stage="batch", metadata=metadata) as writer:
        writer.table("summary", summary_table(summary))
        writer.file("index", html_index(summary).encode(), filename="index.html")
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
    create_link_artifact(link=str(summary.index_uri), link_text="HTML index of the batch", description=summary.message)
    return summary


def summary_table(summary: BatchSummary) -> pa.Table:
    """One row per asset, with the stages as a list of structs and the outputs as JSON."""
    rows = [
        {
            "row": a.row,
            "asset": a.asset,
            "asset_id": a.asset_id,
            "status": a.status,
            "error": a.error,
            "seconds": float(a.seconds),
            "edits": a.edits,
            "stages": [{**s, "seconds": float(s["seconds"])} for s in a.stages],
            "outputs": json.dumps(a.outputs),
        }
        for a in summary.assets
    ]
    return pa.Table.from_pylist(rows, schema=SUMMARY_SCHEMA)


def html_index(summary: BatchSummary) -> str:
    """A page a person opens in a browser: per asset its status, stages, previews and links to every output."""

    def link(uri: str, text: str) -> str:
        return f'<a href="{html.escape(uri)}">{html.escape(text)}</a>'

    def image(uri: str) -> str:
        return f'<img src="{html.escape(uri)}" alt="" loading="lazy">'

    sections = []
    for a in summary.assets:
        previews = [uri for name, uri in a.outputs.items() if name.endswith("preview") and isinstance(uri, str)]
        links = [link(uri, name) for name, uri in a.outputs.items() if isinstance(uri, str)]
        edits = []
        for edit in a.outputs.get("edits", []):
            items = {name: uri for name, uri in edit.items() if name != "prompt"}
            edits.append(
                f"<h3>{html.escape(edit['prompt'])}</h3>"
                + "".join(image(uri) for name, uri in items.items() if name.endswith("preview"))
                + "<p>"
                + " &middot; ".join(link(uri, name) for name, uri in items.items())
                + "</p>"
            )
        stages = " &middot; ".join(
            f"{html.escape(s['stage'])} <span class={html.escape(s['status'])}>{html.escape(s['status'])}</span>"
            f" {s['seconds']:.1f} s"
            for s in a.stages
        )
        error = f"<p class=failed>{html.escape(a.error)}</p>" if a.error else ""
        sections.append(
            f"<section id=row-{a.row}><h2>row {a.row}: {html.escape(a.asset_id or Path(a.asset).name)}"
            f" <span class={a.status}>{a.status}</span></h2>"
            f"<p>{link(Path(a.asset).as_uri() if os.path.isabs(a.asset) else a.asset, a.asset)} ({a.seconds:.1f} s)</p>"
            f"{error}<p>{stages}</p>{''.join(image(uri) for uri in previews)}"
            f"<p>{' &middot; '.join(links)}</p>{''.join(edits)}</section>"
        )
    title = f"DreamEdit3D batch {summary.started:%Y-%m-%d %H:%M} UTC: {summary.message}"
    return (
        "<!doctype html><html><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;margin:2em} img{height:160px;margin:4px;image-rendering:pixelated}"
        " .failed{color:#b00020} .completed,.computed{color:#1b5e20} .cached{color:#555}"
        "</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>manifest {html.escape(summary.manifest)} &middot; store "
        f"{html.escape(summary.store)} &middot; {summary.completed} completed, {summary.failed} failed, "
        f"{summary.seconds:.1f} s</p>{''.join(sections)}</body></html>\n"
    )
