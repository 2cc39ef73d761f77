"""Hostile files: limits checked before anything large is allocated or decoded, each one a setting, and every
failure the file causes is an AssetError (one line, the file named) whatever went wrong inside the reader."""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dreamedit3d_core.ingest import AssetError, IngestConfig, ingest_asset, source_files
from dreamedit3d_core.ingest.isolated import ingest_isolated
from dreamedit3d_core.ingest.limits import IngestLimits

QUAD = "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\n"
TRIANGLE = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32).tobytes()


def limited(**limits: int) -> IngestConfig:
    return IngestConfig(limits=IngestLimits(**limits))


def refused(path: Path, config: IngestConfig | None = None, *fragments: str) -> str:
    with pytest.raises(AssetError) as info:
        ingest_asset(path, config)
    message = str(info.value)
    assert path.name in message and "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def gltf(folder: Path, name: str = "scene.gltf", **document: object) -> Path:
    """A one-triangle glTF (embedded buffer); keyword arguments replace or add top-level entries."""
    base = {
        "asset": {"version": "2.0"},
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}}]}],
        "accessors": [{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3"}],
        "bufferViews": [{"buffer": 0, "byteLength": len(TRIANGLE)}],
        "buffers": [{"byteLength": len(TRIANGLE), "uri": "data:application/octet-stream;base64," + base64.b64encode(TRIANGLE).decode()}],
    }
    (folder / name).write_text(json.dumps({**base, **document}))
    return folder / name


def png_claiming(width: int, height: int) -> bytes:
    """A PNG of a few bytes whose header claims `width` x `height` pixels."""
    buffer = io.BytesIO()
    Image.new("L", (4, 4)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_a_chain_of_nodes_deeper_than_the_limit_is_refused_and_below_it_read_with_every_parent(tmp_path: Path) -> None:
    depth = 3000
    nodes = [{"children": [i + 1], "translation": [0.001, 0, 0]} for i in range(depth - 1)] + [{"mesh": 0}]
    path = gltf(tmp_path, nodes=nodes)
    refused(path, None, "parents above it", "ingest.limits.max_node_depth=256")
    # raised: each node's transform composes its parents' once (a chain of 3000 took minutes before)
    asset = ingest_asset(path, IngestConfig(normalize=False, limits=IngestLimits(max_node_depth=depth)))
    assert asset.parts[0].vertices[:, 0].min() == pytest.approx(0.001 * (depth - 1), rel=1e-4)


def test_node_cycles_and_nodes_with_two_parents_are_refused(tmp_path: Path) -> None:
    refused(gltf(tmp_path, "cycle.gltf", nodes=[{"children": [1]}, {"children": [0], "mesh": 0}]), None, "has a cycle")
    two_parents = [{"children": [2]}, {"children": [2]}, {"mesh": 0}]
    refused(gltf(tmp_path, "two.gltf", nodes=two_parents, scenes=[{"nodes": [0, 1]}]), None, "more than one parent")
    refused(gltf(tmp_path, "missing.gltf", nodes=[{"children": [7], "mesh": 0}]), None, "child 7")
    refused(gltf(tmp_path, "many.gltf", nodes=[{"mesh": 0}] * 11), limited(max_nodes=10), "11 nodes", "max_nodes=10")


def test_counts_are_checked_against_the_data_and_the_limits_before_anything_is_allocated(tmp_path: Path) -> None:
    no_data = [{"componentType": 5126, "count": 33_000_000, "type": "VEC3"}]
    refused(gltf(tmp_path, "zeros.gltf", accessors=no_data), None, "33,000,000", "max_vertices=10,000,000")
    beyond = [{"bufferView": 0, "componentType": 5126, "count": 2**31 - 1, "type": "VEC3"}]
    refused(gltf(tmp_path, "beyond.gltf", accessors=beyond), None, "reads past the end of bufferView 0")
    negative = [{"bufferView": 0, "componentType": 5126, "count": -3, "type": "VEC3"}]
    refused(gltf(tmp_path, "negative.gltf", accessors=negative), None, "not a non-negative integer")
    # one triangle drawn by five nodes is five triangles
    instanced = gltf(tmp_path, "instanced.gltf", nodes=[{"mesh": 0, "translation": [i, 0, 0]} for i in range(5)],
                     scenes=[{"nodes": [0, 1, 2, 3, 4]}])  # fmt: skip
    refused(instanced, limited(max_faces=4), "5 triangles", "max_faces=4")
    refused(instanced, limited(max_vertices=14), "15 vertices", "max_vertices=14")
    assert len(ingest_asset(instanced, limited(max_faces=5)).parts) == 5


def test_textures_are_checked_from_their_headers_and_only_used_ones_are_opened(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8), (255, 0, 0)).save(tmp_path / "small.png")
    (tmp_path / "huge.png").write_bytes(png_claiming(13000, 13000))  # 169 million pixels in 70 bytes
    (tmp_path / "m.mtl").write_text("newmtl used\nmap_Kd small.png\nnewmtl unused\nmap_Kd huge.png\n")
    (tmp_path / "model.obj").write_text("mtllib m.mtl\n" + QUAD + "usemtl used\nf 1/1 2/2 3/3\nf 1/1 3/3 4/4\n")
    opened: list = []
    asset = ingest_asset(tmp_path / "model.obj", opened=opened)
    assert asset.materials[0].texture.shape == (8, 8, 3)
    assert [file.relative for file in opened] == ["model.obj", "m.mtl", "small.png"]  # huge.png never read
    assert [file.relative for file in source_files(tmp_path / "model.obj")] == ["model.obj", "m.mtl", "small.png"]

    (tmp_path / "m.mtl").write_text("newmtl used\nmap_Kd huge.png\n")
    refused(tmp_path / "model.obj", None, "13000 x 13000", "max_texture_pixels=67,108,864", "before decoding")
    (tmp_path / "m.mtl").write_text("newmtl used\nmap_Kd small.png\nnewmtl other\nmap_Kd small.png\n")
    (tmp_path / "two.obj").write_text("mtllib m.mtl\n" + QUAD + "usemtl used\nf 1/1 2/2 3/3\nusemtl other\nf 1/1 3/3 4/4\n")
    refused(tmp_path / "two.obj", limited(max_textures=1), "2 textures", "max_textures=1")


def test_a_gltf_texture_too_large_is_refused_before_decoding(tmp_path: Path) -> None:
    uri = "data:image/png;base64," + base64.b64encode(png_claiming(20000, 20000)).decode()
    textured = {
        "materials": [{"pbrMetallicRoughness": {"baseColorTexture": {"index": 0}}}],
        "textures": [{"source": 0}],
        "images": [{"uri": uri}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "material": 0}]}],
    }
    refused(gltf(tmp_path, **textured), None, "image 0", "20000 x 20000", "max_texture_pixels")
    unused = {**textured, "meshes": [{"primitives": [{"attributes": {"POSITION": 0}}]}]}
    assert ingest_asset(gltf(tmp_path, "unused.gltf", **unused)).materials[0].texture is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[1, 2, 3]", "not a glTF 2.0 file"),
        ('{"asset": 5}', "not a glTF 2.0 file"),
        ('{"asset": {"version": "2.0"}, "nodes": 5}', "'nodes' is not a list of objects"),
        ('{"asset": {"version": "2.0"}, "nodes": [[]]}', "'nodes' is not a list of objects"),
        ("[" * 200_000 + "]" * 200_000, "max_json_depth=64"),
        ('{"asset": {"version": "2.0"}, "extras": ' + "[" * 70 + "]" * 70 + "}", "nested 71 levels deep"),
    ],
)
def test_json_that_is_not_a_gltf_document_is_refused_in_one_line(tmp_path: Path, text: str, reason: str) -> None:
    (tmp_path / "bad.gltf").write_text(text)
    refused(tmp_path / "bad.gltf", None, reason)


