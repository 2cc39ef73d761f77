"""The normalised asset: parts with their geometry and materials, and the folder it writes itself to.

Folder layout (read by `IngestedAsset.read` and by the Blender scene script, which uses only numpy and
the standard library, so nothing here is pickled):

    asset.glb        the normalised asset as glTF 2.0 (+Y up as glTF requires), one node per part
    scene.json       parts (id, name, counts), materials (colour factors, texture file), normalisation
    meshes.npz       per part `pNNN_vertices` (N, 3) float32, `pNNN_faces` (F, 3) int32,
                     `pNNN_face_materials` (F,) int32, optional `pNNN_uvs` (N, 2) float32 and
                     `pNNN_colors` (N, 4) uint8; load with np.load(allow_pickle=False)
    textures/        one PNG per textured material

Coordinates are the normalised frame (Blender world axes, +Z up); UVs have their origin at the bottom-left
of the texture (OpenGL, OBJ and Blender convention); texture arrays are stored top row first.
"""

from __future__ import annotations

import io
import json
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from dreamedit3d_core.ingest.glb import asset_to_glb

SCENE_FORMAT = "dreamedit3d-asset"
SCENE_VERSION = 1


class AssetError(ValueError):
    """An input file that cannot be ingested; the message names the file and the problem."""


@dataclass
class Material:
    """A metallic-roughness material (the glTF model): colour = base_color * texture(uv) * vertex colour."""

    name: str
    base_color: tuple[float, float, float, float] = (0.8, 0.8, 0.8, 1.0)  # linear RGBA factor
    metallic: float = 0.0
    roughness: float = 0.5
    texture: np.ndarray | None = None  # (H, W, 3 or 4) uint8 sRGB, row 0 = top of the image


@dataclass
class Part:
    """One named piece of the asset (a glTF node, an OBJ object, a whole PLY or STL file)."""

    name: str
    vertices: np.ndarray  # (N, 3) float32
    faces: np.ndarray  # (F, 3) int32, counter-clockwise seen from outside
    face_materials: np.ndarray  # (F,) int32 indices into IngestedAsset.materials
    uvs: np.ndarray | None = None  # (N, 2) float32, origin bottom-left
    colors: np.ndarray | None = None  # (N, 4) uint8 sRGB vertex colours

    def with_faces(self, keep: np.ndarray, name: str | None = None) -> Part:
        """The part with only the faces where `keep` (F,) holds, its unused vertices removed."""
        used, remap = np.unique(self.faces[keep], return_inverse=True)
        return Part(
            name=self.name if name is None else name,
            vertices=self.vertices[used],
            faces=remap.reshape(-1, 3).astype(np.int32),  # (3F,) -> (F, 3)
            face_materials=self.face_materials[keep],
            uvs=None if self.uvs is None else self.uvs[used],
            colors=None if self.colors is None else self.colors[used],
        )

    def face_areas(self) -> np.ndarray:
        corners = self.vertices[self.faces].astype(np.float64)  # (F, 3, 3)
        cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        return 0.5 * np.linalg.norm(cross, axis=1)


