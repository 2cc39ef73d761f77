"""glTF 2.0 documents (.glb, .gltf with external or embedded buffers): parsing, the files they reference, and
our structural checks, without trimesh (so that finding an asset's files stays light).

The checks refuse what trimesh would read as garbage or zeros: a GLB whose length or chunks disagree with
the file, buffers shorter than they claim, accessors reading past their buffer views, triangle lists whose
index count is not a multiple of 3, and required extensions trimesh cannot decode (Draco, meshopt).
External buffers and images are found and read through `sources.SourceResolver` (never outside the asset's
folder).
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Iterator
from pathlib import Path


from dreamedit3d_core.ingest.asset import AssetError
from dreamedit3d_core.ingest.limits import IngestLimits, check_count, check_texture, image_size, load_json
from dreamedit3d_core.ingest.reference_resolver import SourceFile, SourceResolver

_COMPONENT_BYTES = {5120: 1, 5121: 1, 5122: 2, 5123: 2, 5125: 4, 5126: 4}
_TYPE_COMPONENTS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_UNSUPPORTED_EXTENSIONS = ("KHR_draco_mesh_compression", "EXT_meshopt_compression", "KHR_meshopt_compression")
_ARRAYS = ("scenes", "nodes", "meshes", "materials", "textures", "images", "accessors", "bufferViews", "buffers")


def _split_glb(path: Path, raw: bytes, limits: IngestLimits) -> tuple[dict, bytes | None]:
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
    document = _parse_json(path, raw[20 : 20 + json_length], limits)
    binary = None
    offset = 20 + json_length
    if offset + 8 <= total:
        bin_length, bin_type = struct.unpack_from("<I4s", raw, offset)
        if bin_type == b"BIN\0":
            if offset + 8 + bin_length > total:
                raise AssetError(f"{path.name}: truncated GLB: binary chunk says {bin_length} bytes")
            binary = raw[offset + 8 : offset + 8 + bin_length]
    return document, binary


def _parse_json(path: Path, text: bytes, limits: IngestLimits) -> dict:
    document = load_json(text, limits, path.name, "glTF file")
    asset = document.get("asset") if isinstance(document, dict) else None
    if not isinstance(asset, dict) or not str(asset.get("version", "")).startswith("2"):
        raise AssetError(f"{path.name}: not a glTF 2.0 file (no asset.version 2.x)")
    for name in _ARRAYS:  # the top-level arrays the checks below walk: lists of objects, or absent
        entries = document.get(name, [])
        if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
            raise AssetError(f"{path.name}: malformed glTF ({name!r} is not a list of objects)")
    return document


def _external_uris(document: dict) -> Iterator[tuple[str, int, str]]:
    """(kind, index, uri) of each buffer and image stored in a file of its own (not a data: URI)."""
    for kind in ("buffer", "image"):
        for i, entry in enumerate(document.get(f"{kind}s", [])):
            uri = entry.get("uri")
            if isinstance(uri, str) and not uri.startswith("data:"):
                yield kind, i, uri


def _external_files(files: SourceResolver, document: dict) -> dict[str, SourceFile | None]:
    """The file each external URI names (None where missing); refuses URIs outside the asset's folder."""
    return {uri: files.find([uri], files.main, kind, uri=True) for kind, _, uri in _external_uris(document)}


def _document(files: SourceResolver) -> tuple[dict, bytes | None]:
    """The glTF JSON and the GLB binary chunk (None for a .gltf file)."""
    path, raw = files.main.path, files.read(files.main)
    if not raw.strip():
        raise AssetError(f"{path.name}: empty file")
    if raw[:4] == b"glTF":
        return _split_glb(path, raw, files.limits)
    if path.suffix.lower() == ".glb":
        raise AssetError(f"{path.name}: not a GLB file (it does not start with 'glTF')")
    return _parse_json(path, raw, files.limits), None


def gltf_references(files: SourceResolver) -> list[SourceFile]:
    """The external buffers and images `read_gltf` opens (those that exist); [] for a file it cannot parse."""
    try:
        document, _ = _document(files)
    except AssetError:
        return []
    return [file for file in _external_files(files, document).values() if file is not None]


def _data_uri(uri: str) -> bytes:
    header, _, payload = uri.partition(",")
    if not header.endswith(";base64"):
        raise ValueError("data URI is not base64")
    return base64.b64decode(payload, validate=False)


