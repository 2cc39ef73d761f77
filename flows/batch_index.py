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
from dreamedit3d_core.evaluate.report import HEADLINE_METRICS, metrics_table, verdict_line
from dreamedit3d_core.evaluate.verdict import Verdict
from flows.batch_models import AssetOutcome, BatchSummary
from storage import ArtifactStore


def retry_command(summary: BatchSummary, preset: str, command: str | None) -> str:
    """The command that retries the failed rows (completed stages are cached, so only the rest runs)."""
    if command:
        return command
    return shlex.join(["dreamedit3d", "batch", summary.manifest, "--store", summary.store, "--preset", preset])


def html_index(
    summary: BatchSummary,
    *,
    preset: str = "world",
    command: str | None = None,
    viewer_3d: bool = True,
    report_links: Mapping[str, str] | None = None,
) -> str:
    """The gallery page of a finished batch (`command`: the command line that ran it, for the retry hint).
    `report_links`: report URI -> the link the page uses (relative to where the page will be); by default a
    report in the same local store is linked relative to the gallery's place in the store."""
    store = ArtifactStore(summary.store)
    viewer_js = viewer_script() if viewer_3d else None
    retry = retry_command(summary, preset, command)
    links = report_links if report_links is not None else {}
    sections = [_asset_section(store, outcome, viewer_js, retry, links) for outcome in summary.assets]
    head = (
        f'<p class="verdict {_verdict_css(summary)}"><b>{html.escape(summary.verdict_line())}</b></p>'
        f"<p>{summary.completed} assets completed, {summary.failed} failed, in {summary.seconds:.0f} s &middot; preset "
        f"<b>{html.escape(preset)}</b> &middot; manifest <code>{html.escape(summary.manifest)}</code> &middot; store "
        f"<code>{html.escape(summary.store)}</code></p>"
        + (f"<p>retry the failed rows (completed stages are reused): <pre>{html.escape(retry)}</pre></p>"
           if any(_retryable(a) for a in summary.assets) else "")  # fmt: skip
        + f"<p class=note>{'3D views: drag to turn, scroll to zoom.' if viewer_js else html.escape(VIEWER_MISSING)}</p>"
    )
    title = f"DreamEdit3D batch {summary.started:%Y-%m-%d %H:%M} UTC: {summary.message}"
    uses_viewer = viewer_js is not None and any(outcome.status == "completed" for outcome in summary.assets)
    return page(title, head + "\n".join(sections), viewer_js, uses_viewer=uses_viewer)


def _verdict_css(summary: BatchSummary) -> str:
    counts = summary.verdict_counts()
    if set(counts) <= {"applied"}:
        return "verdict-applied"
    return "verdict-partly-applied" if counts.get("applied") else "verdict-not-applied"


def _retryable(outcome: AssetOutcome) -> bool:
    """A failure a re-run may fix (a machine fault, an interrupt), not one of the file itself (ingest refused it)."""
    if outcome.status != "failed":
        return False
    return not (outcome.error or "").startswith("ingest:") and outcome.asset_id is not None


def _asset_section(
    store: ArtifactStore, outcome: AssetOutcome, viewer_js: str | None, retry: str, links: Mapping[str, str]
) -> str:
    name = outcome.asset_id or outcome.asset.rsplit("/", 1)[-1]
    verdicts = ", ".join(v for v in outcome.verdicts if v)
    header = (
        f'<section id="row-{outcome.row}"><h2>row {outcome.row}: {html.escape(name)} '
        f'<span class="{outcome.status}">{outcome.status}</span> ({outcome.seconds:.0f} s)'
        + (f" &middot; {html.escape(verdicts)}" if verdicts else "") + "</h2>"
        f"<p class=note>{html.escape(outcome.asset)} &middot; {html.escape(_stages_line(outcome.stages))}</p>"
    )
    if outcome.status == "failed":
        hint = (
            f"<p>retry: <pre>{html.escape(retry)}</pre></p>" if _retryable(outcome)
            else "<p>fix the file (or take it out of the manifest): running again fails the same way.</p>"
        )  # fmt: skip
        return header + f'<p class="failed">{html.escape(outcome.error or "failed")}</p>{hint}</section>'

    outputs = outcome.outputs
    source_glb = _read(store, f"{outputs['asset']}/asset.glb") if "asset" in outputs else None
    cards = [("source", view(f"row-{outcome.row}-source", "source", source_glb, _read(store, outputs.get("renders_preview")), viewer_js))]
    details = []
    for index, edit in enumerate(outputs.get("edits", [])):
        prompt = edit["prompt"]
        viewer = view(
            f"row-{outcome.row}-edit-{index}", prompt, _read(store, edit.get("mesh")), _read(store, edit.get("mesh_preview")), viewer_js
        )
        verdict = _verdict(edit)
        cards.append((f"edit: {prompt}", verdict_line(verdict) + viewer))
        drawn = _read(store, edit.get("views_preview"))
        metrics = _metrics(store, edit.get("metrics"))
        report = edit.get("report")
        link = links.get(report) or (_relative_to_gallery(store, report) if report else None)
        details.append(
            f"<h3>{html.escape(prompt)}</h3>" + verdict_line(verdict)
            + (figure("what the model drew (the sampled views)", drawn, width=640) if drawn else "")
            + (metrics_table(metrics, HEADLINE_METRICS) if metrics else "<p class=note>no metrics</p>")
            + (f'<p class=note><a href="{html.escape(link)}">the full report</a></p>' if link else "")
        )  # fmt: skip
    masks = _read(store, outputs.get("masks_preview"))
    tokens = _components(store, outputs.get("components"))
    return (
        header + side_by_side(cards)
        + (figure(f"components: {tokens}" if tokens else "components", masks, width=480) if masks else "")
        + "".join(details) + "</section>"
    )


def _verdict(edit: Mapping[str, Any]) -> Verdict | None:
    label = edit.get("verdict")
    return Verdict(label, edit.get("verdict_reason") or "") if label else None


def _relative_to_gallery(store: ArtifactStore, uri: str) -> str:
    """A store file's link from the gallery's own place in the store (objects/KEY/VERSION/index.html, as every
    artifact's file): relative, so the store's folder can move, be copied or be served as it is."""
    prefix = store.root_uri.rstrip("/") + "/objects/"
    return "../../" + uri[len(prefix) :] if uri.startswith(prefix) else uri


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