def test_every_file_opened_is_within_the_size_limit(tmp_path: Path) -> None:
    (tmp_path / "model.obj").write_text(QUAD + "f 1 2 3\n")
    refused(tmp_path / "model.obj", limited(max_file_bytes=50), "bytes, more than the limit ingest.limits.max_file_bytes=50")
    (tmp_path / "m.mtl").write_text("newmtl m\n" + "# padding\n" * 100)
    (tmp_path / "lib.obj").write_text("mtllib m.mtl\n" + QUAD + "f 1 2 3\n")
    refused(tmp_path / "lib.obj", limited(max_file_bytes=500), "m.mtl", "max_file_bytes=500")


def test_ply_with_mixed_polygons_reads_the_same_in_ascii_and_binary(tmp_path: Path) -> None:
    vertices = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0.5, 2, 0]], dtype=np.float32)
    faces = [[0, 1, 2, 3], [3, 2, 4], [0, 1, 4]]  # a quad then two triangles: rows of two lengths
    header = (
        "ply\nformat {} 1.0\nelement vertex 5\nproperty float x\nproperty float y\nproperty float z\n"
        "element face 3\nproperty list uchar int vertex_indices\nproperty uchar flags\nend_header\n"
    )
    ascii_rows = [" ".join(map(str, v)) for v in vertices] + [f"{len(f)} {' '.join(map(str, f))} 7" for f in faces]
    (tmp_path / "a.ply").write_text(header.format("ascii") + "\n".join(ascii_rows) + "\n")
    binary = vertices.astype("<f4").tobytes() + b"".join(
        struct.pack("<B", len(f)) + struct.pack(f"<{len(f)}i", *f) + b"\x07" for f in faces
    )
    (tmp_path / "b.ply").write_bytes(header.format("binary_little_endian").encode() + binary)
    a, b = (ingest_asset(tmp_path / name, IngestConfig(normalize=False)).parts[0] for name in ("a.ply", "b.ply"))
    assert np.array_equal(a.vertices, b.vertices) and np.array_equal(a.faces, b.faces)
    fans = np.array([[0, 1, 2], [0, 2, 3], [3, 2, 4], [0, 1, 4]])  # the quad as a fan, in the file's order
    up = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]])  # +Y up onto +Z
    assert np.allclose(a.vertices[a.faces], (vertices @ up.T)[fans])

    short = header.format("ascii").replace("element face 3", "element face 1") + "\n".join(ascii_rows[:5]) + "\n5 0 1 2 7\n"
    (tmp_path / "short.ply").write_text(short)
    refused(tmp_path / "short.ply", None, "bad PLY row", "5 0 1 2 7")
    negative = header.format("binary_little_endian").replace("list uchar", "list char").encode()
    (tmp_path / "negative.ply").write_bytes(negative + vertices.tobytes() + struct.pack("<b", -3) + b"\0" * 40)
    refused(tmp_path / "negative.ply", None, "negative list length")
    counted = header.format("ascii").replace("element vertex 5", "element vertex 99999999999")
    (tmp_path / "counted.ply").write_text(counted)
    refused(tmp_path / "counted.ply", None, "vertex rows in the header", "max_vertices")


