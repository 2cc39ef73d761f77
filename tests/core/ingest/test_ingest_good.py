"""Ingest of valid files: parts, materials, normalisation, up axis, and the written asset folder."""

from __future__ import annotations

import json
import logging
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

from dreamedit3d_core.ingest import AssetError, IngestConfig, IngestedAsset, ingest_asset

GOOD_FILES = ["Duck.glb", "TestScene.gltf", "nested.glb", "fuze.obj", "two_objects.obj"]
EXPECTED_PARTS = {
    "TestScene.gltf": ["Cube", "Sphere", "Plane", "Cylinder", "d8 (1)", "Cube_1", "d8"],
    "nested.glb": ["block03", "block02", "block01"],
    "two_objects.obj": ["cube", "tetra"],
    "Duck.glb": ["LOD3spShape"],
    "fuze.obj": ["fuze"],
}
TABLE_COLUMNS = ["part_id", "name", "num_vertices", "num_faces", "surface_area", "bbox_min", "bbox_max", "material"]


def _glb_document(data: bytes) -> dict:
    (json_length,) = struct.unpack_from("<I", data, 12)
    return json.loads(data[20 : 20 + json_length])


@pytest.mark.parametrize("name", GOOD_FILES)
def test_good_asset_is_centred_on_the_unit_sphere_with_named_parts(shared_assets: Path, name: str) -> None:
    asset = ingest_asset(shared_assets / "good" / name)
    vertices, faces, part_of_face = asset.mesh_arrays()
    centre = 0.5 * (vertices.min(axis=0) + vertices.max(axis=0))
    np.testing.assert_allclose(centre, 0.0, atol=1e-6)
    assert np.linalg.norm(vertices, axis=1).max() == pytest.approx(1.0, abs=1e-6)
    assert [p.name for p in asset.parts] == EXPECTED_PARTS[name]
    table = asset.parts_table()
    assert list(table) == TABLE_COLUMNS
    assert table["part_id"] == list(range(len(asset.parts)))
    assert all(n > 0 for n in table["num_faces"]) and all(a > 0 for a in table["surface_area"])
    assert sum(table["num_faces"]) == len(faces) == len(part_of_face)
    for low, high in zip(table["bbox_min"], table["bbox_max"], strict=True):
        assert len(low) == 3 and np.all(np.array(low) <= np.array(high))
    for part in asset.parts:
        assert part.faces.min() >= 0 and part.faces.max() < len(part.vertices)
        assert part.face_materials.max() < len(asset.materials)


def test_gltf_parts_keep_node_transforms_and_instancing(shared_assets: Path) -> None:
    path = shared_assets / "good" / "TestScene.gltf"
    asset = ingest_asset(path)
    scene = trimesh.load(path, force="scene", process=False)
    world = scene.to_geometry().vertices  # trimesh applies the node transforms itself
    expected = world @ asset.normalization[:3, :3].T + asset.normalization[:3, 3]
    vertices, _, _ = asset.mesh_arrays()
    np.testing.assert_allclose(vertices.min(axis=0), expected.min(axis=0), atol=1e-5)
    np.testing.assert_allclose(vertices.max(axis=0), expected.max(axis=0), atol=1e-5)
    parts = {p.name: p for p in asset.parts}
    # the two d8 dice instance one mesh: same shape, different places
    assert len(parts["d8"].faces) == len(parts["d8 (1)"].faces) == 12
    assert np.abs(parts["d8"].vertices.mean(0) - parts["d8 (1)"].vertices.mean(0)).max() > 0.05
    assert sorted(asset.parts_table()["material"]) == sorted(
        ["Default-Material", "TestMaterial1", "Default-Material", "UnityStandardMaterial", "Material.001",
         "ConstantMat", "Material.001"]
    )  # fmt: skip


def test_nested_glb_applies_parent_transforms(shared_assets: Path) -> None:
    path = shared_assets / "good" / "nested.glb"
    asset = ingest_asset(path)
    scene = trimesh.load(path, force="scene", process=False)
    for node in scene.graph.nodes_geometry:  # node names here are unique: block01..03
        transform, geometry = scene.graph[node]
        world = trimesh.transform_points(scene.geometry[geometry].vertices, transform)
        expected = world @ asset.normalization[:3, :3].T + asset.normalization[:3, 3]
        part = next(p for p in asset.parts if p.name == node)
        np.testing.assert_allclose(np.sort(part.vertices, axis=0), np.sort(expected, axis=0), atol=1e-5)


def test_textured_assets_keep_uvs_and_texture_images(shared_assets: Path) -> None:
    for name in ("Duck.glb", "fuze.obj"):  # fuze's texture file name has a space in it
        asset = ingest_asset(shared_assets / "good" / name)
        (part,) = asset.parts
        assert part.uvs is not None and part.uvs.shape == (len(part.vertices), 2)
        texture = asset.materials[part.face_materials[0]].texture
        assert texture is not None and texture.dtype == np.uint8 and texture.ndim == 3 and texture.shape[2] in (3, 4)
        assert texture.std() > 10  # a real image, not a flat colour


