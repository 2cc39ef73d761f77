"""Depth, normals and part ids agree with the cameras and the normalised mesh, in every view."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from dreamedit3d_core.geometry.cameras import CameraSet, orbit_cameras, pixel_rays, project_points, unproject_depth
from dreamedit3d_core.ingest import IngestedAsset, ingest_asset
from dreamedit3d_core.render import RenderConfig, Renders, render_mesh_file, render_views

SIZE = 64
ASSETS = ["TestScene.gltf", "nested.glb", "two_objects.obj", "Duck.glb", "fuze.obj", "chair.glb"]
EXPECTED_PARTS = {"TestScene.gltf": 7, "nested.glb": 3, "two_objects.obj": 2, "Duck.glb": 1, "fuze.obj": 1,
                  "chair.glb": 6}  # fmt: skip


def _cameras() -> CameraSet:
    # MVDream's 4 views plus two off the orbit, as evaluation renders them
    return orbit_cameras([0, 90, 180, 270, 45, 200], [15, 15, 15, 15, 40, -20], fov_deg=40.0, image_size=SIZE)


@pytest.fixture(scope="module")
def rendered(
    chair: Path, shared_assets: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[IngestedAsset, Path, Renders]]:
    folder = tmp_path_factory.mktemp("assets")
    results = {}
    for name in ASSETS:
        source = chair if name == "chair.glb" else shared_assets / "good" / name
        asset = ingest_asset(source)
        asset_dir = asset.write(folder / Path(name).stem)
        config = RenderConfig(image_size=SIZE, passes_only=True)
        results[name] = (asset, asset_dir, render_views(asset_dir, _cameras(), config))
    return results


def _raycast(
    vertices: np.ndarray, faces: np.ndarray, part_of_face: np.ndarray, origins: np.ndarray, directions: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Moller-Trumbore in float64: nearest hit distance (R,) (inf: miss), face index (R,), and whether a
    face of another part lies at the same distance (coincident surfaces: either id is right)."""
    v0 = vertices[faces[:, 0]]
    e1, e2 = vertices[faces[:, 1]] - v0, vertices[faces[:, 2]] - v0
    distance, face = np.full(len(origins), np.inf), np.full(len(origins), -1)
    ambiguous = np.zeros(len(origins), dtype=bool)
    for start in range(0, len(origins), 64):
        o, d = origins[start : start + 64, None, :], directions[start : start + 64, None, :]  # (C, 1, 3)
        p = np.cross(d, e2[None])  # (C, F, 3)
        det = np.einsum("fk,cfk->cf", e1, p)
        inv = 1.0 / np.where(np.abs(det) < 1e-14, np.nan, det)
        s = o - v0[None]
        u = np.einsum("cfk,cfk->cf", s, p) * inv
        q = np.cross(s, e1[None])
        v = np.einsum("cfk,cfk->cf", np.broadcast_to(d, q.shape), q) * inv
        t = np.einsum("fk,cfk->cf", e2, q) * inv
        t = np.where((u >= 0) & (v >= 0) & (u + v <= 1) & (t > 1e-9), t, np.inf)
        best = np.argmin(t, axis=1)
        distance[start : start + 64] = t[np.arange(len(best)), best]
        face[start : start + 64] = np.where(np.isfinite(distance[start : start + 64]), best, -1)
        with np.errstate(invalid="ignore"):  # inf - inf on rays that miss
            gap = np.abs(t - t[np.arange(len(best)), best][:, None])
        tie = (gap < 1e-6) & (part_of_face[None] != part_of_face[best][:, None])
        ambiguous[start : start + 64] = tie.any(axis=1)
    return distance, face, ambiguous


