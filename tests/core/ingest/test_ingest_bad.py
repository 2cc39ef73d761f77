"""Bad input is refused with an AssetError that names the file and the problem."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import trimesh

from dreamedit3d_core.ingest import AssetError, ingest_asset

BOX = trimesh.creation.box()
OBJ_BOX = "".join(f"v {x} {y} {z}\n" for x, y, z in BOX.vertices) + "".join(
    f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in BOX.faces
)


def _refused(path: Path, *fragments: str) -> str:
    with pytest.raises(AssetError) as info:
        ingest_asset(path)
    message = str(info.value)
    print(message)
    assert path.name in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def _split_glb(data: bytes) -> tuple[dict, bytes]:
    (json_length,) = struct.unpack_from("<I", data, 12)
    (bin_length,) = struct.unpack_from("<I", data, 20 + json_length)
    start = 20 + json_length + 8
    return json.loads(data[20 : 20 + json_length]), data[start : start + bin_length]


def _join_glb(document: dict, binary: bytes) -> bytes:
    text = json.dumps(document).encode()
    text += b" " * (-len(text) % 4)
    total = 12 + 8 + len(text) + 8 + len(binary)
    return (
        struct.pack("<4sII", b"glTF", 2, total)
        + struct.pack("<I4s", len(text), b"JSON")
        + text
        + (struct.pack("<I4s", len(binary), b"BIN\0") + binary)
    )


@pytest.fixture
def chair_glb(chair: Path) -> tuple[dict, bytes]:
    """The example chair's glTF document and binary buffer, parsed afresh for each test to change."""
    return _split_glb(chair.read_bytes())


def test_shared_bad_assets_are_refused_with_their_reason(shared_assets: Path) -> None:
    bad = shared_assets / "bad"
    assert {p.name for p in bad.iterdir()} == {"empty.obj", "notenoughindices.obj"}
    _refused(bad / "empty.obj", "no geometry")
    _refused(bad / "notenoughindices.obj", "line 9", "fewer than 3 vertices", "f 1// 2//")


@pytest.mark.parametrize("suffix", [".glb", ".gltf", ".obj", ".ply", ".stl"])
def test_empty_files(tmp_path: Path, suffix: str) -> None:
    (tmp_path / f"empty{suffix}").write_bytes(b"")
    _refused(tmp_path / f"empty{suffix}", "empty file")


@pytest.mark.parametrize(
    ("suffix", "reason"),
    [
        (".glb", "not a GLB"),
        (".gltf", "not a glTF"),
        (".obj", "binary data"),
        (".ply", "not a PLY"),
        (".stl", "not an STL"),
    ],
)
def test_non_mesh_bytes(tmp_path: Path, suffix: str, reason: str) -> None:
    noise = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    (tmp_path / f"noise{suffix}").write_bytes(noise)
    _refused(tmp_path / f"noise{suffix}", reason)


def test_text_that_is_not_a_mesh(tmp_path: Path) -> None:
    (tmp_path / "notes.obj").write_text("dear diary,\ntoday I made no mesh\n")
    _refused(tmp_path / "notes.obj", "no geometry")
    (tmp_path / "notes.stl").write_text("dear diary, today I made no mesh at all, not even a triangle " * 3)
    _refused(tmp_path / "notes.stl", "not an STL")


