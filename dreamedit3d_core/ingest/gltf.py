"""glTF 2.0 reader (.glb, .gltf with external or embedded buffers): our structural checks, then trimesh.

The checks refuse what trimesh would read as garbage or zeros: a GLB whose length or chunks disagree with
the file, buffers shorter than they claim, accessors reading past their buffer views, triangle lists whose
index count is not a multiple of 3, and required extensions trimesh cannot decode (Draco, meshopt).
External buffers and images are found and read through `sources.SourceResolver` (never outside the asset's
folder); trimesh gets a resolver that serves only those, so the files read are the ones `source_files` lists.
Parts are the scene's nodes with a mesh (instancing gives one part per node; a node's primitives become
one part with one material per primitive), in node order, with node transforms applied.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import trimesh
from trimesh.util import unique_name

from dreamedit3d_core.ingest.asset import AssetError, Material, Part
from dreamedit3d_core.ingest.sources import SourceFile, SourceResolver

_COMPONENT_BYTES = {5120: 1, 5121: 1, 5122: 2, 5123: 2, 5125: 4, 5126: 4}
_TYPE_COMPONENTS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_UNSUPPORTED_EXTENSIONS = ("KHR_draco_mesh_compression", "EXT_meshopt_compression", "KHR_meshopt_compression")


def _split_glb(path: Path, raw: bytes) -> tuple[dict, bytes | None]:
    if len(raw) < 20:
        raise AssetError(f"{path.name}: truncated GLB ({len(raw)} bytes, shorter than its header)")
    _, version, total = struct.unpack_from("<4sII", raw, 0)
    if version != 2:
        raise AssetError(f"{path.name}: GLB version {version} (only glTF 2.0 is supported)")
    if total != len(raw):
        raise AssetError(f"{path.name}: truncated or padded GLB: header says {total} bytes, file has {len(raw)}")
    json_length, json_type = struct.unpack_from("<I4s", raw, 12)
    if json_type != b"JSON" or 20 + json_length > total:
        raise AssetError(f"{path.name}: corrupt GLB: first chunk is not a complete JSON chunk")
    document = _parse_json(path, raw[20 : 20 + json_length])
    binary = None
    offset = 20 + json_length
    if offset + 8 <= total:
        bin_length, bin_type = struct.unpack_from("<I4s", raw, offset)
        if bin_type == b"BIN\0":
            if offset + 8 + bin_length > total:
                raise AssetError(f"{path.name}: truncated GLB: binary chunk says {bin_length} bytes")
            binary = raw[offset + 8 : offset + 8 + bin_length]
    return document, binary


def _parse_json(path: Path, text: bytes) -> dict:
    try:
        document = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise AssetError(f"{path.name}: not a glTF file (invalid JSON: {error})") from None
    if not isinstance(document, dict) or not str(document.get("asset", {}).get("version", "")).startswith("2"):
        raise AssetError(f"{path.name}: not a glTF 2.0 file (no asset.version 2.x)")
    return document


def _external_uris(document: dict) -> Iterator[tuple[str, int, str]]:
    """(kind, index, uri) of each buffer and image stored in a file of its own (not a data: URI)."""
    for kind in ("buffer", "image"):
        entries = document.get(f"{kind}s")
        for i, entry in enumerate(entries if isinstance(entries, list) else []):
            uri = entry.get("uri") if isinstance(entry, dict) else None
            if isinstance(uri, str) and not uri.startswith("data:"):
                yield kind, i, uri


def _external_files(files: SourceResolver, document: dict) -> dict[str, SourceFile | None]:
    """The file each external URI names (None where missing); refuses URIs outside the asset's folder."""
    return {uri: files.find([uri], files.main, kind, uri=True) for kind, _, uri in _external_uris(document)}


def _document(path: Path, raw: bytes) -> tuple[dict, bytes | None]:
    """The glTF JSON and the GLB binary chunk (None for a .gltf file)."""
    if not raw.strip():
        raise AssetError(f"{path.name}: empty file")
    if raw[:4] == b"glTF":
        return _split_glb(path, raw)
    if path.suffix.lower() == ".glb":
        raise AssetError(f"{path.name}: not a GLB file (it does not start with 'glTF')")
    return _parse_json(path, raw), None


