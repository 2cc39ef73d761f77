"""The merge: an edit's views go back onto the source asset, and only the named component changes.

The "sampled views" here are Blender renders of a known edited asset, so the answer is known: a recoloured
part must come out in its new colour with its geometry untouched, a part that grew must be rebuilt near its
new size, and every other part must be the very same geometry, UVs and material.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh
from scipy import ndimage
from scipy.spatial import cKDTree

from dreamedit3d_core.evaluate.image_metrics import masked_psnr
from dreamedit3d_core.ingest import IngestConfig, IngestedAsset, Material, Part, ingest_asset
from dreamedit3d_core.merge import MergeConfig, merge_edit
from dreamedit3d_core.merge.bake import usable_uvs
from dreamedit3d_core.render import RenderConfig, render_views

RENDER = RenderConfig(image_size=64, samples=8)
PROMPT = "a photo of <asset0> and <asset1> in blue"


def mesh_part(name: str, mesh: trimesh.Trimesh, material: int, uvs: bool = False) -> Part:
    vertices = np.asarray(mesh.vertices, np.float32)
    return Part(
        name=name,
        vertices=vertices,
        faces=np.asarray(mesh.faces, np.int32),
        face_materials=np.full(len(mesh.faces), material, np.int32),
        uvs=(vertices[:, :2] * 0.2 + 0.5).astype(np.float32) if uvs else None,  # overlapping: unusable
    )


def two_boxes(right: trimesh.Trimesh, right_colour: tuple[float, float, float]) -> IngestedAsset:
    """A green box on the left and `right` on the right, in the normalised frame (+Z up, unit sphere)."""
    left = trimesh.creation.box(extents=(0.5, 0.5, 0.5))
    left.apply_translation((-0.35, 0.0, 0.0))
    materials = [Material("green", (0.1, 0.6, 0.1, 1.0)), Material("right", (*right_colour, 1.0))]
    return IngestedAsset([mesh_part("box", left, 0, uvs=True), mesh_part("thing", right, 1)], materials, "test")


def small_box() -> trimesh.Trimesh:
    box = trimesh.creation.box(extents=(0.3, 0.3, 0.3))
    box.apply_translation((0.35, 0.0, 0.0))
    return box


def rendered(asset: IngestedAsset, folder: Path):
    asset.write(folder)
    return render_views(folder, RENDER.camera_set(), RENDER)


def component_masks(part_id: np.ndarray, parts: int) -> np.ndarray:
    return np.stack([part_id == k for k in range(parts)])  # (K, V, H, W)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[IngestedAsset, object]:
    asset = two_boxes(small_box(), (0.8, 0.1, 0.1))
    return asset, rendered(asset, tmp_path_factory.mktemp("source") / "asset")


def test_a_recoloured_part_keeps_its_geometry_and_takes_the_colour(source, tmp_path: Path) -> None:
    asset, renders = source
    target = rendered(two_boxes(small_box(), (0.1, 0.2, 0.9)), tmp_path / "target")  # the edit, as it should be
    result = merge_edit(
        asset, target.rgb_white, RENDER.camera_set(), renders, component_masks(renders.part_id, 2),
        [[0], [1]], ["<asset0>", "<asset1>"], PROMPT,
    )
    kept, edited = result.asset.parts
    assert kept is asset.parts[0] and result.asset.materials[0] is asset.materials[0]  # the very same objects
    assert edited.name == "thing" and edited.colors is None and edited.uvs is not None
    # the same surface: every new vertex is a source vertex (seams only duplicate them)
    distance = np.abs(edited.vertices[:, None] - asset.parts[1].vertices[None]).max(axis=2).min(axis=1)
    assert distance.max() < 1e-6 and len(edited.faces) == len(asset.parts[1].faces)
    rows = {row["token"]: row for row in result.components}
    assert rows["<asset0>"]["kind"] == "kept" and rows["<asset1>"]["kind"] == "appearance"
    assert rows["<asset1>"]["uvs"] == "unwrapped" and rows["<asset1>"]["seen_fraction"] > 0.5

    again = rendered(result.asset, tmp_path / "merged")
    right = renders.part_id == 1
    inside = ndimage.binary_erosion(right, structure=np.ones((1, 3, 3), bool))  # edge pixels mix with the ground
    assert (again.rgb_white[inside][:, 2].astype(int) > again.rgb_white[inside][:, 0].astype(int) + 40).mean() > 0.95
    blue = again.rgb_white[right].astype(float)  # the part is blue now ...
    # ... and lit once: it looks like the edit rendered for real, not brighter (the views' light is taken out)
    assert np.abs(blue.mean(axis=0) - target.rgb_white[right].mean(axis=0)).max() < 30
    left = renders.part_id == 0
    assert masked_psnr(renders.rgb_white, again.rgb_white, left) > 35  # the box is as it was


def test_a_part_that_grew_is_rebuilt_near_its_new_size(source, tmp_path: Path) -> None:
    asset, renders = source
    ball = trimesh.creation.icosphere(subdivisions=3, radius=0.32)
    ball.apply_translation((0.45, 0.0, 0.0))
    target = rendered(two_boxes(ball, (0.1, 0.2, 0.9)), tmp_path / "target")
    result = merge_edit(
        asset, target.rgb_white, RENDER.camera_set(), renders, component_masks(renders.part_id, 2),
        [[0], [1]], ["<asset0>", "<asset1>"], "a photo of <asset0> and <asset1> as a big blue ball",
        MergeConfig(grid_resolution=64),
    )
    row = next(row for row in result.components if row["token"] == "<asset1>")
    assert row["kind"] == "shape", row
    kept, rebuilt = result.asset.parts
    assert kept is asset.parts[0]
    # around the ball's surface (a hull from 4 views bulges between them: up to sqrt(2) x its radius), not the
    # small box's (0.15 to 0.26 from its centre), and nowhere near the kept box
    radius = np.linalg.norm(rebuilt.vertices - np.array([0.45, 0.0, 0.0]), axis=1)
    assert np.mean((radius > 0.22) & (radius < 0.5)) > 0.9, np.percentile(radius, [5, 50, 95])
    assert np.linalg.norm(rebuilt.vertices.mean(axis=0) - (0.45, 0.0, 0.0)) < 0.08
    assert rebuilt.vertices[:, 0].min() > -0.1  # the kept box ends at x = -0.1


def test_an_edit_that_names_no_component_changes_nothing(source) -> None:
    asset, renders = source
    result = merge_edit(
        asset, renders.rgb_white, RENDER.camera_set(), renders, component_masks(renders.part_id, 2),
        [[0], [1]], ["<asset0>", "<asset1>"], "a photo of <asset0> and <asset1>",
    )
    assert all(a is b for a, b in zip(result.asset.parts, asset.parts, strict=True))
    assert {row["kind"] for row in result.components} == {"kept"}


def test_source_uvs_are_kept_only_when_they_make_a_proper_atlas() -> None:
    grid = trimesh.creation.box(extents=(1, 1, 1))
    config = MergeConfig()
    overlapping = (np.asarray(grid.vertices)[:, :2] * 0.2 + 0.5).astype(np.float32)  # faces fold onto each other
    assert not usable_uvs(overlapping, np.asarray(grid.faces), config)
    assert not usable_uvs(None, np.asarray(grid.faces), config)
    assert not usable_uvs(overlapping * 3.0, np.asarray(grid.faces), config)  # tiling beyond [0, 1]
    triangle = np.array([[0, 1, 2], [0, 2, 3]])
    square = np.array([[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]], np.float32)
    assert usable_uvs(square, triangle, config)


def test_the_merged_asset_goes_back_to_the_source_frame(tmp_path: Path) -> None:
    """`to_glb(frame="source")` undoes the normalisation: the file's own coordinates come back."""
    original = two_boxes(small_box(), (0.8, 0.1, 0.1))
    path = tmp_path / "big.glb"
    scaled = IngestedAsset(
        [Part(p.name, p.vertices * 40.0 + np.float32(3.0), p.faces, p.face_materials) for p in original.parts],
        original.materials,
        "big",
    )
    path.write_bytes(scaled.to_glb())  # the file a studio gave us: 40 x bigger, off-centre
    normalised = ingest_asset(path)
    (tmp_path / "back.glb").write_bytes(normalised.to_glb(frame="source"))
    back = ingest_asset(tmp_path / "back.glb", IngestConfig(normalize=False))
    raw = ingest_asset(path, IngestConfig(normalize=False))
    for a, b in zip(back.parts, raw.parts, strict=True):
        assert a.name == b.name and np.allclose(a.vertices, b.vertices, atol=1e-4)


