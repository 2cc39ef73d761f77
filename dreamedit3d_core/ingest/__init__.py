"""Ingest stage: read a 3D file, refuse bad input, normalise it (centred, unit bounding sphere, +Z up)."""

from dreamedit3d_core.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "asset": ("AssetError", "IngestedAsset", "Material", "Part"),
        "examples": ("make_example_asset",),
        "config": ("DEFAULT_UP_AXIS", "SUPPORTED_SUFFIXES", "IngestConfig"),
        "ingest": ("ingest_asset", "up_rotation"),
        "source_files": ("source_files",),
        "reference_resolver": ("SourceFile",),
    },
)