def gltf_references(files: SourceResolver) -> list[SourceFile]:
    """The external buffers and images `read_gltf` opens (those that exist); [] for a file it cannot parse."""
    try:
        document, _ = _document(files.main.path, files.read(files.main))
    except AssetError:
        return []
    return [file for file in _external_files(files, document).values() if file is not None]


def _buffer_sizes(path: Path, document: dict, binary: bytes | None, external: dict[str, bytes | None]) -> list[int]:
    sizes = []
    for i, buffer in enumerate(document.get("buffers", [])):
        uri = buffer.get("uri")
        if uri is None:
            if binary is None:
                raise AssetError(f"{path.name}: buffer {i} refers to a GLB binary chunk the file does not have")
            available = len(binary)
        elif uri.startswith("data:"):
            available = len(base64.b64decode(uri.split(",", 1)[1]))
        else:
            content = external[uri]
            if content is None:
                raise AssetError(f"{path.name}: external buffer {uri!r} not found next to the file")
            available = len(content)
        if available < buffer["byteLength"]:
            raise AssetError(
                f"{path.name}: buffer {i} ({uri or 'GLB binary chunk'}) is truncated: "
                f"byteLength {buffer['byteLength']}, only {available} bytes present"
            )
        sizes.append(int(buffer["byteLength"]))
    return sizes


def check_gltf(files: SourceResolver) -> tuple[dict, list[str]]:
    """Structural checks on the file's bytes and JSON; returns the glTF document and warnings.

    Reads every external buffer and image here, so the files the reader uses do not depend on which of them
    trimesh asks for (it serves them from `files`)."""
    path = files.main.path
    document, binary = _document(path, files.read(files.main))
    external: dict[str, bytes | None] = {
        uri: None if file is None else files.read(file) for uri, file in _external_files(files, document).items()
    }
    warnings = [
        f"{path.name}: image {index} {uri!r} not found next to the file (the material has no texture)"
        for kind, index, uri in _external_uris(document)
        if kind == "image" and external[uri] is None
    ]
    try:
        required = [e for e in document.get("extensionsRequired", []) if e in _UNSUPPORTED_EXTENSIONS]
        if required:
            raise AssetError(f"{path.name}: requires unsupported glTF extension(s) {', '.join(required)}")
        sizes = _buffer_sizes(path, document, binary, external)
        views = document.get("bufferViews", [])
        for i, view in enumerate(views):
            if view.get("byteOffset", 0) + view["byteLength"] > sizes[view["buffer"]]:
                raise AssetError(f"{path.name}: bufferView {i} reaches past the end of buffer {view['buffer']}")
        accessors = document.get("accessors", [])
        for i, accessor in enumerate(accessors):
            if "bufferView" not in accessor or accessor["count"] == 0:
                continue
            view = views[accessor["bufferView"]]
            element = _COMPONENT_BYTES[accessor["componentType"]] * _TYPE_COMPONENTS[accessor["type"]]
            end = accessor.get("byteOffset", 0) + view.get("byteStride", element) * (accessor["count"] - 1) + element
            if end > view["byteLength"]:
                raise AssetError(f"{path.name}: accessor {i} reads past the end of bufferView {accessor['bufferView']}")
        for mesh_index, mesh in enumerate(document.get("meshes", [])):
            for k, primitive in enumerate(mesh["primitives"]):
                mode = primitive.get("mode", 4)
                source = primitive["indices"] if "indices" in primitive else primitive["attributes"]["POSITION"]
                count = accessors[source]["count"]
                if (mode == 4 and count % 3) or (mode in (5, 6) and count < 3):
                    raise AssetError(
                        f"{path.name}: mesh {mesh.get('name', mesh_index)!r} primitive {k} has {count} "
                        "indices, which is not a whole number of triangles (a face with too few indices)"
                    )
    except (KeyError, IndexError, TypeError, ValueError) as error:
        if isinstance(error, AssetError):
            raise
        raise AssetError(f"{path.name}: malformed glTF ({type(error).__name__}: {error})") from None
    return document, warnings