def test_a_region_of_one_mesh_is_edited_face_by_face(tmp_path: Path) -> None:
    """Segment Anything's components are regions of a mesh: its faces are split between them by the views."""
    from dreamedit3d_core.geometry.cameras import unproject_depth

    column = trimesh.creation.box(extents=(0.4, 0.4, 1.2)).subdivide().subdivide()
    asset = IngestedAsset([mesh_part("column", column, 0)], [Material("grey", (0.5, 0.5, 0.5, 1.0))], "test")
    renders = rendered(asset, tmp_path / "source")
    cameras = RENDER.camera_set()
    height = np.stack([unproject_depth(d, c, k)[..., 2] for d, c, k in zip(renders.depth, cameras.cam2world, cameras.K, strict=True)])
    top, bottom = renders.foreground & (height > 0.0), renders.foreground & (height <= 0.0)
    target = renders.rgb_white.copy()
    target[bottom] = (40, 60, 220)  # the lower half painted blue in every view
    result = merge_edit(
        asset, target, cameras, renders, np.stack([top, bottom]), [[], []], ["<asset0>", "<asset1>"],
        "a photo of <asset0> and <asset1> in blue",
    )
    (part,) = result.asset.parts
    assert part.name == "column" and len(result.asset.materials) == 2  # one node, the old and the new material
    centres = part.vertices[part.faces].mean(axis=1)
    new = part.face_materials == 1
    assert (centres[new, 2] < 0.05).mean() > 0.95 and (centres[~new, 2] > -0.05).mean() > 0.95
    distance, _ = cKDTree(column.triangles_center).query(centres[~new])
    assert distance.max() < 1e-6  # the kept faces are the source's faces