def test_truncated_files(shared_assets: Path, tmp_path: Path) -> None:
    duck = (shared_assets / "good" / "Duck.glb").read_bytes()
    (tmp_path / "duck.glb").write_bytes(duck[: len(duck) // 2])
    _refused(tmp_path / "duck.glb", "truncated")

    for name in ("TestScene.gltf", "TestScene.bin"):
        shutil.copy(shared_assets / "good" / name, tmp_path / name)
    (tmp_path / "TestScene.bin").write_bytes((shared_assets / "good" / "TestScene.bin").read_bytes()[:1000])
    _refused(tmp_path / "TestScene.gltf", "TestScene.bin", "truncated")
    (tmp_path / "TestScene.bin").unlink()
    _refused(tmp_path / "TestScene.gltf", "TestScene.bin", "not found")

    binary_ply = BOX.export(file_type="ply", encoding="binary")
    (tmp_path / "box.ply").write_bytes(binary_ply[:-30])
    _refused(tmp_path / "box.ply", "truncated")
    ascii_ply = BOX.export(file_type="ply", encoding="ascii")
    (tmp_path / "box_ascii.ply").write_bytes(ascii_ply[: ascii_ply.rindex(b"3 ", 0, len(ascii_ply) - 40)])
    _refused(tmp_path / "box_ascii.ply", "truncated")
    (tmp_path / "header.ply").write_bytes(ascii_ply[:60])
    _refused(tmp_path / "header.ply", "truncated PLY header")

    binary_stl = BOX.export(file_type="stl")
    (tmp_path / "box.stl").write_bytes(binary_stl[:-20])
    _refused(tmp_path / "box.stl", "truncated")
    ascii_stl = trimesh.exchange.stl.export_stl_ascii(BOX)
    (tmp_path / "box_ascii.stl").write_text(ascii_stl[: len(ascii_stl) // 2])
    _refused(tmp_path / "box_ascii.stl", "truncated")


def test_non_finite_coordinates(tmp_path: Path, chair_glb: tuple[dict, bytes]) -> None:
    (tmp_path / "nan.obj").write_text(OBJ_BOX.replace("v 0.5 0.5 0.5", "v nan 0.5 0.5", 1))
    _refused(tmp_path / "nan.obj", "non-finite", "line 8")
    ply = BOX.export(file_type="ply", encoding="ascii").replace(b"0.50000000 0.50000000 0.50000000", b"inf 0.5 0.5", 1)
    (tmp_path / "inf.ply").write_bytes(ply)
    _refused(tmp_path / "inf.ply", "non-finite")
    broken = BOX.copy()
    broken.vertices[0, 0] = np.nan
    (tmp_path / "nan.stl").write_bytes(broken.export(file_type="stl"))
    _refused(tmp_path / "nan.stl", "non-finite")
    document, binary = chair_glb
    position = document["accessors"][document["meshes"][0]["primitives"][0]["attributes"]["POSITION"]]
    offset = document["bufferViews"][position["bufferView"]]["byteOffset"]
    binary = binary[:offset] + struct.pack("<f", np.inf) + binary[offset + 4 :]
    (tmp_path / "inf.glb").write_bytes(_join_glb(document, binary))
    _refused(tmp_path / "inf.glb", "non-finite", "seat")


def test_out_of_range_indices(tmp_path: Path, chair_glb: tuple[dict, bytes]) -> None:
    (tmp_path / "range.obj").write_text(OBJ_BOX + "f 1 2 99\n")
    _refused(tmp_path / "range.obj", "out of range", "line 21")
    (tmp_path / "zero.obj").write_text(OBJ_BOX + "f 0 1 2\n")
    _refused(tmp_path / "zero.obj", "index 0")
    lines = BOX.export(file_type="ply", encoding="ascii").split(b"\n")
    first_face = next(i for i, line in enumerate(lines) if line.startswith(b"3 "))
    lines[first_face] = b"3 0 1 99"
    (tmp_path / "range.ply").write_bytes(b"\n".join(lines))
    _refused(tmp_path / "range.ply", "out of range")
    document, binary = chair_glb
    indices = document["accessors"][document["meshes"][0]["primitives"][0]["indices"]]
    offset = document["bufferViews"][indices["bufferView"]]["byteOffset"]
    binary = binary[:offset] + struct.pack("<I", 5000) + binary[offset + 4 :]
    (tmp_path / "range.glb").write_bytes(_join_glb(document, binary))
    _refused(tmp_path / "range.glb", "out of range", "seat")


def test_too_few_face_indices(tmp_path: Path, chair_glb: tuple[dict, bytes]) -> None:
    (tmp_path / "few.obj").write_text(OBJ_BOX + "f 1 2\n")
    _refused(tmp_path / "few.obj", "fewer than 3 vertices", "line 21")
    lines = BOX.export(file_type="ply", encoding="ascii").split(b"\n")
    first_face = next(i for i, line in enumerate(lines) if line.startswith(b"3 "))
    lines[first_face] = b"2 0 1"
    (tmp_path / "few.ply").write_bytes(b"\n".join(lines))
    _refused(tmp_path / "few.ply", "fewer than 3")
    document, binary = chair_glb
    document["accessors"][document["meshes"][0]["primitives"][0]["indices"]]["count"] -= 1
    (tmp_path / "few.glb").write_bytes(_join_glb(document, binary))
    _refused(tmp_path / "few.glb", "not a whole number of triangles", "seat")


def test_files_without_geometry(tmp_path: Path, chair_glb: tuple[dict, bytes]) -> None:
    (tmp_path / "points.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    _refused(tmp_path / "points.obj", "no geometry")
    cloud = trimesh.PointCloud(BOX.vertices)
    (tmp_path / "cloud.ply").write_bytes(cloud.export(file_type="ply"))
    _refused(tmp_path / "cloud.ply", "no faces")
    document, binary = chair_glb
    for node in document["nodes"]:
        del node["mesh"]
    (tmp_path / "nodes_only.glb").write_bytes(_join_glb(document, binary))
    _refused(tmp_path / "nodes_only.glb", "no geometry")
    (tmp_path / "flat.obj").write_text("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n")
    _refused(tmp_path / "flat.obj", "degenerate")


def test_unsupported_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "model.fbx").write_bytes(b"Kaydara FBX Binary")
    _refused(tmp_path / "model.fbx", "unsupported format")
    with pytest.raises(AssetError, match="no such file"):
        ingest_asset(tmp_path / "missing.glb")


def test_broken_material_library_is_a_warning_not_an_error(tmp_path: Path) -> None:
    (tmp_path / "odd.mtl").write_text("newmtl odd\nKd 1 zero 0\nmap_Kd missing texture.png\n")
    (tmp_path / "odd.obj").write_text("mtllib odd.mtl\nusemtl odd\n" + OBJ_BOX)
    asset = ingest_asset(tmp_path / "odd.obj")
    assert len(asset.parts[0].faces) == 12
    assert any("Kd ignored" in w for w in asset.warnings)
    assert any("'missing texture.png'" in w and "not found" in w for w in asset.warnings)
    (tmp_path / "negative.obj").write_text(OBJ_BOX + "f -1 -2 -9\n")
    _refused(tmp_path / "negative.obj", "out of range", "line 21")