def _srgb_from_linear(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(linear, 1.0 / 2.4) - 0.055)


def _vertex_colors(mesh: trimesh.Trimesh) -> np.ndarray | None:
    """glTF COLOR_0 (linear) as sRGB uint8 RGBA, or None."""
    if isinstance(mesh.visual, trimesh.visual.TextureVisuals):
        raw = mesh.visual.vertex_attributes.get("color")
    else:
        raw = mesh.visual.vertex_colors if mesh.visual.kind == "vertex" else None
    if raw is None or len(raw) != len(mesh.vertices):
        return None
    raw = np.asarray(raw)
    # float colours are 0..1; normalised integers span their type's range
    linear = raw.astype(np.float64) / (np.iinfo(raw.dtype).max if raw.dtype.kind in "ui" else 1.0)
    if linear.shape[1] == 3:
        linear = np.concatenate([linear, np.ones((len(linear), 1))], axis=1)  # (N, 3) -> (N, 4)
    rgba = np.concatenate([_srgb_from_linear(linear[:, :3]), np.clip(linear[:, 3:], 0, 1)], axis=1)
    return np.round(rgba * 255.0).astype(np.uint8)


def _material(mesh: trimesh.Trimesh) -> Material:
    material = getattr(mesh.visual, "material", None)
    if material is None:
        return Material(name="default", base_color=(1.0, 1.0, 1.0, 1.0), metallic=0.0, roughness=0.5)
    if not isinstance(material, trimesh.visual.material.PBRMaterial):
        material = material.to_pbr()
    factor = material.baseColorFactor
    texture = material.baseColorTexture
    if texture is not None:
        texture = np.asarray(texture.convert("RGBA" if "A" in texture.getbands() else "RGB"))
    return Material(
        name=material.name or "material",
        base_color=tuple(float(c) / 255.0 for c in factor) if factor is not None else (1.0, 1.0, 1.0, 1.0),
        metallic=float(material.metallicFactor) if material.metallicFactor is not None else 1.0,  # glTF defaults
        roughness=float(material.roughnessFactor) if material.roughnessFactor is not None else 1.0,
        texture=texture,
    )


class _TrimeshResolver(trimesh.resolvers.Resolver):
    """Hands trimesh the files a glTF's URIs name, found and read through `SourceResolver` only."""

    def __init__(self, files: SourceResolver) -> None:
        self.files = files

    def get(self, key: str) -> bytes:
        file = None if key.startswith("data:") else self.files.find([key], self.files.main, "URI", uri=True)
        if file is None:
            raise FileNotFoundError(f"{self.files.main.relative}: {key!r} not found")
        return self.files.read(file)

    def keys(self) -> list[str]:
        return [file.relative for file in self.files.opened]

    def write(self, name: str, data: bytes | str) -> None:
        raise PermissionError(f"ingest never writes beside the asset ({name!r})")

    def namespaced(self, namespace: str) -> trimesh.resolvers.Resolver:
        raise AssetError(f"{self.files.main.relative}: glTF has no namespaced resources ({namespace!r})")