def test_errors_the_limits_did_not_foresee_are_still_the_files_fault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dreamedit3d_core.ingest import ingest as ingest_module

    (tmp_path / "model.obj").write_text(QUAD + "f 1 2 3\n")
    for error in (RecursionError(), MemoryError(), Image.DecompressionBombError("bomb")):

        def reader(files: object, error: BaseException = error) -> None:
            raise error

        monkeypatch.setitem(ingest_module._READERS, ".obj", reader)
        if isinstance(error, MemoryError):
            refused(tmp_path / "model.obj", None, "more memory than a reader may use", "ingest.limits.max_memory_bytes")
        else:
            refused(tmp_path / "model.obj", None, "too large or too deeply nested", type(error).__name__)


def test_the_reader_process_is_stopped_after_the_time_limit_and_reports_what_it_read(tmp_path: Path) -> None:
    (tmp_path / "m.mtl").write_text("newmtl m\nKd 1 0 0\n")
    (tmp_path / "model.obj").write_text("mtllib m.mtl\n" + QUAD + "usemtl m\nf 1 2 3\n")
    report: dict = {}
    asset = ingest_isolated(tmp_path / "model.obj", IngestConfig(), tmp_path / "out", report)
    assert asset.materials[0].base_color[:3] == (1.0, 0.0, 0.0)
    assert [file.relative for file in report["opened"]] == ["model.obj", "m.mtl"]
    assert 0 < report["peak_rss_bytes"] < 2**30
    with pytest.raises(AssetError, match=r"model\.obj: reading the file took longer than 0\.05 s \(ingest\.timeout_s\)"):
        ingest_isolated(tmp_path / "model.obj", IngestConfig(timeout_s=0.05), tmp_path / "slow")
    assert not (tmp_path / "slow").exists()
    (tmp_path / "bad.obj").write_text("v 0 0 0\n")
    report = {}
    with pytest.raises(AssetError, match=r"^bad\.obj: no geometry"):
        ingest_isolated(tmp_path / "bad.obj", IngestConfig(), tmp_path / "bad", report)
    assert report["opened"][0].relative == "bad.obj"
