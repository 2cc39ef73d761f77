"""Write an IngestedAsset as a binary glTF 2.0 file: one node per part, one primitive per material.

glTF is +Y up, so the normalised frame (+Z up) is rotated by -90 degrees about X on the way out; reading
the file back with the default (+Y up) ingest config gives the same coordinates again.

`frame="source"` writes the asset where its source file had it: the normalisation's scale and centring are
undone (its rotation of the file's up axis onto +Z is undone by the same -90 degrees), so a glTF source's
coordinates come back as they were and the result can be dropped next to the original.
"""

from __future__ import annotations

import io
import json
import struct
from typing import TYPE_CHECKING, Literal

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from dreamedit3d_core.ingest.asset import IngestedAsset

_FLOAT, _UNSIGNED_INT = 5126, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


class _BinaryBuffer:
    """The GLB binary chunk under construction: appends 4-byte aligned buffer views."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def add_view(self, payload: bytes, target: int | None = None) -> int:
        self.data.extend(b"\0" * (-len(self.data) % 4))
        view = {"buffer": 0, "byteOffset": len(self.data), "byteLength": len(payload)}
        if target is not None:
            view["target"] = target
        self.data.extend(payload)
        self.views.append(view)
        return len(self.views) - 1

    def add_accessor(self, array: np.ndarray, kind: str, target: int) -> int:
        component = _FLOAT if array.dtype == np.float32 else _UNSIGNED_INT
        accessor = {
            "bufferView": self.add_view(np.ascontiguousarray(array).tobytes(), target),
            "componentType": component,
            "count": int(len(array)),
            "type": kind,
        }
        if kind == "VEC3":  # the spec requires bounds on POSITION
            accessor["min"] = [float(x) for x in array.min(axis=0)]
            accessor["max"] = [float(x) for x in array.max(axis=0)]
        self.accessors.append(accessor)
        return len(self.accessors) - 1


def source_frame(normalization: np.ndarray) -> np.ndarray:
    """(4, 4) normalised frame -> the source's coordinates with its up axis on +Z (scale and centring undone)."""
    scale = float(np.linalg.norm(normalization[:3, 0]))
    undo = np.eye(4) / scale
    undo[:3, 3] = -normalization[:3, 3] / scale
    undo[3, 3] = 1.0
    return undo


def asset_to_glb(asset: IngestedAsset, frame: Literal["normalised", "source"] = "normalised") -> bytes:
    if frame not in ("normalised", "source"):
        raise ValueError(f"frame must be 'normalised' or 'source', got {frame!r}")
    placement = source_frame(asset.normalization) if frame == "source" else np.eye(4)
    binary = _BinaryBuffer()
    images, textures, materials = [], [], []
    for material in asset.materials:
        pbr: dict = {
            "baseColorFactor": [float(c) for c in material.base_color],
            "metallicFactor": float(material.metallic),
            "roughnessFactor": float(material.roughness),
        }
        if material.texture is not None:
            png = io.BytesIO()
            Image.fromarray(material.texture).save(png, format="PNG")
            images.append({"bufferView": binary.add_view(png.getvalue()), "mimeType": "image/png"})
            textures.append({"source": len(images) - 1, "sampler": 0})
            pbr["baseColorTexture"] = {"index": len(textures) - 1}
        materials.append({"name": material.name, "pbrMetallicRoughness": pbr, "doubleSided": True})

    # normalised frame (+Z up) -> glTF (+Y up): (x, y, z) -> (x, z, -y)
    to_gltf = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]], dtype=np.float32)
    meshes, nodes = [], []
    for part in asset.parts:
        vertices = part.vertices if frame == "normalised" else (part.vertices @ placement[:3, :3].T + placement[:3, 3])
        attributes = {
            "POSITION": binary.add_accessor((vertices @ to_gltf.T).astype(np.float32), "VEC3", _ARRAY_BUFFER)
        }
        if part.uvs is not None:
            # glTF puts the UV origin at the top-left of the image
            uvs = np.stack([part.uvs[:, 0], 1.0 - part.uvs[:, 1]], axis=1).astype(np.float32)
            attributes["TEXCOORD_0"] = binary.add_accessor(uvs, "VEC2", _ARRAY_BUFFER)
        if part.colors is not None:  # glTF vertex colours are linear, ours sRGB
            srgb = part.colors.astype(np.float64) / 255.0
            linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
            linear[:, 3] = srgb[:, 3]
            attributes["COLOR_0"] = binary.add_accessor(linear.astype(np.float32), "VEC4", _ARRAY_BUFFER)
        primitives = []
        for material_index in np.unique(part.face_materials):
            faces = part.faces[part.face_materials == material_index].astype(np.uint32)
            indices = binary.add_accessor(faces.reshape(-1), "SCALAR", _ELEMENT_ARRAY_BUFFER)  # (F, 3) -> (3F,)
            primitives.append(
                {"attributes": attributes, "indices": indices, "material": int(material_index), "mode": 4}
            )
        meshes.append({"name": part.name, "primitives": primitives})
        nodes.append({"name": part.name, "mesh": len(meshes) - 1})

    binary.data.extend(b"\0" * (-len(binary.data) % 4))
    document: dict = {
        "asset": {"version": "2.0", "generator": "dreamedit3d ingest"},
        "scene": 0,
        "scenes": [{"name": asset.source, "nodes": list(range(len(nodes)))}],
        "nodes": nodes,
        "meshes": meshes,
        "materials": materials,
        "accessors": binary.accessors,
        "bufferViews": binary.views,
        "buffers": [{"byteLength": len(binary.data)}],
    }
    if images:
        document.update(images=images, textures=textures, samplers=[{}])
    json_chunk = json.dumps(document, separators=(",", ":")).encode("utf-8")
    json_chunk += b" " * (-len(json_chunk) % 4)
    total = 12 + 8 + len(json_chunk) + 8 + len(binary.data)
    return b"".join(
        [
            struct.pack("<4sII", b"glTF", 2, total),
            struct.pack("<I4s", len(json_chunk), b"JSON"),
            json_chunk,
            struct.pack("<I4s", len(binary.data), b"BIN\0"),
            bytes(binary.data),
        ]
    )