def test_example_chair_is_z_up_and_faces_minus_y(chair: Path) -> None:
    asset = ingest_asset(chair)
    table = asset.parts_table()
    assert table["name"] == ["seat", "leg_front_left", "leg_front_right", "leg_back_left", "leg_back_right", "back"]
    assert len(set(table["material"])) == 3
    rows = zip(table["name"], table["bbox_min"], table["bbox_max"], strict=True)
    box = {name: (np.array(low), np.array(high)) for name, low, high in rows}
    # glTF's +Y up became +Z: legs at the bottom, the back on top of the seat; the front legs at -Y
    assert box["leg_front_left"][0][2] == pytest.approx(-box["back"][1][2], abs=0.2)
    assert box["back"][1][2] > box["seat"][1][2] > box["leg_front_left"][1][2]
    assert box["leg_front_left"][1][1] < box["leg_back_left"][0][1]
    assert box["back"][0][1] > box["seat"][0][1]


def test_up_axis_setting_and_normalize_off(tmp_path: Path) -> None:
    path = tmp_path / "tall.obj"  # a box 3 units tall along the file's Z
    box = trimesh.creation.box(extents=(1.0, 1.0, 3.0))
    lines = [f"v {x} {y} {z}" for x, y, z in box.vertices] + [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in box.faces]
    path.write_text("\n".join(lines) + "\n")
    extent = lambda asset: np.ptp(asset.mesh_arrays()[0], axis=0)  # noqa: E731
    assert np.argmax(extent(ingest_asset(path))) == 1  # default +Y up: the file's Z becomes -Y
    z_up = ingest_asset(path, IngestConfig(up_axis="+z"))
    assert np.argmax(extent(z_up)) == 2
    raw = ingest_asset(path, IngestConfig(up_axis="+z", normalize=False))
    np.testing.assert_allclose(extent(raw), [1.0, 1.0, 3.0], atol=1e-6)
    np.testing.assert_allclose(raw.normalization, np.eye(4))
    x_up = ingest_asset(path, IngestConfig(up_axis="-x", normalize=False))
    np.testing.assert_allclose(extent(x_up), [3.0, 1.0, 1.0], atol=1e-6)


def test_obj_objects_materials_and_vertex_colours(tmp_path: Path) -> None:
    (tmp_path / "two mats.mtl").write_text("newmtl red\nKd 1 0 0\nnewmtl blue\nKd 0 0 1\n")
    (tmp_path / "colours.obj").write_text(
        "mtllib two mats.mtl\no thing\n"
        "v 0 0 0 1 0 0\nv 1 0 0 0 1 0\nv 1 1 0 0 0 1\nv 0 1 0 1 1 1\nv 0 0 1 0.5 0.5 0.5\n"
        "usemtl red\nf 1 2 3\nf 1 3 4\nusemtl blue\nf 1 2 5\no other\nusemtl red\nf 2 3 5\n"
    )
    asset = ingest_asset(tmp_path / "colours.obj")
    assert [p.name for p in asset.parts] == ["thing", "other"]
    assert [m.name for m in asset.materials] == ["red", "blue"]
    assert asset.materials[0].base_color[:3] == (1.0, 0.0, 0.0)
    thing = asset.parts[0]
    assert sorted(np.unique(thing.face_materials).tolist()) == [0, 1]
    assert asset.parts_table()["material"] == ["red", "red"]  # red covers most of "thing"
    assert thing.colors is not None and thing.colors.dtype == np.uint8
    assert {tuple(c) for c in thing.colors[:, :3].tolist()} >= {(255, 0, 0), (0, 255, 0), (0, 0, 255)}
    assert asset.warnings == []


def test_ply_and_stl_ingest_with_colours(tmp_path: Path) -> None:
    box = trimesh.creation.box()
    box.visual.vertex_colors = np.tile([10, 200, 30, 255], (len(box.vertices), 1))
    for encoding in ("binary", "ascii"):
        (tmp_path / f"box_{encoding}.ply").write_bytes(box.export(file_type="ply", encoding=encoding))
        asset = ingest_asset(tmp_path / f"box_{encoding}.ply")
        assert len(asset.parts[0].faces) == 12
        np.testing.assert_array_equal(asset.parts[0].colors[0], [10, 200, 30, 255])
    (tmp_path / "box.stl").write_bytes(box.export(file_type="stl"))
    (tmp_path / "box_ascii.stl").write_text(trimesh.exchange.stl.export_stl_ascii(box))
    for name in ("box.stl", "box_ascii.stl"):
        asset = ingest_asset(tmp_path / name)
        assert len(asset.parts[0].faces) == 12
        assert np.linalg.norm(asset.mesh_arrays()[0], axis=1).max() == pytest.approx(1.0, abs=1e-6)