def _buffers(path: Path, document: dict, binary: bytes | None, external: dict[str, bytes | None]) -> list[bytes]:
    """Each buffer's bytes (as long as it says it is), refusing buffers shorter than their byteLength."""
    contents = []
    for i, buffer in enumerate(document.get("buffers", [])):
        uri = buffer.get("uri")
        if uri is None:
            if binary is None:
                raise AssetError(f"{path.name}: buffer {i} refers to a GLB binary chunk the file does not have")
            content = binary
        elif uri.startswith("data:"):
            content = _data_uri(uri)
        else:
            content = external[uri]
            if content is None:
                raise AssetError(f"{path.name}: external buffer {uri!r} not found next to the file")
        length = _natural(buffer["byteLength"], f"buffer {i} byteLength")
        if len(content) < length:
            raise AssetError(
                f"{path.name}: buffer {i} ({uri or 'GLB binary chunk'}) is truncated: "
                f"byteLength {length}, only {len(content)} bytes present"
            )
        contents.append(content[:length])
    return contents


def _natural(value: object, what: str) -> int:
    """A count or offset from the JSON: a non-negative integer, or a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} is {value!r}, not a non-negative integer")
    return value


def _check_views(path: Path, document: dict, buffers: list[bytes]) -> None:
    for i, view in enumerate(document.get("bufferViews", [])):
        end = _natural(view.get("byteOffset", 0), f"bufferView {i} byteOffset") + _natural(
            view["byteLength"], f"bufferView {i} byteLength"
        )
        if end > len(buffers[_natural(view["buffer"], f"bufferView {i} buffer")]):
            raise AssetError(f"{path.name}: bufferView {i} reaches past the end of buffer {view['buffer']}")


def _check_accessors(path: Path, document: dict, limits: IngestLimits) -> None:
    """Every accessor reads inside its buffer view; one without a view (zeros) stays within the vertex limit."""
    views = document.get("bufferViews", [])
    zero_filled = 0
    for i, accessor in enumerate(document.get("accessors", [])):
        count = _natural(accessor["count"], f"accessor {i} count")
        element = _COMPONENT_BYTES[accessor["componentType"]] * _TYPE_COMPONENTS[accessor["type"]]
        sparse = accessor.get("sparse")
        if isinstance(sparse, dict) and _natural(sparse["count"], f"accessor {i} sparse count") > count:
            raise AssetError(f"{path.name}: accessor {i} has more sparse values than elements")
        if "bufferView" not in accessor:
            zero_filled += count
            check_count(limits, "max_vertices", zero_filled, path.name, "elements in accessors without data")
            continue
        if count == 0:
            continue
        view = views[_natural(accessor["bufferView"], f"accessor {i} bufferView")]
        stride = _natural(view.get("byteStride", element), f"bufferView {accessor['bufferView']} byteStride")
        end = _natural(accessor.get("byteOffset", 0), f"accessor {i} byteOffset") + stride * (count - 1) + element
        if end > view["byteLength"]:
            raise AssetError(f"{path.name}: accessor {i} reads past the end of bufferView {accessor['bufferView']}")


def _check_nodes(path: Path, document: dict, limits: IngestLimits) -> None:
    """The nodes form trees (one parent each, no cycles) no deeper than the limit; there are not too many."""
    nodes = document.get("nodes", [])
    check_count(limits, "max_nodes", len(nodes), path.name, "nodes")
    parent: dict[int, int] = {}
    for i, node in enumerate(nodes):
        children = node.get("children", [])
        if not isinstance(children, list):
            raise ValueError(f"node {i} children is not a list")
        for child in children:
            if _natural(child, f"node {i} child") >= len(nodes):
                raise AssetError(f"{path.name}: node {i} has child {child}, but there are {len(nodes)} nodes")
            if child in parent or child == i:
                raise AssetError(f"{path.name}: node {child} has more than one parent (glTF nodes form trees)")
            parent[child] = i
    depth: dict[int, int] = {}
    for start in range(len(nodes)):  # walk up from each node, once per node overall: linear in the node count
        chain, node = [], start
        while node not in depth and node in parent:
            chain.append(node)
            node = parent[node]
            if len(chain) > len(nodes):
                raise AssetError(f"{path.name}: the node hierarchy has a cycle (through node {start})")
        level = depth.get(node, 0)
        depth.setdefault(node, level)
        for node in reversed(chain):
            level += 1
            depth[node] = level
            if level > limits.max_node_depth:
                raise AssetError(
                    f"{path.name}: node {node} has {level} parents above it, more than the limit "
                    f"ingest.limits.max_node_depth={limits.max_node_depth}"
                )


def _check_sizes(path: Path, document: dict, limits: IngestLimits) -> None:
    """Vertices and triangles of every mesh instance (a mesh drawn by three nodes counts three times), from
    the accessors' counts, before any is read."""
    accessors = document.get("accessors", [])
    meshes = document.get("meshes", [])
    per_mesh = []
    for mesh_index, mesh in enumerate(meshes):
        vertices = faces = 0
        for k, primitive in enumerate(mesh["primitives"]):
            mode = primitive.get("mode", 4)
            count_vertices = accessors[primitive["attributes"]["POSITION"]]["count"]
            count = accessors[primitive["indices"]]["count"] if "indices" in primitive else count_vertices
            if (mode == 4 and count % 3) or (mode in (5, 6) and count < 3):
                raise AssetError(
                    f"{path.name}: mesh {mesh.get('name', mesh_index)!r} primitive {k} has {count} "
                    "indices, which is not a whole number of triangles (a face with too few indices)"
                )
            vertices += count_vertices
            faces += count // 3 if mode == 4 else max(count - 2, 0) if mode in (5, 6) else 0
        per_mesh.append((vertices, faces))
    instances = [node["mesh"] for node in document.get("nodes", []) if "mesh" in node]
    for mesh in instances:
        if _natural(mesh, "node mesh") >= len(meshes):
            raise AssetError(f"{path.name}: a node names mesh {mesh}, but there are {len(meshes)} meshes")
    check_count(limits, "max_vertices", sum(per_mesh[mesh][0] for mesh in instances), path.name, "vertices")
    check_count(limits, "max_faces", sum(per_mesh[mesh][1] for mesh in instances), path.name, "triangles")


