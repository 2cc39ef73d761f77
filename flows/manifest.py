"""Batch manifests: which assets to edit with which prompts, from CSV, Parquet or YAML.

Every row names an asset (a path relative to the manifest's folder) and its edit prompts, and may override
the settings an asset may choose (`ASSET_SETTINGS`, the fields marked per-asset on the config classes: its up
axis, render size, components, prompts, seeds, edit kind).
Execution and security settings (executables, devices, timeouts, limits, weights) come only from the
operator's config. The whole manifest is validated before any work starts; every error names its row.
Relative paths cannot escape the manifest's folder, and neither can any file an asset references.
A manifest may sit at a URL (s3://bucket/library/manifest.csv, file://...): the same rules hold there, and its
assets are copied to this machine's cache first (flows/remote_library.py).

CSV: columns `asset`, `edits` (prompts separated by `|`), optional `overrides` (a JSON object).
Parquet: the same columns; `edits` may also be a list column.
YAML: a list of mappings (or `{assets: [...]}`) with `asset`, `edits` (a list) and `overrides`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dreamedit3d_core.asset_settings import asset_paths
from dreamedit3d_core.config import PipelineConfig, merge
from dreamedit3d_core.ingest import AssetError, source_files
from dreamedit3d_core.ingest.limits import nesting_depth
from flows.remote_library import RemoteLibrary, is_url, local_location
from flows.text import read_yaml_file


_EXTRA_FIELDS = "\x00extra"  # where csv.DictReader puts the fields of a row longer than the header

# What one asset of a batch may set for itself: the dotted config paths marked `asset_field(...)` on the config
# classes (dreamedit3d_core/asset_settings.py); a path covers everything under it.
ASSET_SETTINGS = tuple(asset_paths(PipelineConfig))


def check_asset_settings(overrides: Mapping[str, Any], prefix: str = "") -> None:
    """Refuse an override an asset may not make, naming it and what an asset may set."""
    for name, value in overrides.items():
        path = f"{prefix}{name}"
        if path in ASSET_SETTINGS:
            continue
        if isinstance(value, Mapping) and any(allowed.startswith(path + ".") for allowed in ASSET_SETTINGS):
            check_asset_settings(value, path + ".")
            continue
        raise ManifestError(
            f"overrides may not set {path!r}: an asset may set only {', '.join(ASSET_SETTINGS)} "
            "(execution and security settings come from the batch's config)"
        )


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


MAX_MANIFEST_BYTES = 64 << 20  # a manifest lists assets and prompts: 64 MiB is hundreds of thousands of rows
MAX_MANIFEST_ROWS = 10_000  # assets in one manifest: more nights than one; split a larger library
MAX_FIELD_BYTES = 128 << 10  # one cell (the csv module's own limit): a prompt list or a settings mapping
MAX_OVERRIDES_DEPTH = 16  # nesting of a row's settings (stage, section, value: three levels in practice)


def read_manifest(path: str | Path, base: PipelineConfig) -> list[ManifestEntry]:
    """Parse and validate a manifest (a local path, or a URL: see flows/remote_library.py); raise ManifestError naming
    every bad row at once. The entries of a manifest at a URL name local copies of their assets."""
    location = local_location(path)
    library = None
    path = location
    if is_url(location):
        try:
            library = RemoteLibrary(location, max_file_bytes=base.ingest.limits.max_file_bytes)
            path = library.fetch_manifest()
        except FileNotFoundError as error:
            raise ManifestError(str(error)) from None
        except (OSError, ValueError) as error:
            raise ManifestError(f"manifest {location} could not be read: {error}") from None
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path}")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{path}: {path.stat().st_size} bytes; a manifest may have at most {MAX_MANIFEST_BYTES}")
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
    if len(rows) > MAX_MANIFEST_ROWS:
        raise ManifestError(f"{path}: {len(rows):,} rows; a manifest may list at most {MAX_MANIFEST_ROWS:,} assets")
    entries, errors = [], []
    for number, row in enumerate(rows, start=1):
        try:
            entries.append(_entry(path, number, row, base, library))
        except (ManifestError, ValidationError, ValueError) as error:
            errors.append(f"row {number}: {' '.join(str(error).split())}")
    if errors:
        raise ManifestError(f"{location if library else path}: {len(errors)} bad row(s): " + "; ".join(errors))
    return entries


def _entry(
    manifest: Path, number: int, row: dict[str, Any], base: PipelineConfig, library: RemoteLibrary | None = None
) -> ManifestEntry:
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
    for edit in edits:
        if not edit.isprintable():
            raise ManifestError(f"edit {edit!r} holds control characters (a newline, an escape): write it on one line")
    overrides = row.get("overrides") or {}
    if isinstance(overrides, str):
        try:
            overrides = json.loads(overrides)
        except RecursionError:
            raise ManifestError(f"overrides nested more than {MAX_OVERRIDES_DEPTH} levels deep") from None
        except ValueError as error:  # JSONDecodeError, or a number of thousands of digits
            raise ManifestError(f"overrides is not valid JSON: {error}") from None
    if not isinstance(overrides, dict):
        raise ManifestError("overrides must be a mapping of stage settings")
    if nesting_depth(overrides) > MAX_OVERRIDES_DEPTH:
        raise ManifestError(f"overrides nested more than {MAX_OVERRIDES_DEPTH} levels deep")
    check_asset_settings(overrides)
    resolved = _resolve_asset(manifest, asset) if library is None else _fetch_asset(library, asset)
    entry = ManifestEntry(row=number, asset=resolved, edits=edits, overrides=overrides)
    entry.config(base)  # validate the merged config now, not when the asset's turn comes
    return entry


def _resolve_asset(manifest: Path, asset: str) -> str:
    parsed = urlparse(asset)
    if parsed.scheme and len(parsed.scheme) > 1:  # a URL (a one-letter scheme is a Windows drive)
        raise ManifestError(
            f"asset {asset!r}: give a path relative to the manifest's folder, not a {parsed.scheme}:// URL "
            "(a library in a bucket: put the manifest there too, and give its URL)"
        )
    root = manifest.parent.resolve()
    candidate = Path(asset)
    if candidate.is_absolute():
        raise ManifestError(f"asset {asset!r}: use a path relative to the manifest's folder")
    resolved = (root / candidate).resolve()
    if not resolved.is_relative_to(root):
        raise ManifestError(f"asset {asset!r} escapes the manifest's folder {root}")
    if not resolved.is_file():
        raise ManifestError(f"asset {asset!r} not found (looked for {resolved})")
    try:  # the files it references: inside its own folder (the reader's rule), so inside the manifest's too
        source_files(resolved)
    except AssetError as error:
        raise ManifestError(f"asset {asset!r}: {error}") from None
    return str(resolved)


def _fetch_asset(library: RemoteLibrary, asset: str) -> str:
    """The local copy of an asset of a manifest at a URL (with the files it references)."""
    try:
        return str(library.asset(asset))
    except ValueError as error:  # a path leaving the folder, or an AssetError of the reader
        raise ManifestError(f"asset {asset!r}: {error}") from None
    except FileNotFoundError as error:
        raise ManifestError(f"asset {asset!r} {error}") from None
    except OSError as error:
        raise ManifestError(f"asset {asset!r} could not be copied from {library.folder_url}: {error}") from None


def _csv_rows(path: Path) -> list[dict[str, Any]]:
    # utf-8-sig: spreadsheets save CSV with a byte-order mark, which would otherwise rename the first column.
    rows: list[dict[str, Any]] = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle, restkey=_EXTRA_FIELDS)
        try:
            if reader.fieldnames is None or "asset" not in reader.fieldnames:
                raise ManifestError(f"{path}: the CSV needs a header row with an 'asset' column")
            # Empty cells are absent values, but the column is kept: an unknown column is an error in every row.
            for row in reader:
                if len(rows) == MAX_MANIFEST_ROWS:  # one more than allowed is enough to refuse the manifest
                    rows.append({})
                    break
                rows.append({name: None if value == "" else value for name, value in row.items()})
        except UnicodeDecodeError as error:
            raise ManifestError(f"{path}: row {len(rows) + 1}: not UTF-8 text ({error.reason})") from None
        except csv.Error as error:  # e.g. a field larger than the csv module's limit (128 KiB)
            raise ManifestError(f"{path}: row {len(rows) + 1}: {error}") from None
    return rows


def _parquet_rows(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        metadata = parquet.metadata
        # What the file will decode to, from its footer, before anything is decoded: a few kilobytes of
        # repeated values compress to nothing and decode to gigabytes.
        if metadata.num_rows > MAX_MANIFEST_ROWS:
            raise ManifestError(f"{path}: {metadata.num_rows:,} rows; a manifest may list at most {MAX_MANIFEST_ROWS:,} assets")
        groups = [metadata.row_group(i) for i in range(metadata.num_row_groups)]
        decoded = sum(group.total_byte_size for group in groups)
        if decoded > MAX_MANIFEST_BYTES:
            raise ManifestError(f"{path}: decodes to {decoded:,} bytes; a manifest may have at most {MAX_MANIFEST_BYTES:,}")
        values = sum(group.column(c).num_values for group in groups for c in range(group.num_columns))
        if values > MAX_MANIFEST_ROWS * 64:
            raise ManifestError(f"{path}: {values:,} values; at most {MAX_MANIFEST_ROWS * 64:,} in a manifest")
        # text stays dictionary-encoded until each distinct value's size is checked (a value repeated in
        # every row is stored once in the file, but would be decoded once per row)
        text = [column.path for column in parquet.schema if _is_text(column)]
        table = pq.ParquetFile(path, read_dictionary=text).read()
        rows = []
        for batch in table.to_batches(max_chunksize=256):
            for column in batch.columns:
                _check_text_sizes(path, column)
            rows.extend(batch.to_pylist())
        return rows
    except ManifestError:
        raise
    except Exception as error:  # pyarrow raises several kinds for a broken file
        raise ManifestError(f"{path}: not a readable Parquet file: {' '.join(str(error).split())}") from None


def _is_text(column: Any) -> bool:
    return column.physical_type == "BYTE_ARRAY"


def _check_text_sizes(path: Path, array: Any) -> None:
    """Refuse a manifest whose text cells (in lists too) are larger than MAX_FIELD_BYTES, looking at each
    distinct value of dictionary-encoded text once."""
    import pyarrow as pa
    import pyarrow.compute as pc

    while pa.types.is_list(array.type) or pa.types.is_large_list(array.type):
        array = pc.list_flatten(array)
    if pa.types.is_dictionary(array.type):
        array = array.dictionary
    if pa.types.is_string(array.type) or pa.types.is_binary(array.type) or pa.types.is_large_string(array.type):
        longest = pc.max(pc.binary_length(array)).as_py()
        if longest is not None and longest > MAX_FIELD_BYTES:
            raise ManifestError(f"{path}: a cell of {longest:,} bytes; a manifest's cells hold at most {MAX_FIELD_BYTES:,}")


def _yaml_rows(path: Path) -> list[dict[str, Any]]:
    document = read_yaml_file(path, ManifestError)
    if isinstance(document, dict) and "assets" in document:
        document = document["assets"]
    if not isinstance(document, list) or not all(isinstance(row, dict) for row in document):
        raise ManifestError(f"{path}: expected a list of assets (mappings with 'asset' and 'edits')")
    return document
