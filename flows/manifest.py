"""Batch manifests: which assets to edit with which prompts, from CSV, Parquet or YAML.

Every row names an asset (a path relative to the manifest's folder, or a URL) and its edit prompts, and
may override settings for that asset (component groups, initializer words, SAM prompts: any stage
section of the pipeline config). The whole manifest is validated before any work starts; every error
names its row. Relative paths cannot escape the manifest's folder.

CSV: columns `asset`, `edits` (prompts separated by `|`), optional `overrides` (a JSON object).
Parquet: the same columns; `edits` may also be a list column.
YAML: a list of mappings (or `{assets: [...]}`) with `asset`, `edits` (a list) and `overrides`.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dreamedit3d_core.config import PipelineConfig, merge


_EXTRA_FIELDS = "\x00extra"  # where csv.DictReader puts the fields of a row longer than the header


class ManifestError(ValueError):
    """A manifest that cannot be run: the message names the file and the row."""


class ManifestEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    row: int  # 1-based, as a person counts rows (the CSV header is row 0)
    asset: str  # a local absolute path, or a URL
    edits: list[str] = Field(default_factory=list)
    overrides: dict[str, Any] = Field(default_factory=dict)

    def config(self, base: PipelineConfig) -> PipelineConfig:
        """The pipeline config for this asset: the batch's config with this row's overrides merged in."""
        return PipelineConfig.model_validate(merge(base.model_dump(), self.overrides))


def read_manifest(path: str | Path, base: PipelineConfig) -> list[ManifestEntry]:
    """Parse and validate a manifest; raise ManifestError naming every bad row at once."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = _csv_rows(path)
    elif suffix == ".parquet":
        rows = _parquet_rows(path)
    elif suffix in (".yaml", ".yml"):
        rows = _yaml_rows(path)
    else:
        raise ManifestError(f"{path}: unknown manifest format {suffix!r} (use .csv, .parquet or .yaml)")
    if not rows:
        raise ManifestError(f"{path}: the manifest lists no assets")
    entries, errors = [], []
    for number, row in enumerate(rows, start=1):
        try:
            entries.append(_entry(path, number, row, base))
        except (ManifestError, ValidationError, ValueError) as error:
            errors.append(f"row {number}: {' '.join(str(error).split())}")
    if errors:
        raise ManifestError(f"{path}: {len(errors)} bad row(s): " + "; ".join(errors))
    return entries


def _entry(manifest: Path, number: int, row: dict[str, Any], base: PipelineConfig) -> ManifestEntry:
    if row.get(_EXTRA_FIELDS):
        raise ManifestError(f"more fields than the header has columns: {row[_EXTRA_FIELDS]}")
    unknown = set(row) - {"asset", "edits", "overrides", _EXTRA_FIELDS}
    if unknown:
        raise ManifestError(f"unknown column(s) {sorted(map(str, unknown))}; columns are asset, edits, overrides")
    asset = str(row.get("asset") or "").strip()
    if not asset:
        raise ManifestError("no asset given")
    edits = row.get("edits") or []
    if isinstance(edits, str):
        edits = [edit.strip() for edit in edits.split("|") if edit.strip()]
    if not isinstance(edits, list) or not all(isinstance(edit, str) and edit.strip() for edit in edits):
        raise ManifestError("edits must be a list of non-empty prompts (in CSV: prompts separated by '|')")
    edits = [edit.strip() for edit in edits]
    overrides = row.get("overrides") or {}
    if isinstance(overrides, str):
        try:
            overrides = json.loads(overrides)
        except json.JSONDecodeError as error:
            raise ManifestError(f"overrides is not valid JSON: {error}") from None
    if not isinstance(overrides, dict):
        raise ManifestError("overrides must be a mapping of stage settings")
    entry = ManifestEntry(row=number, asset=_resolve_asset(manifest, asset), edits=edits, overrides=overrides)
    entry.config(base)  # validate the merged config now, not when the asset's turn comes
    return entry


def _resolve_asset(manifest: Path, asset: str) -> str:
    parsed = urlparse(asset)
    if parsed.scheme and len(parsed.scheme) > 1:  # a URL (a one-letter scheme is a Windows drive)
        if parsed.scheme != "file":
            raise ManifestError(f"asset {asset!r}: only local files are supported for now (got a {parsed.scheme}:// URL)")
        raise ManifestError(f"asset {asset!r}: a file:// URL is an absolute path; give a path relative to the manifest")
    root = manifest.parent.resolve()
    candidate = Path(asset)
    if candidate.is_absolute():
        raise ManifestError(f"asset {asset!r}: use a path relative to the manifest's folder")
    resolved = (root / candidate).resolve()
    if not resolved.is_relative_to(root):
        raise ManifestError(f"asset {asset!r} escapes the manifest's folder {root}")
    if not resolved.is_file():
        raise ManifestError(f"asset {asset!r} not found (looked for {resolved})")
    return str(resolved)


def _csv_rows(path: Path) -> list[dict[str, Any]]:
    # utf-8-sig: spreadsheets save CSV with a byte-order mark, which would otherwise rename the first column.
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle, restkey=_EXTRA_FIELDS)
        if reader.fieldnames is None or "asset" not in reader.fieldnames:
            raise ManifestError(f"{path}: the CSV needs a header row with an 'asset' column")
        # Empty cells are absent values, but the column is kept: an unknown column is an error in every row.
        return [{name: None if value == "" else value for name, value in row.items()} for row in reader]


def _parquet_rows(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except Exception as error:  # pyarrow raises several kinds for a broken file
        raise ManifestError(f"{path}: not a readable Parquet file: {error}") from None


def _yaml_rows(path: Path) -> list[dict[str, Any]]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ManifestError(f"{path}: not valid YAML: {error}") from None
    if isinstance(document, dict) and "assets" in document:
        document = document["assets"]
    if not isinstance(document, list) or not all(isinstance(row, dict) for row in document):
        raise ManifestError(f"{path}: expected a list of assets (mappings with 'asset' and 'edits')")
    return document
