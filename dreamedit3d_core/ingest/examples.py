"""A small multi-part demo asset built from boxes: a chair with a seat, four legs and a back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh

from dreamedit3d_core.ingest.asset import IngestedAsset, Material, Part

# (name, material, centre (x, y, z), size (x, y, z)) in metres, +Z up, the chair facing -Y (azimuth 0)
_CHAIR = [
    ("seat", "red_cushion", (0.0, 0.0, 0.47), (0.46, 0.44, 0.06)),
    ("leg_front_left", "dark_wood", (-0.2, -0.19, 0.22), (0.04, 0.04, 0.44)),
    ("leg_front_right", "dark_wood", (0.2, -0.19, 0.22), (0.04, 0.04, 0.44)),
    ("leg_back_left", "dark_wood", (-0.2, 0.19, 0.22), (0.04, 0.04, 0.44)),
    ("leg_back_right", "dark_wood", (0.2, 0.19, 0.22), (0.04, 0.04, 0.44)),
    ("back", "blue_paint", (0.0, 0.2, 0.78), (0.46, 0.04, 0.56)),
]
_MATERIALS = [
    Material(name="red_cushion", base_color=(0.7, 0.08, 0.06, 1.0), metallic=0.0, roughness=0.8),
    Material(name="dark_wood", base_color=(0.2, 0.1, 0.04, 1.0), metallic=0.0, roughness=0.6),
    Material(name="blue_paint", base_color=(0.05, 0.2, 0.65, 1.0), metallic=0.0, roughness=0.4),
]


def example_chair() -> IngestedAsset:
    """The chair as an (unnormalised, +Z up) asset: 6 named parts, 3 materials."""
    names = [m.name for m in _MATERIALS]
    parts = []
    for name, material, centre, size in _CHAIR:
        box = trimesh.creation.box(extents=size)
        parts.append(
            Part(
                name=name,
                vertices=(np.asarray(box.vertices) + np.asarray(centre)).astype(np.float32),
                faces=np.asarray(box.faces, dtype=np.int32),
                face_materials=np.full(len(box.faces), names.index(material), dtype=np.int32),
            )
        )
    return IngestedAsset(parts=parts, materials=list(_MATERIALS), source="example_chair.glb")


def make_example_asset(path: Path | str) -> Path:
    """Write the demo chair as a GLB file (glTF's +Y up, like any other input) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(example_chair().to_glb())
    return path
