"""Batch rendering: render_many against render_views, and parts-world objects as the pipeline sees them."""

from __future__ import annotations

import colorsys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from dreamedit3d_core.ingest import ingest_asset
from dreamedit3d_core.render import RenderConfig, RenderError, render_many, render_views
from dreamedit3d_core.world import WorldConfig, render_world, sample_object, write_world_asset

SIZE = 48
FAST = {"image_size": SIZE, "samples": 4}


@pytest.fixture
def temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary folder of this process and of the Blender processes it starts."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return temp


@pytest.fixture(scope="module")
def objects() -> list:
    rng = np.random.default_rng(11)
    drawn = [sample_object(rng, WorldConfig()) for _ in range(12)]
    # a varied few: the most parts first, a single part last
    return sorted(drawn, key=lambda o: -len(o.parts))[:2] + [min(drawn, key=lambda o: len(o.parts))]


@pytest.fixture(scope="module")
def world_renders(objects: list) -> list[tuple[np.ndarray, np.ndarray]]:
    calls: list[tuple[int, int]] = []
    renders = list(render_world(objects, RenderConfig(**FAST), progress=lambda d, t: calls.append((d, t)), chunk_size=2))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    return renders


def test_render_many_equals_render_views(chair: Path, shared_assets: Path, tmp_path: Path, temp_dir: Path) -> None:
    # the chair has plain materials, the duck a texture: both must be swapped cleanly between jobs
    folders = [
        ingest_asset(chair).write(tmp_path / "chair"),
        ingest_asset(shared_assets / "good" / "Duck.glb").write(tmp_path / "duck"),
    ]
    config = RenderConfig(**FAST)
    cameras = config.camera_set()
    calls: list[tuple[int, int]] = []
    many = list(render_many(folders + folders[:1], cameras, config, progress=lambda d, t: calls.append((d, t))))
    assert calls == [(1, 3), (2, 3), (3, 3)] and len(many) == 3
    for batch, folder in zip(many, folders + folders[:1], strict=True):
        single = render_views(folder, cameras, config)
        np.testing.assert_array_equal(batch.rgba, single.rgba)
        np.testing.assert_array_equal(batch.part_id, single.part_id)
        np.testing.assert_array_equal(batch.depth, single.depth)
        np.testing.assert_allclose(batch.normals, single.normals, atol=1e-6)
    assert not np.array_equal(many[0].rgba, many[1].rgba)
    assert list(temp_dir.iterdir()) == []  # nor Blender's session folders: a render farm's /tmp stays clean


def test_render_many_names_the_failing_asset(chair: Path, tmp_path: Path, temp_dir: Path) -> None:
    good = ingest_asset(chair).write(tmp_path / "good")
    bad = ingest_asset(chair).write(tmp_path / "bad")
    (bad / "meshes.npz").write_bytes(b"not an npz file")
    config = RenderConfig(**FAST)
    results = render_many([good, bad, good], config.camera_set(), config)
    assert next(results).part_id.shape == (4, SIZE, SIZE)  # the asset before the broken one still arrives
    with pytest.raises(RenderError, match=r"bad.*asset 2 of 3"):
        next(results)
    assert list(temp_dir.iterdir()) == []


def test_render_many_checks_inputs_before_starting(chair: Path, tmp_path: Path) -> None:
    config = RenderConfig(**FAST)
    with pytest.raises(ValueError, match="not an ingested asset folder"):
        list(render_many([tmp_path], config.camera_set(), config))
    folder = ingest_asset(chair).write(tmp_path / "chair")
    with pytest.raises(ValueError, match="64 px"):
        list(render_many([folder], RenderConfig(image_size=64).camera_set(), config))


def test_render_world_matches_the_ingested_glb(objects: list, world_renders: list, tmp_path: Path) -> None:
    config = RenderConfig(**FAST)
    for index in (0, 2):
        glb = write_world_asset(objects[index], tmp_path / f"object{index}.glb")
        folder = ingest_asset(glb).write(tmp_path / f"object{index}")
        expected = render_views(folder, config.camera_set(), config)
        rgb, part_id = world_renders[index]
        np.testing.assert_array_equal(part_id, expected.part_id)
        np.testing.assert_array_equal(rgb, expected.rgb_white)


def _hue_distance(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def test_every_part_is_visible_in_its_colour(objects: list, world_renders: list) -> None:
    for obj, (rgb, part_id) in zip(objects, world_renders, strict=True):
        assert rgb.shape == (4, SIZE, SIZE, 3) and rgb.dtype == np.uint8 and part_id.shape == (4, SIZE, SIZE)
        assert set(np.unique(part_id)) == {-1, *range(len(obj.parts))}
        for index, part in enumerate(obj.parts):
            # away from edges (anti-aliasing with neighbours) the part's median colour has its hue
            inside = ndimage.binary_erosion(part_id == index, structure=np.ones((1, 3, 3), dtype=bool))
            assert inside.sum() >= 10, f"{part.colour} {part.shape} is barely visible"
            median = np.median(rgb[inside].astype(float), axis=0) / 255.0
            hue = colorsys.rgb_to_hsv(*median)[0] * 360.0
            target = colorsys.rgb_to_hsv(*part.rgb)[0] * 360.0
            assert _hue_distance(hue, target) < 15.0, f"{part.colour} {part.shape}: hue {hue:.0f}, not {target:.0f}"