def _used_images(document: dict) -> list[int]:
    """The images the base-colour textures of the materials that drawn primitives use name (the only images
    ingest decodes), in order."""
    meshes = document.get("meshes", [])
    used_meshes = {node["mesh"] for node in document.get("nodes", []) if "mesh" in node}
    materials = {p["material"] for m in sorted(used_meshes) for p in meshes[m]["primitives"] if "material" in p}
    images = []
    for material in sorted(materials):
        texture = document["materials"][material].get("pbrMetallicRoughness", {}).get("baseColorTexture")
        if texture is not None:
            source = document["textures"][texture["index"]].get("source")
            if source is not None and source not in images:
                images.append(source)
    return images


def _image_bytes(document: dict, index: int, buffers: list[bytes], external: dict[str, bytes | None]) -> bytes | None:
    image = document["images"][index]
    if "bufferView" in image:
        view = document["bufferViews"][image["bufferView"]]
        offset = view.get("byteOffset", 0)
        return buffers[view["buffer"]][offset : offset + view["byteLength"]]
    uri = image.get("uri")
    if not isinstance(uri, str):
        return None
    return _data_uri(uri) if uri.startswith("data:") else external[uri]


def check_gltf(files: SourceResolver) -> tuple[dict, list[str]]:
    """Structural checks and limits on the file's bytes and JSON; returns the glTF document and warnings.

    Everything trimesh will allocate is bounded here first: the JSON, buffers, accessor counts, vertex and
    triangle totals over all instances, node count and depth, and the size of every texture it will decode
    (read from the image's header). Reads every external buffer and image here, so the files the reader uses
    do not depend on which of them trimesh asks for (it serves them from `files`)."""
    path, limits = files.main.path, files.limits
    document, binary = _document(files)
    external: dict[str, bytes | None] = {
        uri: None if file is None else files.read(file) for uri, file in _external_files(files, document).items()
    }
    warnings = [
        f"{path.name}: image {index} {uri!r} not found next to the file (the material has no texture)"
        for kind, index, uri in _external_uris(document)
        if kind == "image" and external[uri] is None
    ]
    try:
        required = document.get("extensionsRequired", [])
        required = [e for e in required if e in _UNSUPPORTED_EXTENSIONS] if isinstance(required, list) else []
        if required:
            raise AssetError(f"{path.name}: requires unsupported glTF extension(s) {', '.join(required)}")
        buffers = _buffers(path, document, binary, external)
        _check_views(path, document, buffers)
        _check_accessors(path, document, limits)
        _check_nodes(path, document, limits)
        _check_sizes(path, document, limits)
        for count, index in enumerate(_used_images(document), start=1):
            blob = _image_bytes(document, index, buffers, external)
            try:
                size = image_size(blob, f"{path.name}: image {index}") if blob is not None else None
            except AssetError as error:  # trimesh skips an image it cannot open: the material has no texture
                warnings.append(f"{error} (the material has no texture)")
                continue
            if size is not None:
                check_texture(limits, count, size, f"{path.name}: image {index}")
    except AssetError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, binascii.Error) as error:
        raise AssetError(f"{path.name}: malformed glTF ({type(error).__name__}: {error})") from None
    return document, warnings
