"""The edit benchmark's reports: the tables of its scores and its pictures.

`table` (a line per row), `per_object` (a line per object and row), `summarise` and `count`; `save_sheet` draws
one picture per object and row under the work folder, `results_sheet` a row's successes and failures beside
the tables.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from world_edit_rows import ROWS

if TYPE_CHECKING:
    from bench_world_edits import Job

PICTURES = "pictures"  # per object and row, under the work folder; the sheets of chosen ones go beside the tables


def save_sheet(job: Job, name: str, edits: Sequence[Any], truths: Sequence[Any], sampled: Sequence[Any], merged: dict) -> None:
    """One picture per object and row: per edit, the answer, the first sample's views, its merged asset."""
    from PIL import Image, ImageDraw

    rows = []
    for e, (edit, prompt, views, _) in enumerate(sampled):
        strip = [np.concatenate(list(truths[e].rgb_white), axis=1), np.concatenate(list(views[0]), axis=1)]
        if (e, 0) in merged:
            strip.append(np.concatenate(list(merged[(e, 0)][1].rgb_white), axis=1))
        rows.append(np.concatenate(strip, axis=0))
    sheet = Image.fromarray(np.concatenate(rows, axis=0))
    sheet = sheet.resize((sheet.width * 2, sheet.height * 2), Image.NEAREST)
    canvas = Image.new("RGB", (sheet.width + 220, sheet.height), "white")
    canvas.paste(sheet, (220, 0))
    draw = ImageDraw.Draw(canvas)
    band = sheet.height // len(rows)
    for e, (edit, prompt, _, _) in enumerate(sampled):
        draw.text((4, e * band + 4), f"{edit.kind}", fill="black")
        for k, label in enumerate(("answer", "sampled views", "merged asset")):
            draw.text((4, e * band + 20 + k * band // 3), label, fill="black")
    path = Path(job.work) / PICTURES / name.replace("/", "_") / f"object_{job.index:03d}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


def results_sheet(results: Sequence[dict[str, Any]], row: str, work: Path, path: Path, count: int = 1, seed: int = 0) -> Path:
    """Successes and failures of one row side by side, drawn at random (seeded), from the per-object pictures:
    per edit the answer, the first sample's views and its merged asset, with the scores."""
    from PIL import Image, ImageDraw

    chosen = [r for r in results if r.get("row") == row and r.get("sample") == 0 and "success" in r and "merged" in r]
    rng = np.random.default_rng(seed)
    picks = []
    for kind in ("recolour", "recolour2", "swap"):  # of each kind of edit, a success and a failure where there are
        for outcome in (True, False):
            pool = [r for r in chosen if r["edit"] == kind and r["success"] == outcome]
            picks += [pool[i] for i in sorted(rng.choice(len(pool), size=min(count, len(pool)), replace=False))]
    bands = []
    for r in picks:
        sheet = Image.open(work / PICTURES / row.replace("/", "_") / f"object_{r['object']:03d}.png").convert("RGB")
        band = (sheet.height) // 3
        e = ["recolour", "recolour2", "swap"].index(r["edit"])
        crop = sheet.crop((220, e * band, sheet.width, (e + 1) * band))
        label = Image.new("RGB", (crop.width + 300, crop.height), "white")
        label.paste(crop, (300, 0))
        draw = ImageDraw.Draw(label)
        m = r["merged"]
        lines = [
            f"object {r['object']}: {'SUCCEEDED' if r['success'] else 'FAILED'}",
            r["prompt"].replace("a photo of ", ""),
            f"asked colour {m['colour_share']:.2f}",
            f"kept {m['kept_psnr']:.1f} dB" if m["kept_psnr"] is not None else "no kept part",
            f"shape IoU {m['shape_iou']:.2f}" if m["shape_iou"] is not None else "",
            "rows: answer, sampled views, merged asset",
        ]
        for k, text in enumerate(lines):
            draw.text((6, 10 + 18 * k), text, fill="black")
        bands.append(label)
    out = Image.new("RGB", (max(b.width for b in bands), sum(b.height for b in bands)), "white")
    y = 0
    for b in bands:
        out.paste(b, (0, y))
        y += b.height
    path.parent.mkdir(parents=True, exist_ok=True)
    out.save(path)
    return path


# ---- tables --------------------------------------------------------------------------------------------------


def summarise(rows: Sequence[dict[str, Any]]) -> str:
    done = [r for r in rows if "success" in r]
    return f"{sum(r['success'] for r in done)}/{len(done)} succeeded"


def _mean(values: Sequence[float | None], digits: int = 2) -> str:
    present = [v for v in values if v is not None]
    return f"{statistics.fmean(present):.{digits}f}" if present else "-"


def count(rows: Sequence[dict[str, Any]], kind: str, key: str = "success") -> str:
    chosen = [r for r in rows if r.get("edit") == kind and key in r]
    if not chosen:
        return "-"
    wins = sum(bool(r[key]) for r in chosen)
    return f"{wins}/{len(chosen)} ({wins / len(chosen):.0%})"


def table(results: Sequence[dict[str, Any]], rows: Sequence[str]) -> str:
    lines = [
        "| row | objects x samples | recolour: succeeded | two-part recolour: succeeded | shape swap: succeeded | asked colour, merged (views) | edited parts vs answer dB, merged (views) | kept PSNR dB, merged (views) | swap IoU, merged (views) | sampling s per edit |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in rows:
        chosen = [r for r in results if r.get("row") == name and "skipped" not in r]
        if not chosen:
            continue
        size = f"{len({r['object'] for r in chosen})} x {max(r.get('sample', 0) for r in chosen) + 1}"
        if ROWS[name].oracle:
            lines.append(
                f"| {ROWS[name].label} | {size} | {count(chosen, 'recolour')} | {count(chosen, 'recolour2')} | {count(chosen, 'swap')} | (foreground shares) | - | - | - | {_mean([r['sample_seconds'] for r in chosen], 1)} |"
            )
            continue

        def both(key: str, digits: int = 2, kinds: Sequence[str] = ("recolour", "recolour2", "swap")) -> str:
            picked = [r for r in chosen if r["edit"] in kinds]
            return f"{_mean([r['merged'].get(key) for r in picked], digits)} ({_mean([r['views'].get(key) for r in picked], digits)})"

        lines.append(
            f"| {ROWS[name].label} | {size} | {count(chosen, 'recolour')} | {count(chosen, 'recolour2')} | {count(chosen, 'swap')} "
            f"| {both('colour_share', kinds=('recolour', 'recolour2'))} | {both('edited_psnr', 1, kinds=('recolour', 'recolour2'))} "
            f"| {both('kept_psnr', 1)} | {both('shape_iou', kinds=('swap',))} "
            f"| {_mean([r['sample_seconds'] for r in chosen], 1)} |"
        )
    return "\n".join(lines)


def per_object(results: Sequence[dict[str, Any]], rows: Sequence[str]) -> str:
    lines = ["| object | caption | row | recolour | two-part recolour | shape swap |", "| --- | --- | --- | --- | --- | --- |"]
    for index in sorted({r["object"] for r in results}):
        for name in rows:
            chosen = [r for r in results if r["object"] == index and r.get("row") == name and "success" in r]
            if not chosen:
                continue

            def wins(kind: str) -> str:
                picked = [r for r in chosen if r["edit"] == kind]
                return f"{sum(r['success'] for r in picked)}/{len(picked)}" if picked else "-"

            lines.append(f"| {index} | {chosen[0]['caption']} | {name} | {wins('recolour')} | {wins('recolour2')} | {wins('swap')} |")
    return "\n".join(lines)
