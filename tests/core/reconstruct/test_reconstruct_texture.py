"""The texture: colours land on the right side, unseen surface is filled plausibly (never black)."""

from __future__ import annotations

import numpy as np

from dreamedit3d_core.geometry.cameras import orbit_cameras
from dreamedit3d_core.reconstruct import ReconstructedMesh, render_meshes
from dreamedit3d_core.reconstruct.raycast import sample_texture
from tests.core.reconstruct.conftest import SPHERE
from tests.core.reconstruct.recon_scenes import BLUE, RED, held_out_cameras, ray_cast, red_plus_x


def test_two_colour_sphere_keeps_red_on_plus_x_and_blue_on_minus_x(sphere_mesh: ReconstructedMesh) -> None:
    cameras = held_out_cameras()
    truth = ray_cast([SPHERE], cameras, red_plus_x)
    rendered = render_meshes(sphere_mesh.trimesh_world, cameras, supersample=1)
    both = rendered.mask & truth.alpha
    colours, expected = rendered.rgb[both].astype(int), truth.rgb[both].astype(int)
    red_side = expected[:, 0] > expected[:, 2]
    got_red = colours[:, 0] > colours[:, 2]
    # the red/blue border may shift by a pixel or two: compare away from it by majority
    assert np.mean(got_red == red_side) > 0.93
    assert np.mean(np.abs(colours - expected).max(axis=1) < 40) > 0.85


def test_surface_no_view_sees_is_filled_from_its_surroundings_not_black(sphere_mesh: ReconstructedMesh) -> None:
    assert 0.5 < sphere_mesh.info["texture_seen_fraction"] < 1.0  # the flat underside is unseen
    from_below = orbit_cameras([0.0, 120.0, 240.0], -70.0, fov_deg=40.0, image_size=64)
    rendered = render_meshes(sphere_mesh.trimesh_world, from_below, supersample=1)
    colours = rendered.rgb[rendered.mask].astype(int)
    assert len(colours) > 500
    assert colours.max(axis=1).min() > 120  # not black anywhere
    # the fill continues the sides' colours: the underside is red towards +X and blue towards -X
    hits = rendered.depth > 0
    assert np.mean(colours[:, 0] > colours[:, 2]) > 0.2 and np.mean(colours[:, 2] > colours[:, 0]) > 0.2
    assert hits.any()


def test_empty_texels_around_charts_repeat_chart_colours(sphere_mesh: ReconstructedMesh) -> None:
    texture = sphere_mesh.texture.astype(int)
    # no texel is left black or white: gutters take the nearest chart's colour (no seams under filtering)
    assert texture.max(axis=-1).min() > 120
    assert (texture.min(axis=-1) < 200).all()


def test_vertex_uvs_sample_the_colour_seen_at_that_vertex(sphere_mesh: ReconstructedMesh) -> None:
    colours = sample_texture(sphere_mesh.texture, sphere_mesh.uvs.astype(np.float64))
    seen_side = np.abs(sphere_mesh.vertices[:, 0]) > 0.15  # away from the red/blue border
    expected_red = sphere_mesh.vertices[:, 0] > 0
    got_red = colours[:, 0] > colours[:, 2]
    assert np.mean(got_red[seen_side] == expected_red[seen_side]) > 0.97
    np.testing.assert_allclose(
        RED / 255.0, colours[seen_side & expected_red & (sphere_mesh.vertices[:, 2] > 0)].mean(0), atol=0.08
    )
    np.testing.assert_allclose(
        BLUE / 255.0, colours[seen_side & ~expected_red & (sphere_mesh.vertices[:, 2] > 0)].mean(0), atol=0.08
    )
