"""Parts-world objects as assets: one named part and one matte material per primitive, +Z up."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import trimesh

from dreamedit3d_core.ingest import IngestedAsset, Material, Part, ingest_asset
from dreamedit3d_core.world.config import WorldConfig
from dreamedit3d_core.world.objects import WorldObject, WorldPart


def _linear(srgb: tuple[float, float, float]) -> tuple[float, float, float]:
    """sRGB -> linear: Material.base_color is a linear factor, as in glTF."""
    c = np.asarray(srgb, dtype=np.float64)
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return (float(linear[0]), float(linear[1]), float(linear[2]))


def _pyramid(width: float, height: float) -> trimesh.Trimesh:
    """Square pyramid, base centred on the origin in the z=0 plane, apex on +z."""
    half = 0.5 * width
    vertices = np.array([[-half, -half, 0], [half, -half, 0], [half, half, 0], [-half, half, 0], [0, 0, height]])
    faces = np.array([[0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4], [0, 2, 1], [0, 3, 2]])  # outward, counter-clockwise
    return trimesh.Trimesh(vertices, faces, process=False)


def _primitive(part: WorldPart, config: WorldConfig) -> trimesh.Trimesh:
    """The part's mesh with its bounding box centred on the origin."""
    width, depth, height = part.extents
    if part.shape == "cube":
        return trimesh.creation.box(extents=part.extents)
    if part.shape == "sphere":
        return trimesh.creation.icosphere(subdivisions=config.sphere_subdivisions, radius=0.5 * width)
    if part.shape == "cylinder":
        return trimesh.creation.cylinder(radius=0.5 * width, height=height, sections=config.segments)
    if part.shape == "cone":
        mesh = trimesh.creation.cone(radius=0.5 * width, height=height, sections=config.segments)
        mesh.apply_translation((0.0, 0.0, -0.5 * height))
        return mesh
    if part.shape == "torus":
        tube = 0.5 * depth
        mesh = trimesh.creation.torus(
            major_radius=0.5 * width - tube,
            minor_radius=tube,
            major_sections=config.segments,
            minor_sections=max(8, config.segments // 2),
        )
        # the ring's axis from z to y: (x, y, z) -> (x, -z, y)
        mesh.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, (1.0, 0.0, 0.0)))
        return mesh
    if part.shape == "pyramid":
        mesh = _pyramid(width, height)
        mesh.apply_translation((0.0, 0.0, -0.5 * height))
        return mesh
    raise ValueError(f"unknown shape {part.shape!r}")


STRIPES = 5  # bands of colour up a striped part, each followed by a white one half as wide


def stripes_texture(rgb: tuple[float, float, float], size: int = 64) -> np.ndarray:
    """(size, 8, 3) uint8 sRGB: horizontal bands of `rgb` (two thirds) and white (one third), row 0 at the top."""
    v = 1.0 - (np.arange(size) + 0.5) / size  # texture rows top to bottom -> v from 1 down to 0
    coloured = (v * STRIPES) % 1.0 < 2.0 / 3.0
    colour = np.round(np.asarray(rgb) * 255).astype(np.uint8)
    rows = np.where(coloured[:, None], colour[None, :], np.uint8(255))  # (size, 3)
    return np.ascontiguousarray(np.repeat(rows[:, None, :], 8, axis=1))


def _height_uvs(vertices: np.ndarray) -> np.ndarray:
    """(N, 2) UVs whose v runs from the part's bottom (0) to its top (1): bands of a texture circle the part."""
    z = vertices[:, 2]
    v = (z - z.min()) / max(float(np.ptp(z)), 1e-9)
    return np.stack([np.full_like(v, 0.5), v], axis=1).astype(np.float32)


def to_asset(obj: WorldObject, config: WorldConfig | None = None) -> IngestedAsset:
    """The object as an (unnormalised, +Z up) asset: part i is named by its shape and uses material i."""
    config = config or WorldConfig()
    yaw = np.radians(obj.yaw_deg)
    rotation = np.array([[np.cos(yaw), -np.sin(yaw), 0.0], [np.sin(yaw), np.cos(yaw), 0.0], [0.0, 0.0, 1.0]])
    parts, materials = [], []
    for index, part in enumerate(obj.parts):
        mesh = _primitive(part, config)
        vertices = (np.asarray(mesh.vertices) + np.asarray(part.centre)) @ rotation.T  # (N, 3)
        faces = np.asarray(mesh.faces, dtype=np.int32)
        striped = part.pattern == "striped"
        parts.append(
            Part(
                name=part.shape,
                vertices=vertices.astype(np.float32),
                faces=faces,
                face_materials=np.full(len(faces), index, dtype=np.int32),
                uvs=_height_uvs(np.asarray(mesh.vertices)) if striped else None,
            )
        )
        if striped:
            material = Material(f"striped {part.colour}", (1.0, 1.0, 1.0, 1.0), 0.0, config.roughness, stripes_texture(part.rgb))
        else:
            material = Material(name=part.colour, base_color=(*_linear(part.rgb), 1.0), metallic=0.0, roughness=config.roughness)
        materials.append(material)
    return IngestedAsset(parts=parts, materials=materials, source="world_object.glb")


def write_world_asset(obj: WorldObject, path: Path | str, config: WorldConfig | None = None) -> Path:
    """Write the object as a GLB file (glTF's +Y up) that `dreamedit3d ingest` / `edit` can read."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(to_asset(obj, config).to_glb())
    return path


def world_asset(obj: WorldObject, config: WorldConfig | None = None) -> IngestedAsset:
    """The object exactly as the ingest stage gives it from `write_world_asset`'s GLB (normalised to the
    unit sphere, colours as the glTF reader rounds them): it goes through that very file and reader."""
    with tempfile.TemporaryDirectory(prefix="dreamedit3d-world-") as tmp:
        return ingest_asset(write_world_asset(obj, Path(tmp) / "world_object.glb", config))
