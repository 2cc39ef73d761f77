"""Ingest stage: read a 3D file, refuse bad input, normalise it (centred, unit bounding sphere, +Z up)."""

from dreamedit3d_core.ingest.asset import AssetError, IngestedAsset, Material, Part
from dreamedit3d_core.ingest.examples import make_example_asset
from dreamedit3d_core.ingest.ingest import DEFAULT_UP_AXIS, SUPPORTED_SUFFIXES, IngestConfig, ingest_asset, up_rotation
from dreamedit3d_core.ingest.source_files import source_files
from dreamedit3d_core.ingest.sources import SourceFile

__all__ = [
    "DEFAULT_UP_AXIS",
    "SUPPORTED_SUFFIXES",
    "AssetError",
    "IngestConfig",
    "IngestedAsset",
    "Material",
    "Part",
    "SourceFile",
    "ingest_asset",
    "make_example_asset",
    "source_files",
    "up_rotation",
]
