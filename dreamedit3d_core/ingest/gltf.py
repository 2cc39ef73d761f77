"""glTF 2.0 reader: the structural checks of `gltf_document`, then trimesh.

Trimesh gets a resolver that serves only the files `gltf_document` found, so the files read are the ones
`source_files` lists. Parts are the scene's nodes with a mesh (instancing gives one part per node; a node's
primitives become one part with one material per primitive), in node order, with node transforms applied.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
import trimesh
from trimesh.scene.transforms import fix_rigid
from trimesh.util import unique_name

from dreamedit3d_core.ingest.asset import AssetError, Material, Part
from dreamedit3d_core.ingest.limits import pillow_pixel_limit
from dreamedit3d_core.ingest.gltf_document import check_gltf
from dreamedit3d_core.ingest.reference_resolver import SourceResolver

_RIGID_REPAIR = 1e-5  # trimesh's SceneGraph default: transforms this close to rigid are made exactly rigid


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
        with pillow_pixel_limit(files.limits):  # textures were checked against our limit from their headers
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
    world = _world_transforms(scene.graph)
    for node_name in scene.graph.nodes_geometry:
        transform, geometry_name = world[node_name], scene.graph.transforms.node_data[node_name]["geometry"]
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
                with pillow_pixel_limit(files.limits):
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


def _world_transforms(graph: trimesh.scene.transforms.SceneGraph) -> dict[str, np.ndarray]:
    """Every node's transform to the scene's base frame, computed once per node from its parent's (top-down),
    as trimesh computes them (its rigid repair included). Asking trimesh per node instead walks each node's
    whole parent chain with a matrix-chain optimiser: minutes for a chain of a few thousand nodes."""
    parents, edges = graph.transforms.parents, graph.transforms.edge_data
    world: dict[str, np.ndarray] = {graph.base_frame: np.eye(4)}
    for start in parents:
        chain, node = [], start
        while node not in world:  # the graph is a tree (checked): this ends at the base frame
            chain.append(node)
            node = parents[node]
        for node in reversed(chain):
            local = edges[(parents[node], node)].get("matrix")
            world[node] = world[parents[node]] if local is None else world[parents[node]] @ local
    return {node: fix_rigid(matrix, max_deviance=_RIGID_REPAIR) for node, matrix in world.items()}


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