def test_vertex_colours_survive_the_written_glb(tmp_path: Path) -> None:
    box = trimesh.creation.box()
    box.visual.vertex_colors = np.tile([10, 200, 30, 255], (len(box.vertices), 1))
    box.visual.vertex_colors[0] = [250, 120, 0, 255]
    (tmp_path / "box.ply").write_bytes(box.export(file_type="ply"))
    asset = ingest_asset(tmp_path / "box.ply")
    again = ingest_asset(asset.write(tmp_path / "asset") / "asset.glb", IngestConfig(normalize=False))
    colours = {tuple(c) for c in asset.parts[0].colors.tolist()}
    assert colours == {tuple(c) for c in again.parts[0].colors.tolist()} == {(10, 200, 30, 255), (250, 120, 0, 255)}


def test_degenerate_faces_are_dropped_and_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "degenerate.obj").write_text(
        "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 2 0 0\nf 1 2 3\nf 1 2 4\nf 1 1 3\n"  # collinear, repeated vertex
    )
    with caplog.at_level(logging.WARNING):
        asset = ingest_asset(tmp_path / "degenerate.obj")
    assert len(asset.parts[0].faces) == 1
    assert len(asset.parts[0].vertices) == 3  # the vertex only the dropped faces used is gone too
    assert any("dropped 2 degenerate" in w for w in asset.warnings)
    assert any("dropped 2 degenerate" in r.getMessage() for r in caplog.records)


def test_write_and_read_round_trip(shared_assets: Path, tmp_path: Path) -> None:
    asset = ingest_asset(shared_assets / "good" / "TestScene.gltf")
    folder = asset.write(tmp_path / "asset")
    assert {p.name for p in folder.iterdir()} >= {"asset.glb", "scene.json", "meshes.npz"}
    with np.load(folder / "meshes.npz", allow_pickle=False) as arrays:
        assert arrays["p000_vertices"].dtype == np.float32
    again = IngestedAsset.read(folder)
    assert again.parts_table() == asset.parts_table()
    for a, b in zip(asset.parts, again.parts, strict=True):
        np.testing.assert_array_equal(a.vertices, b.vertices)
        np.testing.assert_array_equal(a.faces, b.faces)
    with pytest.raises(FileExistsError):
        asset.write(folder)
    asset.write(folder, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["asset"]  # no staging leftovers


def test_failed_write_leaves_nothing(shared_assets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asset = ingest_asset(shared_assets / "good" / "Duck.glb")

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", fail)
    with pytest.raises(OSError, match="disk full"):
        asset.write(tmp_path / "asset")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["TestScene.gltf", "Duck.glb", "fuze.obj"])
def test_written_glb_is_valid_and_reingests_to_the_same_asset(shared_assets: Path, tmp_path: Path, name: str) -> None:
    asset = ingest_asset(shared_assets / "good" / name)
    glb = asset.write(tmp_path / "asset") / "asset.glb"
    document = _glb_document(glb.read_bytes())
    assert [node["name"] for node in document["nodes"]] == [p.name for p in asset.parts]
    assert len(document["scenes"][0]["nodes"]) == len(asset.parts)
    assert struct.unpack_from("<I", glb.read_bytes(), 8)[0] == glb.stat().st_size
    again = ingest_asset(glb, IngestConfig(normalize=False))
    assert [p.name for p in again.parts] == [p.name for p in asset.parts]
    for a, b in zip(asset.parts, again.parts, strict=True):
        np.testing.assert_allclose(np.sort(a.vertices, axis=0), np.sort(b.vertices, axis=0), atol=1e-6)
        assert len(a.faces) == len(b.faces)
        if a.uvs is not None:
            np.testing.assert_allclose(np.sort(a.uvs, axis=0), np.sort(b.uvs, axis=0), atol=1e-6)
    for a, b in zip(asset.materials, again.materials, strict=True):
        assert a.name == b.name
        np.testing.assert_allclose(a.base_color, b.base_color, atol=1 / 255)
        assert (a.texture is None) == (b.texture is None)


def test_blender_imports_the_written_glb(chair: Path, tmp_path: Path) -> None:
    asset = ingest_asset(chair)
    glb = asset.write(tmp_path / "asset") / "asset.glb"
    script = (
        "import bpy, sys, os\n"
        "bpy.ops.wm.read_factory_settings(use_empty=True)\n"
        f"bpy.ops.import_scene.gltf(filepath={str(glb)!r})\n"
        "print('NAMES', sorted(o.name for o in bpy.data.objects if o.type == 'MESH'))\n"
        "print('MATERIALS', sorted(m.name for m in bpy.data.materials))\n"
        "sys.stdout.flush(); os._exit(0)\n"  # bpy may crash at interpreter exit
    )
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # Blender's session folder, which os._exit leaves behind
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    names = next(line for line in result.stdout.splitlines() if line.startswith("NAMES"))
    assert names == "NAMES " + str(sorted(p.name for p in asset.parts))
    assert "red_cushion" in result.stdout


def test_ingest_config_rejects_unknown_settings() -> None:
    with pytest.raises(ValueError):
        IngestConfig(up_axis="up")
    with pytest.raises(ValueError):
        IngestConfig(colour="red")
    assert issubclass(AssetError, ValueError)
