"""An appearance edit: the component keeps its geometry and gets a texture baked from the sampled views.

Every texel of the component's surface takes the colour of the views that see it: visibility from its depth
against the part's own depth maps, weights from the view angle, and the component's own masks (seen from the
same cameras) so that pixels of other parts never count. Texels no view sees get their colour diffused in
from the seen surface of the same component (reconstruct.texture). The source UVs are kept where they are
usable (inside [0, 1], no overlaps); otherwise the part is unwrapped alone (xatlas).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import open3d as o3d
import trimesh

from dreamedit3d_core.geometry.cameras import CameraSet
from dreamedit3d_core.merge.config import MergeConfig
from dreamedit3d_core.reconstruct.texture import UnwrappedMesh, bake_texture, unwrap


@dataclass(frozen=True)
class BakedSurface:
    """Geometry ready for its new material: vertex i came from source vertex `source[i]` (seams split UVs)."""

    vertices: np.ndarray  # (N, 3) float32
    faces: np.ndarray  # (F, 3) int32
    uvs: np.ndarray  # (N, 2) float32, origin bottom-left
    source: np.ndarray  # (N,) int64
    texture: np.ndarray  # (T, T, 3) uint8 sRGB, row 0 at the top
    seen_fraction: float  # share of the texels some view saw
    uvs_from: str  # "source" (kept) or "unwrapped" (new charts)


def uv_overlap_share(uvs: np.ndarray, faces: np.ndarray, size: int = 512) -> float:
    """Share of the UV area that lies on other triangles (0: a proper atlas). Crossing triangles are counted
    texel by texel; triangles lying exactly on each other (mirrored islands) by area: the triangles' summed
    area against the area they cover together."""
    flat = np.concatenate([uvs, np.zeros((len(uvs), 1))], axis=1).astype(np.float32)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(flat), o3d.core.Tensor(np.asarray(faces, dtype=np.uint32)))
    centres = (np.arange(size) + 0.5) / size
    u, v = np.meshgrid(centres, centres, indexing="xy")
    origins = np.stack([u, v, np.ones_like(u)], axis=-1).reshape(-1, 3)  # (T*T, 3)
    rays = np.concatenate([origins, np.broadcast_to([0.0, 0.0, -1.0], origins.shape)], axis=1)
    counts = scene.count_intersections(o3d.core.Tensor(rays.astype(np.float32))).numpy()
    covered = counts > 0
    if not covered.any():
        return 1.0
    corners = uvs[faces].astype(np.float64)  # (F, 3, 2)
    edges = corners[:, 1:] - corners[:, :1]  # (F, 2, 2)
    summed = 0.5 * np.abs(np.cross(edges[:, 0], edges[:, 1])).sum()
    stacked = max(0.0, summed - covered.mean()) / summed  # texels are counted at their centres: a few % of noise
    crossing = float((counts > 1).sum() / covered.sum())
    return max(crossing, stacked - 0.05)


def usable_uvs(uvs: np.ndarray | None, faces: np.ndarray, config: MergeConfig) -> bool:
    """Source UVs a new texture can use: present, inside [0, 1], non-degenerate, overlapping very little."""
    if uvs is None or len(faces) == 0:
        return False
    used = uvs[np.unique(faces)]
    if used.min() < -1e-4 or used.max() > 1.0 + 1e-4:
        return False  # tiling UVs: one texel would stand for several places
    corners = uvs[faces].astype(np.float64)  # (F, 3, 2)
    edges = corners[:, 1:] - corners[:, :1]  # (F, 2, 2)
    if np.abs(np.cross(edges[:, 0], edges[:, 1])).sum() < 1e-8:
        return False
    return uv_overlap_share(uvs, faces) <= config.max_uv_overlap


def bake_surface(
    vertices: np.ndarray,
    faces: np.ndarray,
    uvs: np.ndarray | None,
    views_rgb: np.ndarray,
    masks: np.ndarray,
    cameras: CameraSet,
    config: MergeConfig,
) -> BakedSurface:
    """The surface (vertices (N, 3), faces (F, 3)) textured from `views_rgb` (V, H, W, 3) float on white, where
    its component's `masks` (V, H, W) say it is visible, seen by `cameras` (at the views' size)."""
    mesh = trimesh.Trimesh(np.asarray(vertices, np.float64), np.asarray(faces, np.int64), process=False)
    if usable_uvs(uvs, faces, config):
        normals = np.asarray(mesh.vertex_normals, dtype=np.float64)
        unwrapped = UnwrappedMesh(
            mesh.vertices.copy(), mesh.faces.copy(), np.asarray(uvs, np.float64), normals, np.arange(len(vertices))
        )
        uvs_from = "source"
    else:
        unwrapped = unwrap(mesh, config.texture.size)
        uvs_from = "unwrapped"
    baked = bake_texture(mesh, unwrapped, views_rgb, masks, cameras, config.texture, config.depth_tolerance)
    return BakedSurface(
        vertices=unwrapped.vertices.astype(np.float32),
        faces=unwrapped.faces.astype(np.int32),
        uvs=unwrapped.uvs.astype(np.float32),
        source=unwrapped.source,
        texture=baked.texture,
        seen_fraction=baked.seen_fraction,
        uvs_from=uvs_from,
    )


def _linear(srgb: np.ndarray) -> np.ndarray:
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


def _srgb(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1.0 / 2.4) - 0.055)


def _luminance(linear: np.ndarray) -> np.ndarray:
    return linear @ np.array([0.2126, 0.7152, 0.0722])


def delight(views_rgb: np.ndarray, source_rgb: np.ndarray, source_albedo: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The views' colours without the light they were drawn in, where `mask` (V, H, W) holds.

    The source render and its albedo pass, seen from the same cameras, say how much light fell on each pixel
    (the render's luminance over the albedo's, linear); dividing the sampled colour by it gives the colour a
    material needs to look like the views under the same light, instead of being lit a second time.
    `views_rgb` is (V, H, W, 3) float sRGB in [0, 1]; the source images are (V, H, W, 3) uint8 sRGB."""
    lit = _luminance(_linear(source_rgb.astype(np.float64) / 255.0))
    surface = _luminance(_linear(source_albedo.astype(np.float64) / 255.0))
    shading = lit / np.maximum(surface, 1e-6)  # (V, H, W)
    known = mask & (surface > 0.01)  # a black surface says nothing about the light
    typical = float(np.median(shading[known])) if known.any() else 1.0
    shading = np.clip(np.where(known, shading, typical), 0.05, 4.0)
    out = np.array(views_rgb, dtype=np.float64)
    out[mask] = _srgb(_linear(out[mask]) / shading[mask][:, None])
    return out
