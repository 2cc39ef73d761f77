"""The morning gallery: one self-contained HTML page per batch, in the per-edit report's style (see
dreamedit3d_core/evaluate/page.py).

Per asset: the source and each edit side by side in interactive 3D viewers, what the model drew, the
components, the headline metrics in words, and for a failure its error and the command that retries it.
Everything is inlined (the viewer script once, meshes and pictures as data URLs), read from the store here,
so the page works offline, copied anywhere, from an s3:// store and as a Prefect artifact.
"""

from __future__ import annotations

import html
import shlex
from collections.abc import Mapping
from typing import Any

import pyarrow.parquet as pq

from dreamedit3d_core.evaluate.page import VIEWER_MISSING, figure, page, side_by_side, view, viewer_script
from dreamedit3d_core.evaluate.report import HEADLINE_METRICS, metrics_table
from flows.batch_models import AssetOutcome, BatchSummary
from storage import ArtifactStore


def retry_command(summary: BatchSummary, preset: str, command: str | None) -> str:
    """The command that retries the failed rows (completed stages are cached, so only the rest runs)."""
    if command:
        return command
    return shlex.join(["dreamedit3d", "batch", summary.manifest, "--store", summary.store, "--preset", preset])


def html_index(summary: BatchSummary, *, preset: str = "tiny", command: str | None = None, viewer_3d: bool = True) -> str:
    """The gallery page of a finished batch (`command`: the command line that ran it, for the retry hint)."""
    store = ArtifactStore(summary.store)
    viewer_js = viewer_script() if viewer_3d else None
    retry = retry_command(summary, preset, command)
    sections = [_asset_section(store, outcome, viewer_js, retry) for outcome in summary.assets]
    head = (
        f"<p>{summary.completed} completed, {summary.failed} failed, in {summary.seconds:.0f} s &middot; manifest "
        f"<code>{html.escape(summary.manifest)}</code> &middot; store <code>{html.escape(summary.store)}</code></p>"
        + (f"<p>retry the failed rows (completed stages are reused): <pre>{html.escape(retry)}</pre></p>"
           if summary.failed else "")  # fmt: skip
        + f"<p class=note>{'3D views: drag to turn, scroll to zoom.' if viewer_js else html.escape(VIEWER_MISSING)}</p>"
    )
    title = f"DreamEdit3D batch {summary.started:%Y-%m-%d %H:%M} UTC: {summary.message}"
    uses_viewer = viewer_js is not None and any(outcome.status == "completed" for outcome in summary.assets)
    return page(title, head + "\n".join(sections), viewer_js, uses_viewer=uses_viewer)


def _asset_section(store: ArtifactStore, outcome: AssetOutcome, viewer_js: str | None, retry: str) -> str:
    name = outcome.asset_id or outcome.asset.rsplit("/", 1)[-1]
    header = (
        f'<section id="row-{outcome.row}"><h2>row {outcome.row}: {html.escape(name)} '
        f'<span class="{outcome.status}">{outcome.status}</span> ({outcome.seconds:.0f} s)</h2>'
        f"<p class=note>{html.escape(outcome.asset)} &middot; {html.escape(_stages_line(outcome.stages))}</p>"
    )
    if outcome.status == "failed":
        return (
            header + f'<p class="failed">{html.escape(outcome.error or "failed")}</p>'
            f"<p>retry: <pre>{html.escape(retry)}</pre></p></section>"
        )
    outputs = outcome.outputs
    source_glb = _read(store, f"{outputs['asset']}/asset.glb") if "asset" in outputs else None
    cards = [("source", view(f"row-{outcome.row}-source", "source", source_glb, _read(store, outputs.get("renders_preview")), viewer_js))]
    details = []
    for index, edit in enumerate(outputs.get("edits", [])):
        prompt = edit["prompt"]
        viewer = view(
            f"row-{outcome.row}-edit-{index}", prompt, _read(store, edit.get("mesh")), _read(store, edit.get("mesh_preview")), viewer_js
        )
        cards.append((f"edit: {prompt}", viewer))
        drawn = _read(store, edit.get("views_preview"))
        metrics = _metrics(store, edit.get("metrics"))
        details.append(
            f"<h3>{html.escape(prompt)}</h3>"
            + (figure("what the model drew (the sampled views)", drawn, width=640) if drawn else "")
            + (metrics_table(metrics, HEADLINE_METRICS) if metrics else "<p class=note>no metrics</p>")
            + (f'<p class=note>full report in the store: <a href="{html.escape(edit["report"])}">'
               f'{html.escape(edit["report"])}</a></p>' if edit.get("report") else "")  # fmt: skip
        )
    masks = _read(store, outputs.get("masks_preview"))
    tokens = _components(store, outputs.get("components"))
    return (
        header + side_by_side(cards)
        + (figure(f"components: {tokens}" if tokens else "components", masks, width=480) if masks else "")
        + "".join(details) + "</section>"
    )


def _read(store: ArtifactStore, uri: str | None) -> bytes | None:
    """A file of the store by its URI (any fsspec protocol), or None when there is none."""
    if not uri:
        return None
    try:
        return store.fs.cat_file(uri)
    except FileNotFoundError:
        return None


def _rows(store: ArtifactStore, uri: str | None) -> list[dict[str, Any]]:
    """The rows of a Parquet table of the store (none when there is no table)."""
    if not uri:
        return []
    with store.fs.open(uri, "rb") as handle:
        return pq.read_table(handle).to_pylist()


def _metrics(store: ArtifactStore, uri: str | None) -> Mapping[str, Any] | None:
    rows = _rows(store, uri)
    return rows[0] if rows else None


def _components(store: ArtifactStore, uri: str | None) -> str:
    """Which token is which part: `<asset0> = seat, <asset1> = back`."""
    return ", ".join(f"{row['token']} = {row['name']}" for row in _rows(store, uri))


def _stages_line(stages: list[dict[str, Any]]) -> str:
    computed = sum(stage["status"] == "computed" for stage in stages)
    cached = sum(stage["status"] == "cached" for stage in stages)
    failed = [stage["stage"] for stage in stages if stage["status"] == "failed"]
    return f"{computed} stages computed, {cached} cached" + (f", failed: {', '.join(failed)}" if failed else "")
