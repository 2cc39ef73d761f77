"""The per-edit report: one self-contained HTML page (see page.py): before and after in 3D, the pictures, the
metrics in words. Open it anywhere, send it as one file."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import numpy as np

from dreamedit3d_core.evaluate.page import VIEWER_MISSING, figure, page, side_by_side, view
from dreamedit3d_core.evaluate.verdict import Verdict


# What each metric measures and what good looks like, in words, for the report's readers.
METRIC_MEANINGS: dict[str, tuple[str, str]] = {
    "prompt": ("the edit prompt", ""),
    "verdict": ("did the edit land? (applied, partly applied, not applied)", "applied"),
    "verdict_reason": ("the numbers behind the verdict", ""),
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
    "edit_colour": ("the colour the prompt asks for", ""),
    "edited_colour_share": ("share of the edited parts now in the asked colour",
                            "closer to 1 means the colour change took; near 0 means it did not"),
    "edited_colour_share_before": ("share of the edited parts in the asked colour before the edit",
                                   "for comparison: usually near 0"),
    "isolation_before_invert": ("tokens' attention inside their own part, before phase 1 (share)",
                                "higher is better: each token looks at its own part"),
    "isolation_after_invert": ("tokens' attention inside their own part, after phase 1 (share)",
                               "higher than before phase 1 is good"),
    "isolation_before_finetune": ("tokens' attention inside their own part, before phase 2 (share)", ""),
    "isolation_after_finetune": ("tokens' attention inside their own part, after phase 2 (share)",
                                 "higher is better; low values mean an edit may leak onto other parts"),
}
# The few numbers a person checks first, in this order (the gallery shows these; the report shows all).
HEADLINE_METRICS = ("verdict", "edited_colour_share", "preserved_psnr", "edited_silhouette_iou", "f_score", "consistency_psnr")


def html_report(
    title: str,
    figures: Sequence[tuple[str, np.ndarray | bytes]],
    metrics: Mapping[str, object],
    notes: Sequence[str] = (),
    *,
    before_after: Sequence[tuple[str, bytes, np.ndarray | bytes]] = (),
    viewer_js: str | None = None,
    verdict: Verdict | None = None,
    preset: str | None = None,
) -> str:
    """The verdict and the preset on top; before and after side by side (per side: a title, its GLB, and a
    picture shown when there is no 3D viewer; the 3D views turn together), then the figures (caption, image)
    top to bottom, the metrics in words, and the notes."""
    cards = [
        (side, view(f"viewer-{index}", side, glb, picture, viewer_js, linked=True))
        for index, (side, glb, picture) in enumerate(before_after)
    ]
    note_items = "".join(f"<li>{html.escape(note)}</li>" for note in notes)
    body = verdict_line(verdict, preset)
    if cards:
        hint = "drag either to turn both, scroll to zoom" if viewer_js else VIEWER_MISSING
        controls = (
            '<p class=controls><button id="linked-pause">pause</button><button id="linked-parts">part colours</button></p>'
            if viewer_js and len(cards) > 1 else ""
        )  # fmt: skip
        body += f"<h2>Before and after</h2><p class=note>{html.escape(hint)}</p>{controls}{side_by_side(cards)}\n"
    body += "\n".join(figure(caption, image) for caption, image in figures)
    body += f"\n<h2>Metrics</h2>{metrics_table(metrics)}\n"
    if note_items:
        body += f"<h2>Notes</h2><ul>{note_items}</ul>\n"
    return page(title, body, viewer_js, uses_viewer=bool(cards))


def verdict_line(verdict: Verdict | None, preset: str | None = None) -> str:
    """`verdict: applied (62% of the edited parts in purple, ...)` in its colour, and the preset that made it."""
    line = ""
    if verdict is not None:
        css = "verdict-" + "".join(c if c.isalnum() else "-" for c in verdict.label).replace("--", "-")
        line += f'<p class="verdict {css}"><b>verdict: {html.escape(verdict.label)}</b> ({html.escape(verdict.reason)})</p>'
    if preset:
        line += f"<p class=note>preset <b>{html.escape(preset)}</b></p>"
    return line


def metrics_table(metrics: Mapping[str, object], names: Sequence[str] | None = None) -> str:
    """Metrics in words: what each measures, its value, what good looks like (only `names`, when given)."""
    chosen = [name for name in (names if names is not None else metrics) if name in metrics]
    rows = "\n".join(
        f"<tr><th>{html.escape(METRIC_MEANINGS.get(str(name), (str(name), ''))[0])}</th>"
        f"<td>{html.escape(_format(metrics[name]))}</td>"
        f"<td class=good>{html.escape(METRIC_MEANINGS.get(str(name), ('', ''))[1])}</td>"
        f"<td><code>{html.escape(str(name))}</code></td></tr>"
        for name in chosen
    )
    return (
        "<table><tr><th>what it measures</th><th>value</th><th>what good looks like</th><th>name</th></tr>\n"
        f"{rows}</table>"
    )


def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)
