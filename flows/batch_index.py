"""The batch summary as an HTML page a person opens in a browser."""

from __future__ import annotations

import html
import os
from pathlib import Path

from flows.batch_models import BatchSummary


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