def test_words_that_name_only_colours_materials_or_finishes_keep_the_shape() -> None:
    from dreamedit3d_core.mvdiffusion.wording import appearance_only

    for phrase in ("in blue", "made of gold", "with a shiny wooden finish", "in dark green", "painted red"):
        assert appearance_only(phrase), phrase
    for phrase in ("wearing a red hat", "as a big blue ball", "in blue with wings", ""):
        assert not appearance_only(phrase), phrase


def test_a_reconstruction_handed_in_is_not_made_again_and_comes_back_in_both_frames(monkeypatch) -> None:
    """An edited component that maps to no geometry: the whole object is lifted from the views. Where the
    reconstruct stage already lifted these views, its GLB is taken as it is, and the files are the very ones
    reconstructing them here would give."""
    import dreamedit3d_core.merge.merge as merging
    from dreamedit3d_core.ingest.glb import source_frame
    from dreamedit3d_core.merge import MergeResult, edit_glbs
    from dreamedit3d_core.reconstruct import ReconstructConfig, ReconstructedMesh, reconstruct_views
    from tests.core.reconstruct.recon_scenes import Box, input_cameras, ray_cast, red_plus_x

    views = ray_cast([Box((-0.5, -0.35, -0.4), (0.5, 0.35, 0.3))], input_cameras(), red_plus_x)
    config = ReconstructConfig.model_validate({"grid_resolution": 48, "target_faces": 3000, "texture": {"size": 128}})
    normalization = np.diag([0.025, 0.025, 0.025, 1.0])
    normalization[:3, 3] = (0.1, -0.2, 0.3)  # the source file: 40 x bigger, off-centre
    boxes = two_boxes(small_box(), (0.8, 0.1, 0.1))
    source = IngestedAsset(boxes.parts, boxes.materials, "big", normalization)
    result = MergeResult(source, [], maps_to_geometry=False, seconds=0.0)
    made_here = edit_glbs(result, source, views.rgb, views.cameras, config)
    stored = reconstruct_views(views.rgb, views.cameras, config).glb_bytes()  # the reconstruct stage's artifact

    def reconstruct_again(*args: object, **kwargs: object) -> None:
        raise AssertionError("the views were reconstructed again")

    monkeypatch.setattr(merging, "reconstruct_views", reconstruct_again)
    normalised, in_source_frame = edit_glbs(result, source, views.rgb, views.cameras, config, reconstruction=stored)
    assert normalised == stored and (normalised, in_source_frame) == made_here
    mesh, moved = ReconstructedMesh.from_glb_bytes(stored), ReconstructedMesh.from_glb_bytes(in_source_frame)
    placement = source_frame(normalization)
    np.testing.assert_allclose(moved.vertices, mesh.vertices @ placement[:3, :3].T + placement[:3, 3], rtol=1e-6)
    np.testing.assert_array_equal(moved.faces, mesh.faces)
    np.testing.assert_array_equal(moved.texture, mesh.texture)
