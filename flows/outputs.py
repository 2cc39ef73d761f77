"""`--out DIR`: each edit's result copied out of the store under a name a person reads, the report beside it.

`chair.glb` edited with "a photo of <asset0> in gold" becomes `DIR/chair__asset0-in-gold.glb` (in the source
file's own frame by default, `--output-frame normalised` for the centred, unit-size copy) and
`DIR/chair__asset0-in-gold.html`. The store keeps its own copies; these are plain files to hand on. Each is
written to a temporary name and renamed, so an interrupted copy never leaves half a file under the real name.
"""

from __future__ import annotations

import os
import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from storage import ArtifactStore, ascii_slug

MAX_SLUG = 60


def slug(text: str) -> str:
    """`a photo of <asset0> in gold` -> `asset0-in-gold`: ASCII letters, digits and hyphens."""
    text = re.sub(r"^\s*a (photo|picture|render) of\s+", "", text, flags=re.IGNORECASE)
    return re.sub("-+", "-", ascii_slug(text).lower())[:MAX_SLUG].rstrip("-") or "edit"


def output_names(asset: str, prompts: Sequence[str]) -> list[str]:
    """`ASSET__EDIT` per prompt, unique (a second prompt with the same words gets `-2`)."""
    stem = slug(Path(asset).stem) if Path(asset).stem else "asset"
    names: list[str] = []
    for prompt in prompts:
        name, n = f"{stem}__{slug(prompt)}", 2
        while name in names:
            name, n = f"{stem}__{slug(prompt)}-{n}", n + 1
        names.append(name)
    return names


def write_outputs(out: Path, asset: str, edits: Sequence[dict[str, Any]], frame: str, store: str) -> list[dict[str, str]]:
    """Copy each edit's mesh (`frame`: "source" or "normalised") and report into `out`; what was written."""
    out.mkdir(parents=True, exist_ok=True)
    artifacts = ArtifactStore(store)
    written = []
    for entry, name in zip(edits, output_names(asset, [e["prompt"] for e in edits]), strict=True):
        files = {"prompt": entry["prompt"]}
        mesh = entry.get("mesh_source_frame" if frame == "source" else "mesh")
        for kind, uri, suffix in (("mesh", mesh, ".glb"), ("report", entry.get("report"), ".html")):
            if uri:
                files[kind] = str(_write(out / f"{name}{suffix}", artifacts.fs.cat_file(uri)))
        written.append(files)
    return written


def _write(path: Path, data: bytes) -> Path:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)
    return path.resolve()


def write_batch_outputs(out: Path, summary: Any) -> dict[str, Any]:
    """A batch's results in `out`: every completed edit as in `write_outputs` (source frame), `summary.csv` (one
    row per edit, plain columns, the files as names beside it) and `index.html` (the gallery, its report links
    to the copies beside it)."""
    import csv

    from flows.batch_index import html_index
    from flows.batch_table import COLUMNS, summary_rows

    copies: dict[tuple[int, str], dict[str, str]] = {}
    for asset in summary.assets:
        if asset.status == "completed":
            edits = asset.outputs.get("edits", [])
            for written in write_outputs(out, asset.asset, edits, "source", summary.store):
                copies[(asset.row, written["prompt"])] = written
    rows = summary_rows(summary)
    links = {}
    for row in rows:
        copy = copies.get((row["row"], row["edit"]), {})
        if row["report"] and copy.get("report"):
            links[row["report"]] = Path(copy["report"]).name
        row.update(mesh=Path(copy["mesh"]).name if copy.get("mesh") else None,
                   report=Path(copy["report"]).name if copy.get("report") else None)  # fmt: skip
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(COLUMNS))
    writer.writeheader()
    writer.writerows(rows)
    table = _write(out / "summary.csv", text.getvalue().encode("utf-8"))
    gallery = html_index(summary, preset=summary.preset or "-", report_links=links)
    index = _write(out / "index.html", gallery.encode())
    return {"folder": str(out.resolve()), "summary": str(table), "index": str(index), "files": len(copies) * 2}
