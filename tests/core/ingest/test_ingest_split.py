"""An asset that comes as one mesh gets parts: its materials, else its separate bodies (never its UV seams)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh

from dreamedit3d_core.ingest import ingest_asset
from dreamedit3d_core.ingest.split import MAX_PIECES


def test_an_stl_of_three_bodies_has_three_parts(tmp_path: Path) -> None:
    bodies = [
        trimesh.creation.box(),
        trimesh.creation.icosphere().apply_translation((3, 0, 0)),
        trimesh.creation.cylinder(0.5, 1).apply_translation((0, 3, 0)),
    ]
    trimesh.util.concatenate(bodies).export(tmp_path / "three.stl")
    asset = ingest_asset(tmp_path / "three.stl")
    assert [part.name for part in asset.parts] == ["three_0", "three_1", "three_2"]  # in file order
    assert [len(part.faces) for part in asset.parts] == [len(body.faces) for body in bodies]


def test_one_object_with_two_materials_has_a_part_per_material(tmp_path: Path) -> None:
    (tmp_path / "two.mtl").write_text("newmtl wood\nKd 0.5 0.3 0.1\nnewmtl metal\nKd 0.7 0.7 0.7\n")
    (tmp_path / "table.obj").write_text(
        "mtllib two.mtl\no table\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nv 0 0 1\n"
        "usemtl wood\nf 1 2 3\nf 1 3 4\nusemtl metal\nf 1 2 5\n"
    )
    asset = ingest_asset(tmp_path / "table.obj")
    assert [part.name for part in asset.parts] == ["table_wood", "table_metal"]
    assert [asset.materials[part.face_materials[0]].name for part in asset.parts] == ["wood", "metal"]


def test_uv_seams_do_not_split_a_body_and_multi_part_files_stay_as_they_are(shared_assets: Path, tmp_path: Path) -> None:
    sphere = trimesh.creation.uv_sphere()  # its seam duplicates vertices at the same positions
    sphere.visual = trimesh.visual.TextureVisuals(uv=np.random.default_rng(0).random((len(sphere.vertices), 2)))
    unwelded = trimesh.Trimesh(sphere.vertices[sphere.faces].reshape(-1, 3), np.arange(3 * len(sphere.faces)).reshape(-1, 3), process=False)
    unwelded.export(tmp_path / "ball.obj")
    assert len(ingest_asset(tmp_path / "ball.obj").parts) == 1
    assert [p.name for p in ingest_asset(shared_assets / "good" / "two_objects.obj").parts] == ["cube", "tetra"]


def test_a_cloud_of_fragments_stays_one_part_with_a_warning(tmp_path: Path) -> None:
    pieces = [trimesh.creation.box(extents=(0.1, 0.1, 0.1)).apply_translation((i, 0, 0)) for i in range(MAX_PIECES + 1)]
    trimesh.util.concatenate(pieces).export(tmp_path / "debris.stl")
    asset = ingest_asset(tmp_path / "debris.stl")
    assert len(asset.parts) == 1 and any("separate bodies" in w for w in asset.warnings)
