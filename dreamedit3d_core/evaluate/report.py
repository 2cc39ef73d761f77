"""A self-contained HTML report (images inlined as PNG data URLs): open it anywhere, send it as one file."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image


def png_data_url(image: np.ndarray | bytes) -> str:
    if isinstance(image, np.ndarray):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        image = buffer.getvalue()
    return "data:image/png;base64," + base64.b64encode(image).decode("ascii")


def html_report(
    title: str,
    figures: Sequence[tuple[str, np.ndarray | bytes]],
    metrics: Mapping[str, object],
    notes: Sequence[str] = (),
) -> str:
    """Figures (caption, image) top to bottom, then the metrics as a table, then notes."""
    rows = "\n".join(
        f"<tr><th>{html.escape(str(name))}</th><td>{html.escape(_format(value))}</td></tr>"
        for name, value in metrics.items()
    )
    blocks = "\n".join(
        f'<figure><img src="{png_data_url(image)}" alt="{html.escape(caption)}"><figcaption>{html.escape(caption)}'
        "</figcaption></figure>"
        for caption, image in figures
    )
    note_items = "".join(f"<li>{html.escape(note)}</li>" for note in notes)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
figure {{ margin: 1.5em 0; }} img {{ max-width: 100%; image-rendering: pixelated; border: 1px solid #ddd; }}
table {{ border-collapse: collapse; }} th, td {{ padding: 0.3em 0.8em; border-bottom: 1px solid #eee; text-align: left; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
{blocks}
<h2>Metrics</h2><table>{rows}</table>
{f"<h2>Notes</h2><ul>{note_items}</ul>" if note_items else ""}
</body></html>
"""


def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)
