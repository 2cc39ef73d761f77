"""Stage `ingest`: a 3D file in, the normalised asset folder and its parts table out."""

from __future__ import annotations

from pathlib import Path

from dreamedit3d_core.ingest import IngestedAsset
from dreamedit3d_core.ingest.isolated import ingest_isolated
from dreamedit3d_core.ingest.source_files import source_files
from storage import ascii_slug, file_digest
from tasks.artifacts import ASSET, PARTS
from tasks.running import StageInputs, StageOutputs


def asset_id_for(source: Path, digest: str) -> str:
    """Readable and unique: the file's stem as an ASCII slug (accents dropped, other letters and marks as '-';
    the file's own name is kept where it is shown) and the start of its content digest. Ids go into paths and
    keys, which take ASCII only (Prefect's artifact keys among them)."""
    stem = ascii_slug(source.stem, keep="_-") or "asset"
    return f"{stem[:40]}-{digest[:8]}"


def source_asset_id(source: str) -> str:
    """The asset's id: the file's name and the start of its digest."""
    return asset_id_for(Path(source), file_digest(source))


def identify_source(source: str) -> tuple[str, dict[str, str]]:
    """The asset's id, and the digest of every file the reader opens for it, by path relative to the asset."""
    files = source_files(Path(source))
    inputs = {f"file:{file.relative}": file_digest(file.path) for file in files}
    return asset_id_for(Path(source), inputs[f"file:{files[0].relative}"]), inputs


def ingest(inputs: StageInputs, outputs: StageOutputs) -> dict:
    """Read the file in a process of its own (stopped after ingest.timeout_s), writing the asset folder."""
    assets: list[IngestedAsset] = []
    config, reader = inputs.settings("ingest"), {}
    outputs.save(ASSET, lambda folder: assets.append(ingest_isolated(inputs.source, config, folder, reader)))
    asset = assets[0]
    outputs.save(PARTS, asset.parts_table())
    return {
        "source": inputs.source.name,
        "parts": len(asset.parts),
        "warnings": list(asset.warnings),
        "reader_peak_rss_bytes": reader["peak_rss_bytes"],
    }
