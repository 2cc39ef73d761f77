"""The reconstruct stage's artifact: a textured triangle mesh, and its GLB form.

Coordinates are the project's world frame (normalised asset, +Z up, Blender axes). glTF's own frame is +Y
up; `glb_bytes(up_axis="y")` writes it that way (as Blender's exporter does), so a glTF importer that
follows the spec (Blender's) puts the mesh back with +Z up.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import trimesh
from PIL import Image

from dreamedit3d_core.geometry.cameras import FLIP_YZ
from dreamedit3d_core.ingest import IngestConfig

# Blender world (+Z up) -> glTF (+Y up): (x, y, z) -> (x, z, -y)
_TO_GLTF = np.linalg.inv(FLIP_YZ)[:3, :3]


_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


# The GLB holds the normalised frame as glTF wants it (+Y up): read it back (ingest, render) without
# normalising it again.
GLB_FRAME = IngestConfig(up_axis="+y", normalize=False)

def _set_buffer_targets(tree: dict) -> None:
    """Declares vertex and index buffer views as such (the glTF validator's BUFFER_VIEW_TARGET_MISSING)."""
    accessors, views = tree.get("accessors", []), tree.get("bufferViews", [])
    for mesh in tree.get("meshes", []):
        for primitive in mesh["primitives"]:
            for accessor in primitive.get("attributes", {}).values():
                views[accessors[accessor]["bufferView"]]["target"] = _ARRAY_BUFFER
            if "indices" in primitive:
                views[accessors[primitive["indices"]]["bufferView"]]["target"] = _ELEMENT_ARRAY_BUFFER


@dataclass
class ReconstructedMesh:
    """A mesh with one base-colour texture; vertices are split along UV seams."""

    vertices: np.ndarray  # (N, 3) float32 world coordinates
    faces: np.ndarray  # (F, 3) int64, counter-clockwise seen from outside
    uvs: np.ndarray  # (N, 2) float32 in [0, 1], origin at the texture's bottom-left
    normals: np.ndarray  # (N, 3) float32 unit vertex normals
    texture: np.ndarray  # (T, T, 3) uint8, row 0 is the top of the image
    info: dict[str, float | int | str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        count = len(self.vertices)
        if self.faces.ndim != 2 or self.faces.shape[1] != 3 or len(self.faces) == 0:
            raise ValueError(f"faces must be a non-empty (F, 3) array, got shape {self.faces.shape}")
        if self.faces.min() < 0 or self.faces.max() >= count:
            raise ValueError(f"face indices must lie in [0, {count}), got [{self.faces.min()}, {self.faces.max()}]")
        if self.uvs.shape != (count, 2) or self.normals.shape != (count, 3):
            raise ValueError(f"uvs {self.uvs.shape} and normals {self.normals.shape} must match {count} vertices")
        lengths = np.linalg.norm(self.normals, axis=1)
        if not np.all(np.abs(lengths - 1.0) < 1e-3):
            raise ValueError(
                f"normals must have unit length (glTF requires it), got lengths in [{lengths.min()}, {lengths.max()}]"
            )
        if self.texture.ndim != 3 or self.texture.shape[2] != 3 or self.texture.dtype != np.uint8:
            raise ValueError(f"texture must be (T, T, 3) uint8, got {self.texture.shape} {self.texture.dtype}")

    def to_trimesh(self, up_axis: Literal["y", "z"] = "z") -> trimesh.Trimesh:
        """A trimesh with a PBR material (base colour texture, not metallic, fully rough)."""
        rotation = _TO_GLTF if up_axis == "y" else np.eye(3)
        material = trimesh.visual.material.PBRMaterial(
            name="reconstruction",
            baseColorTexture=Image.fromarray(self.texture),
            baseColorFactor=[255, 255, 255, 255],
            metallicFactor=0.0,
            roughnessFactor=1.0,
        )
        return trimesh.Trimesh(
            vertices=np.asarray(self.vertices, np.float64) @ rotation.T,
            faces=self.faces,
            vertex_normals=np.asarray(self.normals, np.float64) @ rotation.T,
            visual=trimesh.visual.TextureVisuals(uv=self.uvs, material=material),
            process=False,
        )

    def glb_bytes(self, up_axis: Literal["y", "z"] = "y", unlit: bool = False, unitize_normals: bool = True) -> bytes:
        """glTF 2.0 binary. `unlit` adds KHR_materials_unlit: the texture already holds the views' shading,
        so viewers that honour it show the views' look instead of lighting it a second time.
        `unitize_normals=False` writes the normals as they are: those read back by `from_glb_bytes` already
        went through it once, and unitizing them again can move them by a rounding step."""
        scene = trimesh.Scene()
        scene.add_geometry(self.to_trimesh(up_axis), geom_name="reconstruction", node_name="reconstruction")

        def postprocess(tree: dict) -> None:
            _set_buffer_targets(tree)
            if unlit:
                for material in tree.get("materials", []):
                    material.setdefault("extensions", {})["KHR_materials_unlit"] = {}
                tree["extensionsUsed"] = sorted({*tree.get("extensionsUsed", []), "KHR_materials_unlit"})

        return trimesh.exchange.gltf.export_glb(
            scene, include_normals=True, unitize_normals=unitize_normals, tree_postprocessor=postprocess
        )

    def save_glb(self, path: str | Path, up_axis: Literal["y", "z"] = "y", unlit: bool = False) -> Path:
        path = Path(path)
        path.write_bytes(self.glb_bytes(up_axis, unlit))
        return path

    @classmethod
    def load_glb(cls, path: str | Path, up_axis: Literal["y", "z"] = "y") -> ReconstructedMesh:
        """Reads back a GLB written by `save_glb` (one textured mesh) into world coordinates."""
        return cls.from_glb_bytes(Path(path).read_bytes(), up_axis)

    @classmethod
    def from_glb_bytes(cls, data: bytes, up_axis: Literal["y", "z"] = "y") -> ReconstructedMesh:
        """Reads back a GLB written by `glb_bytes` (one textured mesh) into world coordinates, as it was stored:
        the file's own normals (a mesh loaded whole recomputes them from the faces) and UVs, so that
        `glb_bytes(up_axis, unitize_normals=False)` writes the very same file again."""
        meshes = list(trimesh.exchange.gltf.load_glb(io.BytesIO(data))["geometry"].values())
        if len(meshes) != 1:
            raise ValueError(f"the GLB holds {len(meshes)} meshes, not one")
        mesh = meshes[0]
        visual = mesh.get("visual")
        image = getattr(getattr(visual, "material", None), "baseColorTexture", None)
        if image is None or getattr(visual, "uv", None) is None or mesh.get("vertex_normals") is None:
            raise ValueError("the GLB has no base colour texture with UVs and normals")
        rotation = _TO_GLTF if up_axis == "y" else np.eye(3)
        return cls(
            vertices=(np.asarray(mesh["vertices"], np.float64) @ rotation).astype(np.float32),
            faces=np.asarray(mesh["faces"], np.int64),
            uvs=np.asarray(visual.uv, np.float32),
            normals=(np.asarray(mesh["vertex_normals"], np.float64) @ rotation).astype(np.float32),
            texture=np.asarray(image.convert("RGB")),
        )

    @property
    def trimesh_world(self) -> trimesh.Trimesh:
        """The mesh in world coordinates (+Z up), e.g. for rendering and metrics."""
        return self.to_trimesh("z")
