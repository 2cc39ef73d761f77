"""The ray caster behind visibility and the unlit re-renders agrees with exact analytic ray casting."""

from __future__ import annotations

import numpy as np
import trimesh

from dreamedit3d_core.reconstruct import cast_rays, render_meshes
from tests.core.reconstruct.conftest import BOX
from tests.core.reconstruct.recon_scenes import held_out_cameras, ray_cast, red_plus_x


def test_mesh_ray_casting_matches_analytic_silhouettes_and_depth() -> None:
    cameras = held_out_cameras()
    truth = ray_cast([BOX], cameras)
    hits = cast_rays([BOX.mesh()], cameras)
    disagree = hits.mask != truth.alpha
    assert disagree.sum() <= 0.002 * disagree.size  # only pixel centres grazing an edge may differ
    both = hits.mask & truth.alpha
    np.testing.assert_allclose(hits.depth[both], truth.depth[both], atol=1e-4)
    np.testing.assert_allclose(hits.barycentric[both].sum(axis=-1), 1.0, atol=1e-5)


def test_unlit_render_shows_face_colours_and_antialiased_coverage() -> None:
    cameras = held_out_cameras()
    mesh = BOX.mesh().subdivide().subdivide()  # edges at x = 0: every triangle lies on one side
    mesh.visual = trimesh.visual.ColorVisuals(
        mesh, face_colors=np.c_[red_plus_x(mesh.triangles_center), np.full(len(mesh.faces), 255)]
    )
    rendered = render_meshes(mesh, cameras, supersample=2)
    truth = ray_cast([BOX], cameras, red_plus_x)
    inner = rendered.alpha == 1.0
    close = np.abs(rendered.rgb[inner].astype(int) - truth.rgb[inner].astype(int)).max(axis=1) <= 1
    assert close.mean() > 0.97  # all but the pixels straddling the red/blue border
    edge = (rendered.alpha > 0) & (rendered.alpha < 1)
    assert edge.any() and np.isin(rendered.alpha[edge], [0.25, 0.5, 0.75]).all()
    rgba = rendered.rgba
    assert rgba.shape == (*rendered.alpha.shape, 4)
    np.testing.assert_array_equal(rgba[..., 3] >= 128, rendered.alpha >= 0.5)