def read_gltf(files: SourceResolver) -> tuple[list[Part], list[Material], list[str]]:
    path = files.main.path
    document, warnings = check_gltf(files)
    raw = files.read(files.main)
    try:
        scene = trimesh.load(
            io.BytesIO(raw),
            file_type="glb" if raw[:4] == b"glTF" else "gltf",
            resolver=_TrimeshResolver(files),
            force="scene",
            process=False,
        )
    except Exception as error:  # trimesh raises anything from KeyError to struct.error on bad files
        raise AssetError(f"{path.name}: could not read glTF ({type(error).__name__}: {error})") from None

    # trimesh names nodes like this (unique_name over node names in order): map them back to node indices
    nodes = document.get("nodes", [])
    node_index: dict[str, int] = {}
    counts: dict = {}
    for i, node in enumerate(nodes):
        node_index[unique_name(node.get("name", str(i)), node_index, counts=counts)] = i

    owners: dict[str, list[tuple[np.ndarray, trimesh.Trimesh]]] = {}
    for node_name in scene.graph.nodes_geometry:
        transform, geometry_name = scene.graph[node_name]
        mesh = scene.geometry[geometry_name]
        if not isinstance(mesh, trimesh.Trimesh):
            warnings.append(f"{path.name}: skipped non-triangle geometry {geometry_name!r} ({type(mesh).__name__})")
            continue
        # a mesh with several primitives hangs them as children of its node
        owner = scene.graph.transforms.parents[node_name] if mesh.metadata.get("from_gltf_primitive") else node_name
        owners.setdefault(owner, []).append((transform, mesh))
    if not owners:
        raise AssetError(f"{path.name}: no geometry (the scene has no triangle meshes)")

    materials: list[Material] = []
    by_source: dict[int, int] = {}  # id(trimesh material) -> index in `materials`
    by_content: dict[tuple, int] = {}  # primitives often carry equal copies of one glTF material
    parts = []
    for owner in sorted(owners, key=lambda name: (node_index.get(name, len(nodes)), name)):
        index = node_index.get(owner)
        node = nodes[index] if index is not None else {}
        name = node.get("name") or (document["meshes"][node["mesh"]].get("name") if "mesh" in node else owner)
        vertices, faces, face_materials, uvs, colors, offset = [], [], [], [], [], 0
        for transform, mesh in owners[owner]:
            if len(mesh.faces) and (mesh.faces.min() < 0 or mesh.faces.max() >= len(mesh.vertices)):
                raise AssetError(
                    f"{path.name}: node {name!r}: face index {int(mesh.faces.max())} out of range "
                    f"({len(mesh.vertices)} vertices)"
                )
            points = np.asarray(mesh.vertices, dtype=np.float64)
            if not np.isfinite(points).all():
                raise AssetError(f"{path.name}: node {name!r} has non-finite (NaN or infinite) vertex coordinates")
            vertices.append(points @ transform[:3, :3].T + transform[:3, 3])
            mesh_faces = np.asarray(mesh.faces, dtype=np.int64)
            if np.linalg.det(transform[:3, :3]) < 0:  # a mirroring transform turns faces inside out
                mesh_faces = mesh_faces[:, ::-1]
            faces.append(mesh_faces + offset)
            offset += len(points)
            source = id(getattr(mesh.visual, "material", None))
            if source not in by_source:
                material = _material(mesh)
                key = _material_key(material)
                if key not in by_content:
                    materials.append(material)
                    by_content[key] = len(materials) - 1
                by_source[source] = by_content[key]
            face_materials.append(np.full(len(mesh_faces), by_source[source], dtype=np.int32))
            uv = getattr(mesh.visual, "uv", None)
            uvs.append(np.asarray(uv, dtype=np.float64) if uv is not None and len(uv) == len(points) else None)
            colors.append(_vertex_colors(mesh))
        counts_per_primitive = [len(v) for v in vertices]
        parts.append(
            Part(
                name=name,
                vertices=np.concatenate(vertices),
                faces=np.concatenate(faces).astype(np.int32),
                face_materials=np.concatenate(face_materials),
                uvs=_fill(uvs, counts_per_primitive, np.zeros(2)),
                colors=_fill(colors, counts_per_primitive, np.full(4, 255, dtype=np.uint8)),
            )
        )
    return parts, materials, warnings


def _material_key(material: Material) -> tuple:
    texture = material.texture
    digest = None if texture is None else (texture.shape, hashlib.blake2b(texture.tobytes(), digest_size=16).digest())
    return (material.name, material.base_color, material.metallic, material.roughness, digest)


def _fill(arrays: list[np.ndarray | None], counts: list[int], default: np.ndarray) -> np.ndarray | None:
    """Concatenate per-primitive attributes; primitives without one get `default`; None if none has it."""
    if all(a is None for a in arrays):
        return None
    filled = [a if a is not None else np.tile(default, (n, 1)) for a, n in zip(arrays, counts, strict=True)]
    return np.concatenate(filled).astype(default.dtype)
