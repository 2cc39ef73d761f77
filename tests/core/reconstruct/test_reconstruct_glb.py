"""The GLB file: glTF 2.0 that other tools open, with a PBR base colour texture, UVs and normals."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import trimesh

from dreamedit3d_core.reconstruct import ReconstructedMesh


def _gltf_json(path: Path) -> dict:
    data = path.read_bytes()
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    assert (magic, version, length) == (b"glTF", 2, len(data))
    chunk_length, chunk_type = struct.unpack_from("<I4s", data, 12)
    assert chunk_type == b"JSON"
    return json.loads(data[20 : 20 + chunk_length])


def test_glb_loads_back_with_texture_uvs_and_normals(sphere_mesh: ReconstructedMesh, tmp_path: Path) -> None:
    path = sphere_mesh.save_glb(tmp_path / "mesh.glb")
    loaded = trimesh.load(path, force="mesh", process=False)
    assert len(loaded.faces) == len(sphere_mesh.faces)
    assert isinstance(loaded.visual, trimesh.visual.TextureVisuals)
    uv = np.asarray(loaded.visual.uv)
    assert uv.shape == (len(loaded.vertices), 2) and uv.min() >= 0.0 and uv.max() <= 1.0
    image = loaded.visual.material.baseColorTexture
    assert image.size == (sphere_mesh.texture.shape[1], sphere_mesh.texture.shape[0])
    np.testing.assert_array_equal(np.asarray(image.convert("RGB")), sphere_mesh.texture)
    normals = np.asarray(loaded.vertex_normals)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-4)
    # glTF is +Y up: our +Z (up) is the file's +Y
    np.testing.assert_allclose(loaded.vertices[:, 1], sphere_mesh.vertices[:, 2], atol=1e-5)
    np.testing.assert_allclose(loaded.vertices[:, 2], -sphere_mesh.vertices[:, 1], atol=1e-5)


def test_glb_normals_point_outwards(sphere_mesh: ReconstructedMesh) -> None:
    outward = np.einsum("ij,ij->i", sphere_mesh.normals, sphere_mesh.vertices)
    assert np.mean(outward > 0) > 0.99
    assert sphere_mesh.trimesh_world.volume > 0  # faces wind counter-clockwise seen from outside


def test_glb_json_declares_a_pbr_material_and_complete_accessors(
    sphere_mesh: ReconstructedMesh, tmp_path: Path
) -> None:
    gltf = _gltf_json(sphere_mesh.save_glb(tmp_path / "mesh.glb"))
    assert gltf["asset"]["version"] == "2.0"
    material = gltf["materials"][0]
    assert material["pbrMetallicRoughness"]["baseColorTexture"]["index"] == 0
    assert material["pbrMetallicRoughness"]["metallicFactor"] == 0.0
    attributes = gltf["meshes"][0]["primitives"][0]["attributes"]
    assert {"POSITION", "NORMAL", "TEXCOORD_0"} <= set(attributes)
    position = gltf["accessors"][attributes["POSITION"]]
    assert "min" in position and "max" in position  # required by the glTF specification
    assert gltf["images"][0]["mimeType"] == "image/png"


def test_glb_round_trips_through_load_glb(sphere_mesh: ReconstructedMesh, tmp_path: Path) -> None:
    again = ReconstructedMesh.load_glb(sphere_mesh.save_glb(tmp_path / "mesh.glb"))
    np.testing.assert_allclose(again.vertices, sphere_mesh.vertices, atol=1e-5)
    np.testing.assert_array_equal(again.faces, sphere_mesh.faces)
    np.testing.assert_allclose(again.uvs, sphere_mesh.uvs, atol=1e-6)
    np.testing.assert_array_equal(again.texture, sphere_mesh.texture)
    np.testing.assert_allclose(again.normals, sphere_mesh.normals, atol=1e-6)  # the file's, not recomputed


def test_a_glb_read_back_writes_the_same_file(sphere_mesh: ReconstructedMesh, box_mesh: ReconstructedMesh) -> None:
    """What `from_glb_bytes` reads is what was stored (its normals already unitized once), so it writes the
    same file again: a stored reconstruction can stand in for making it again."""
    for mesh in (sphere_mesh, box_mesh):
        data = mesh.glb_bytes()
        assert ReconstructedMesh.from_glb_bytes(data).glb_bytes(unitize_normals=False) == data


def test_unlit_glb_declares_khr_materials_unlit(sphere_mesh: ReconstructedMesh, tmp_path: Path) -> None:
    gltf = _gltf_json(sphere_mesh.save_glb(tmp_path / "unlit.glb", unlit=True))
    assert gltf["extensionsUsed"] == ["KHR_materials_unlit"]
    assert gltf["materials"][0]["extensions"] == {"KHR_materials_unlit": {}}
    assert "extensionsUsed" not in _gltf_json(sphere_mesh.save_glb(tmp_path / "lit.glb"))
    loaded = trimesh.load(tmp_path / "unlit.glb", force="mesh", process=False)
    assert loaded.visual.material.baseColorTexture is not None