def _interior(ids: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels whose 3x3 neighbourhood has a single id (away from edges)."""
    return (ndimage.maximum_filter(ids, size=3) == ids) & (ndimage.minimum_filter(ids, size=3) == ids)


@pytest.mark.parametrize("name", ASSETS)
def test_passes_match_a_ray_cast_of_the_normalised_mesh(rendered: dict, name: str) -> None:
    asset, _, renders = rendered[name]
    vertices, faces, part_of_face = asset.mesh_arrays()
    cameras = _cameras()
    for view in range(cameras.num_views):
        origins, directions = pixel_rays(cameras.cam2world[view], cameras.K[view], SIZE)
        distance, face, ambiguous = _raycast(vertices, faces, part_of_face, origins, directions)
        ray_ids = np.where(face >= 0, part_of_face[face], -1).reshape(SIZE, SIZE)
        forward = -cameras.cam2world[view][:3, 2]
        ray_depth = np.where(face >= 0, distance * (directions @ forward), 0.0).reshape(SIZE, SIZE)
        clear = ~ambiguous.reshape(SIZE, SIZE)
        check = _interior(ray_ids) & _interior(renders.part_id[view]) & (ray_ids >= 0) & clear
        assert check.sum() > 0.02 * SIZE * SIZE
        same_id = renders.part_id[view][check] == ray_ids[check]
        assert same_id.mean() >= 0.99, f"view {view}: ids agree on {same_id.mean():.3f}"
        depth_error = np.abs(renders.depth[view][check] - ray_depth[check])
        assert np.mean(depth_error < 1e-3) >= 0.99, f"view {view}: depth errors {np.percentile(depth_error, 99)}"
        # background where the rays miss, away from the silhouette
        miss = _interior(ray_ids) & (ray_ids < 0)
        assert (renders.part_id[view][miss] == -1).mean() >= 0.99
        assert np.all(renders.depth[view][renders.part_id[view] < 0] == 0.0)
        # normals: unit length, facing the camera, within a few degrees of the hit face's normal
        triangle = vertices[faces[face[check.reshape(-1)]]]  # (P, 3, 3)
        face_normal = np.cross(triangle[:, 1] - triangle[:, 0], triangle[:, 2] - triangle[:, 0])
        face_normal /= np.linalg.norm(face_normal, axis=1, keepdims=True)
        face_normal *= -np.sign(np.sum(face_normal * directions[check.reshape(-1)], axis=1, keepdims=True))
        normals = renders.normals[view][check]
        np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-4)
        assert np.mean(np.sum(normals * face_normal, axis=1) > 0.95) >= 0.99


@pytest.mark.parametrize("name", ASSETS)
def test_depth_reprojects_between_views_within_one_pixel(rendered: dict, name: str) -> None:
    _, _, renders = rendered[name]
    cameras = _cameras()
    for i in range(cameras.num_views):
        keep = _interior(renders.part_id[i]) & (renders.part_id[i] >= 0)
        points = unproject_depth(renders.depth[i], cameras.cam2world[i], cameras.K[i])[keep]
        point_normals = renders.normals[i][keep]
        for j in range(cameras.num_views):
            if i == j:
                continue
            uv, z = project_points(points, cameras.cam2world[j], cameras.K[j])
            # bilinear depth of view j at the projection, where its 4 neighbouring pixels are one surface
            x, y = uv[:, 0] - 0.5, uv[:, 1] - 0.5
            x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
            inside = (x0 >= 0) & (y0 >= 0) & (x0 < SIZE - 1) & (y0 < SIZE - 1)
            x, y, x0, y0, z, normal = x[inside], y[inside], x0[inside], y0[inside], z[inside], point_normals[inside]
            ids = renders.part_id[j]
            corners = np.stack([ids[y0, x0], ids[y0, x0 + 1], ids[y0 + 1, x0], ids[y0 + 1, x0 + 1]], axis=1)
            n = renders.normals[j]
            neighbours = ((y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1))
            bends = np.stack([np.sum(n[y0, x0] * n[b, a], axis=1) for b, a in neighbours], axis=1)
            # one part and no crease between the 4 pixels: bilinear depth is then the surface's
            solid = (corners >= 0).all(axis=1) & (corners == corners[:, :1]).all(axis=1) & (bends > 0.99).all(axis=1)
            d = renders.depth[j]
            fx, fy = x - x0, y - y0
            top = d[y0, x0] * (1 - fx) + d[y0, x0 + 1] * fx
            bottom = d[y0 + 1, x0] * (1 - fx) + d[y0 + 1, x0 + 1] * fx
            interpolated = top * (1 - fy) + bottom * fy
            # the same surface: its normal, and near the depth (farther points are hidden in view j)
            visible = solid & (np.sum(normal * n[y0, x0], axis=1) > 0.99) & (np.abs(interpolated - z) < 0.05)
            if visible.sum() < 20:
                continue
            # a depth mismatch equals a pixel shift of mismatch / (depth change per pixel)
            gradient = np.hypot(d[y0, x0 + 1] - d[y0, x0], d[y0 + 1, x0] - d[y0, x0])
            shift = np.abs(interpolated - z)[visible] / np.maximum(gradient[visible], 1e-3)
            worst = np.percentile(shift, 99)
            assert np.mean(shift <= 1.0) >= 0.99, f"views {i}->{j}: 99th percentile shift {worst:.2f} px"


@pytest.mark.parametrize("name", ASSETS)
def test_one_id_per_part_and_the_same_part_in_every_view(rendered: dict, name: str) -> None:
    asset, _, renders = rendered[name]
    cameras = _cameras()
    seen = set(np.unique(renders.part_id).tolist()) - {-1}
    assert seen == set(range(EXPECTED_PARTS[name])) == set(range(len(asset.parts)))
    for view in range(cameras.num_views):
        points = unproject_depth(renders.depth[view], cameras.cam2world[view], cameras.K[view])
        for part_id in np.unique(renders.part_id[view][renders.part_id[view] >= 0]):
            part = asset.parts[part_id]
            inside = points[renders.part_id[view] == part_id]
            low, high = part.vertices.min(axis=0) - 1e-3, part.vertices.max(axis=0) + 1e-3
            # every pixel labelled with this id lies on that part's geometry, from whichever side
            assert np.all((inside >= low) & (inside <= high)), f"view {view}: id {part_id} is not {part.name!r}"


def test_rendering_the_written_glb_gives_the_same_passes(rendered: dict) -> None:
    _, asset_dir, renders = rendered["TestScene.gltf"]
    again = render_mesh_file(asset_dir / "asset.glb", _cameras(), RenderConfig(image_size=SIZE, passes_only=True))
    assert np.mean(again.part_id == renders.part_id) > 0.999
    both = (again.part_id >= 0) & (renders.part_id >= 0)
    np.testing.assert_allclose(again.depth[both], renders.depth[both], atol=1e-4)