@dataclass
class IngestedAsset:
    """A normalised asset: part i has part_id i, the id the render stage writes into its part-id pass."""

    parts: list[Part]
    materials: list[Material]
    source: str  # the input file's name
    normalization: np.ndarray = field(default_factory=lambda: np.eye(4))  # (4, 4) source world -> here
    warnings: list[str] = field(default_factory=list)

    def parts_table(self) -> dict[str, list]:
        table: dict[str, list] = {
            "part_id": [],
            "name": [],
            "num_vertices": [],
            "num_faces": [],
            "surface_area": [],
            "bbox_min": [],
            "bbox_max": [],
            "material": [],
        }
        for part_id, part in enumerate(self.parts):
            areas = part.face_areas()
            # a part with several materials is listed under the one covering most of its surface
            per_material = np.bincount(part.face_materials, weights=areas, minlength=len(self.materials))
            table["part_id"].append(part_id)
            table["name"].append(part.name)
            table["num_vertices"].append(int(len(part.vertices)))
            table["num_faces"].append(int(len(part.faces)))
            table["surface_area"].append(float(areas.sum()))
            table["bbox_min"].append([float(x) for x in part.vertices.min(axis=0)])
            table["bbox_max"].append([float(x) for x in part.vertices.max(axis=0)])
            table["material"].append(self.materials[int(np.argmax(per_material))].name)
        return table

    def mesh_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All parts as one mesh: vertices (N, 3) float64, faces (F, 3) int64, part id of each face (F,)."""
        vertices, faces, part_ids, offset = [], [], [], 0
        for part_id, part in enumerate(self.parts):
            vertices.append(part.vertices.astype(np.float64))
            faces.append(part.faces.astype(np.int64) + offset)
            part_ids.append(np.full(len(part.faces), part_id, dtype=np.int64))
            offset += len(part.vertices)
        return np.concatenate(vertices), np.concatenate(faces), np.concatenate(part_ids)

    def to_glb(self, frame: Literal["normalised", "source"] = "normalised") -> bytes:
        """The asset as GLB: in the normalised frame, or where its source file had it (`frame="source"`)."""
        return asset_to_glb(self, frame)

    def write(self, folder: Path, *, overwrite: bool = False) -> Path:
        """Write asset.glb, scene.json, meshes.npz and textures/ to `folder`, all or nothing."""
        folder = Path(folder)
        if folder.exists() and any(folder.iterdir()) and not overwrite:
            raise FileExistsError(f"{folder} exists and is not empty (pass overwrite=True to replace it)")
        folder.parent.mkdir(parents=True, exist_ok=True)
        # stage beside the target and rename, so a failure never leaves a half-written asset folder
        staging = folder.parent / f".{folder.name}.staging-{uuid.uuid4().hex[:8]}"
        try:
            staging.mkdir()
            self._write_files(staging)
            if folder.exists():
                trash = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
                folder.rename(trash)
                staging.rename(folder)
                shutil.rmtree(trash)
            else:
                staging.rename(folder)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
        return folder

    def _write_files(self, folder: Path) -> None:
        (folder / "asset.glb").write_bytes(self.to_glb())
        materials = []
        for index, material in enumerate(self.materials):
            texture_file = None
            if material.texture is not None:
                texture_file = f"textures/material_{index:03d}.png"
                (folder / "textures").mkdir(exist_ok=True)
                Image.fromarray(material.texture).save(folder / texture_file)
            materials.append(
                {
                    "name": material.name,
                    "base_color": [float(c) for c in material.base_color],
                    "metallic": float(material.metallic),
                    "roughness": float(material.roughness),
                    "texture": texture_file,
                }
            )
        arrays: dict[str, np.ndarray] = {}
        parts = []
        for part_id, part in enumerate(self.parts):
            key = f"p{part_id:03d}"
            arrays[f"{key}_vertices"] = part.vertices.astype(np.float32)
            arrays[f"{key}_faces"] = part.faces.astype(np.int32)
            arrays[f"{key}_face_materials"] = part.face_materials.astype(np.int32)
            if part.uvs is not None:
                arrays[f"{key}_uvs"] = part.uvs.astype(np.float32)
            if part.colors is not None:
                arrays[f"{key}_colors"] = part.colors.astype(np.uint8)
            parts.append(
                {
                    "part_id": part_id,
                    "key": key,
                    "name": part.name,
                    "num_vertices": int(len(part.vertices)),
                    "num_faces": int(len(part.faces)),
                    "has_uvs": part.uvs is not None,
                    "has_colors": part.colors is not None,
                }
            )
        np.savez(folder / "meshes.npz", **arrays)
        scene = {
            "format": SCENE_FORMAT,
            "version": SCENE_VERSION,
            "source": self.source,
            "normalization": self.normalization.tolist(),
            "warnings": list(self.warnings),
            "materials": materials,
            "parts": parts,
        }
        (folder / "scene.json").write_text(json.dumps(scene, indent=1))

    @classmethod
    def read(cls, folder: Path) -> IngestedAsset:
        """Load an asset folder written by `write`."""
        folder = Path(folder)
        scene_file = folder / "scene.json"
        if not scene_file.is_file():
            raise AssetError(f"{folder}: not an asset folder (no scene.json)")
        scene = json.loads(scene_file.read_text())
        if scene.get("format") != SCENE_FORMAT or scene.get("version") != SCENE_VERSION:
            raise AssetError(f"{scene_file}: unknown format {scene.get('format')!r} v{scene.get('version')!r}")
        materials = []
        for entry in scene["materials"]:
            texture = None
            if entry["texture"] is not None:
                texture = np.asarray(Image.open(io.BytesIO((folder / entry["texture"]).read_bytes())))
            materials.append(
                Material(
                    name=entry["name"],
                    base_color=tuple(entry["base_color"]),
                    metallic=entry["metallic"],
                    roughness=entry["roughness"],
                    texture=texture,
                )
            )
        parts = []
        with np.load(folder / "meshes.npz", allow_pickle=False) as arrays:
            for entry in scene["parts"]:
                key = entry["key"]
                parts.append(
                    Part(
                        name=entry["name"],
                        vertices=arrays[f"{key}_vertices"],
                        faces=arrays[f"{key}_faces"],
                        face_materials=arrays[f"{key}_face_materials"],
                        uvs=arrays[f"{key}_uvs"] if entry["has_uvs"] else None,
                        colors=arrays[f"{key}_colors"] if entry["has_colors"] else None,
                    )
                )
        return cls(
            parts=parts,
            materials=materials,
            source=scene["source"],
            normalization=np.array(scene["normalization"], dtype=np.float64),
            warnings=list(scene["warnings"]),
        )
