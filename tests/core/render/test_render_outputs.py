"""Colour renders, backgrounds, cameras, the contact sheet, and how the renderer fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from dreamedit3d_core.geometry.cameras import CameraSet, mvdream_orbit
from dreamedit3d_core.ingest import ingest_asset, make_example_asset
from dreamedit3d_core.render import RenderConfig, RenderError, Renders, camera_table, contact_sheet, render_views
from dreamedit3d_core.render.render import SCENE_SCRIPT

SIZE = 64
FAST = {"image_size": SIZE, "samples": 4}


@pytest.fixture(scope="module")
def asset_dirs(shared_assets: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("assets")
    sources = {
        "chair": make_example_asset(folder / "chair.glb"),
        "TestScene": shared_assets / "good" / "TestScene.gltf",
        "Duck": shared_assets / "good" / "Duck.glb",
    }
    return {name: ingest_asset(path).write(folder / name) for name, path in sources.items()}


@pytest.fixture(scope="module")
def chair(asset_dirs: dict[str, Path]) -> Renders:
    config = RenderConfig(**FAST)
    return render_views(asset_dirs["chair"], config.camera_set(), config)


def _mean_colour(renders: Renders, part: int) -> np.ndarray:
    return renders.rgba[..., :3][renders.part_id == part].astype(float).mean(axis=0)


def test_colour_render_shapes_alpha_and_white_background(chair: Renders) -> None:
    views = 4
    assert chair.rgba.shape == (views, SIZE, SIZE, 4) and chair.rgba.dtype == np.uint8
    assert chair.rgb_white.shape == (views, SIZE, SIZE, 3) and chair.rgb_white.dtype == np.uint8
    assert chair.depth.shape == (views, SIZE, SIZE) and chair.depth.dtype == np.float32
    assert chair.normals.shape == (views, SIZE, SIZE, 3) and chair.normals.dtype == np.float32
    assert chair.part_id.shape == (views, SIZE, SIZE) and chair.part_id.dtype == np.int32
    alpha = chair.rgba[..., 3]
    # far from the object: transparent, and white in the composite
    far = ~ndimage.binary_dilation(chair.foreground, structure=np.ones((1, 7, 7), dtype=bool))
    assert far.mean() > 0.3
    assert np.all(alpha[far] == 0) and np.all(chair.rgb_white[far] == 255)
    inside = ndimage.binary_erosion(chair.foreground, structure=np.ones((1, 3, 3), dtype=bool))
    assert np.mean(alpha[inside] == 255) > 0.99 and np.all(alpha[chair.foreground] > 0)
    assert np.all(chair.depth[~chair.foreground] == 0.0) and np.all(chair.normals[~chair.foreground] == 0.0)
    assert np.all(chair.depth[chair.foreground] > 0.0)


def test_materials_show_their_colours(chair: Renders, asset_dirs: dict[str, Path]) -> None:
    seat, back, leg = _mean_colour(chair, 0), _mean_colour(chair, 5), _mean_colour(chair, 1)
    assert seat[0] > 1.5 * seat[2] and seat[0] > 1.5 * seat[1]  # red cushion
    assert back[2] > 1.5 * back[0]  # blue paint
    assert leg.sum() < seat.sum() and leg[0] > leg[2]  # dark brown wood
    config = RenderConfig(**FAST)
    duck = render_views(asset_dirs["Duck"], config.camera_set(), config)
    body = _mean_colour(duck, 0)
    assert body[0] > 1.5 * body[2] and body[1] > 1.5 * body[2]  # the yellow texture, not the white factor
    assert duck.rgba[..., :3][duck.part_id == 0].std(axis=0).max() > 10  # eyes, beak: the texture is mapped


def test_the_albedo_pass_is_each_materials_own_colour_whatever_the_light(chair: Renders, asset_dirs: dict[str, Path]) -> None:
    from dreamedit3d_core.ingest import IngestedAsset

    asset = IngestedAsset.read(asset_dirs["chair"])
    assert chair.albedo.shape == (4, SIZE, SIZE, 3) and chair.albedo.dtype == np.uint8
    assert np.all(chair.albedo[~chair.foreground] == 255)
    for part_id, part in enumerate(asset.parts):
        pixels = chair.albedo[chair.part_id == part_id].astype(float)  # lit and shadowed sides alike
        linear = np.asarray(asset.materials[int(part.face_materials[0])].base_color[:3])
        srgb = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055) * 255
        # the material's colour over the whole part (Cycles' diffuse colour is a few percent under it, more at
        # grazing angles where the specular layer takes its share)
        near = np.abs(pixels - srgb).max(axis=1) < 10
        assert near.mean() > 0.9, (part.name, pixels.mean(axis=0), srgb)
    lit = chair.rgb_white[chair.part_id == 0].astype(float).mean(axis=1)
    assert lit.std() > 5  # while the colour render's shading varies over the same part


def test_every_side_is_lit(chair: Renders) -> None:
    # the same part seen from the front, sides and back is neither black nor blown out in any view
    for view in range(chair.num_views):
        mask = chair.part_id[view] == 0
        if mask.sum() > 20:
            luminance = chair.rgb_white[view][mask].mean()
            assert 30 < luminance < 250, f"view {view}: mean luminance {luminance}"


def test_passes_only_is_cheap_and_keeps_geometry(chair: Renders, asset_dirs: dict[str, Path]) -> None:
    config = RenderConfig(image_size=SIZE, passes_only=True)
    passes = render_views(asset_dirs["chair"], config.camera_set(), config)
    np.testing.assert_array_equal(passes.part_id, chair.part_id)
    np.testing.assert_allclose(passes.depth, chair.depth, atol=1e-5)
    assert passes.stats["colour_s_per_view"] == 0.0 < chair.stats["colour_s_per_view"]
    assert set(np.unique(passes.rgba[..., 3])) <= {0, 255}  # one sample through the pixel centre


def test_camera_table_matches_mvdream_get_camera() -> None:
    cameras = mvdream_orbit(4, 15.0, 90.0, fov_deg=40.0, image_size=256)
    table = camera_table(cameras)
    assert list(table) == ["view", "azimuth", "elevation", "cam2world", "K", "fov_deg", "image_size", "mvdream_camera"]
    assert table["azimuth"] == [90.0, 180.0, 270.0, 360.0] and table["elevation"] == [15.0] * 4
    for row, azimuth in enumerate(table["azimuth"]):
        # MVDream: unit-sphere OpenGL look-at (+Y up), rows right/up/back as columns, then +Y up -> +Z up
        e, a = np.radians(15.0), np.radians(azimuth)
        position = np.array([np.cos(e) * np.sin(a), np.sin(e), np.cos(e) * np.cos(a)])
        forward = -position
        right = np.cross(forward, [0.0, 1.0, 0.0])
        right /= np.linalg.norm(right)
        up = np.cross(right, forward)
        matrix = np.eye(4)
        matrix[:3, :3] = np.stack([right, up, -forward], axis=1)
        matrix[:3, 3] = position
        blender = np.array([[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]]) @ matrix
        np.testing.assert_allclose(table["mvdream_camera"][row], blender.reshape(16), atol=1e-6)
        assert np.array(table["cam2world"][row]).shape == (4, 4) and np.array(table["K"][row]).shape == (3, 3)


def test_contact_sheet_layout(chair: Renders) -> None:
    sheet = contact_sheet(chair)
    assert sheet.shape == (4 * SIZE, 4 * SIZE, 3) and sheet.dtype == np.uint8
    np.testing.assert_array_equal(sheet[:SIZE, :SIZE], chair.rgb_white[0])
    background = ~chair.foreground[0]
    for row in (1, 2, 3):  # depth, normals, ids: black background, something drawn on the object
        tile = sheet[row * SIZE : (row + 1) * SIZE, :SIZE]
        assert np.all(tile[background] == 0) and tile[chair.foreground[0]].max() > 0
    ids = sheet[3 * SIZE :, :SIZE][chair.foreground[0]]
    assert len(np.unique(ids, axis=0)) == len(np.unique(chair.part_id[0][chair.foreground[0]]))


def test_more_views_larger_images_and_the_blender_style_command(asset_dirs: dict[str, Path], tmp_path: Path) -> None:
    config = RenderConfig(image_size=32, passes_only=True, azimuths=[0, 45, 90, 135, 180, 225, 270, 315], elevation=30)
    cameras = config.camera_set()
    renders = render_views(asset_dirs["TestScene"], cameras, config)
    assert renders.part_id.shape == (8, 32, 32) and set(np.unique(renders.part_id)) == set(range(-1, 7))
    # `blender -b --python blender_scene.py -- ARGS` passes our arguments after "--": the same parser
    np.savez(tmp_path / "cameras.npz", cam2world=cameras.cam2world, K=cameras.K, image_size=np.int64(32))
    (tmp_path / "config.json").write_text(config.model_dump_json())
    command = [sys.executable, str(SCENE_SCRIPT), "--", "--asset-dir", str(asset_dirs["TestScene"])]
    command += ["--cameras", str(tmp_path / "cameras.npz"), "--config", str(tmp_path / "config.json")]
    command += ["--output", str(tmp_path / "out.npz")]
    blender_temp = {**os.environ, "TMPDIR": str(tmp_path)}  # the script leaves with os._exit, not removing it
    subprocess.run(command, check=True, capture_output=True, timeout=300, env=blender_temp)
    with np.load(tmp_path / "out.npz", allow_pickle=False) as out:
        np.testing.assert_array_equal(out["part_id"], renders.part_id)


def test_the_object_fills_the_frame_the_same_way_at_every_size(asset_dirs: dict[str, Path]) -> None:
    masks = {}
    for size in (128, 512):
        config = RenderConfig(image_size=size, passes_only=True, azimuths=[30.0])
        masks[size] = render_views(asset_dirs["Duck"], config.camera_set(), config).foreground[0]
    # (512, 512) -> (128, 4, 128, 4): the large mask's coverage of each small pixel
    coverage = masks[512].reshape(128, 4, 128, 4).mean(axis=(1, 3))
    assert abs(coverage.mean() - masks[128].mean()) < 0.01
    assert np.mean((coverage > 0.5) == masks[128]) > 0.98


def test_bad_inputs_and_blender_failures(asset_dirs: dict[str, Path], tmp_path: Path) -> None:
    config = RenderConfig(image_size=SIZE, passes_only=True)
    with pytest.raises(ValueError, match="not an ingested asset folder"):
        render_views(tmp_path, config.camera_set(), config)
    with pytest.raises(ValueError, match="128 px"):
        render_views(asset_dirs["chair"], RenderConfig(image_size=128).camera_set(), config)
    cameras = config.camera_set()
    squashed = cameras.K.copy()
    squashed[:, 1, 1] *= 2
    skewed = CameraSet(cameras.elevations, cameras.azimuths, cameras.cam2world, squashed, cameras.fov_deg, SIZE)
    with pytest.raises(ValueError, match="square pixels"):
        render_views(asset_dirs["chair"], skewed, config)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "scene.json").write_text((asset_dirs["chair"] / "scene.json").read_text())
    (broken / "meshes.npz").write_bytes(b"not a zip")
    with pytest.raises(RenderError, match="exit code 1"):
        render_views(broken, config.camera_set(), config)
    with pytest.raises(ValueError):
        RenderConfig(device="tpu")
    with pytest.raises(ValueError):
        RenderConfig(image_size=64, samples=0)


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@pytest.mark.gpu
def test_gpu_render_matches_cpu_passes(asset_dirs: dict[str, Path], chair: Renders) -> None:
    if not _has_cuda():
        pytest.skip("needs a CUDA GPU")
    config = RenderConfig(**FAST, device="gpu")
    gpu = render_views(asset_dirs["chair"], config.camera_set(), config)
    assert gpu.stats["gpu"] == 1.0
    assert np.mean(gpu.part_id == chair.part_id) > 0.999
    assert np.abs(gpu.rgb_white.astype(int) - chair.rgb_white.astype(int)).mean() < 5
