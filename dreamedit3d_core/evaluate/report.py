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


# What each metric measures and what good looks like, in words, for the report's readers.
METRIC_MEANINGS: dict[str, tuple[str, str]] = {
    "prompt": ("the edit prompt", ""),
    "preserved_psnr": ("kept parts, edited vs source (PSNR, dB)", "higher is better; above about 30 dB they look unchanged"),
    "preserved_ssim": ("kept parts, edited vs source (SSIM)", "closer to 1 is better"),
    "edited_silhouette_iou": ("outline of the edited parts, before vs after (IoU)",
                              "1 for a change of colour or texture; lower when the shape was edited"),
    "consistency_error": ("how much the sampled views disagree in 3D (mean colour error)", "lower is better"),
    "consistency_psnr": ("how well the sampled views agree in 3D (PSNR, dB)", "higher is better"),
    "fidelity_iou": ("the full reconstruction's outline vs the sampled views (IoU)", "closer to 1 is better"),
    "fidelity_psnr": ("the full reconstruction's colours vs the sampled views (PSNR, dB)", "higher is better"),
    "chamfer": ("distance between source and edited surfaces (Chamfer, unit-sphere units)",
                "lower means the geometry was kept; 0 is identical"),
    "f_score": ("share of surface within 0.02 of the other (F-score)", "closer to 1 means the geometry was kept"),
    "clip_status": ("CLIP scores", "computed only with local CLIP weights"),
    "clip_text_image": ("CLIP: the edited views match the prompt", "higher is better"),
    "clip_directional": ("CLIP: the change from source to edit follows the prompt", "higher is better"),
    "reconstruction_preserved_psnr": ("kept parts on the full reconstruction vs source (PSNR, dB)", "higher is better"),
}


def html_report(
    title: str,
    figures: Sequence[tuple[str, np.ndarray | bytes]],
    metrics: Mapping[str, object],
    notes: Sequence[str] = (),
) -> str:
    """Figures (caption, image) top to bottom, then the metrics as a table, then notes."""
    rows = "\n".join(
        f"<tr><th>{html.escape(METRIC_MEANINGS.get(str(name), (str(name), ''))[0])}</th>"
        f"<td>{html.escape(_format(value))}</td><td class=good>{html.escape(METRIC_MEANINGS.get(str(name), ('', ''))[1])}</td>"
        f"<td><code>{html.escape(str(name))}</code></td></tr>"
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
table {{ border-collapse: collapse; }} td.good {{ color: #555; }} th, td {{ padding: 0.3em 0.8em; border-bottom: 1px solid #eee; text-align: left; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
{blocks}
<h2>Metrics</h2><table><tr><th>what it measures</th><th>value</th><th>what good looks like</th><th>name</th></tr>
{rows}</table>
{f"<h2>Notes</h2><ul>{note_items}</ul>" if note_items else ""}
</body></html>
"""


def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)
