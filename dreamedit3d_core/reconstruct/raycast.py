"""Exact ray casting of triangle meshes through the project's cameras (open3d's geometry-only ray caster).

It gives, per pixel, the planar depth, the hit triangle and its barycentric coordinates: the visibility
test of the texture bake, and an unlit renderer (colour = the surface's own colour, no lighting) for the
metrics. Unlit matters: a texture baked from lit views already holds the shading.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import open3d as o3d
import trimesh

from dreamedit3d_core.geometry.cameras import CameraSet, pixel_rays


@dataclass(frozen=True)
class RayHits:
    """What each pixel's ray hits first; background pixels have face -1 and depth 0."""

    depth: np.ndarray  # (V, H, W) float32 planar depth
    face: np.ndarray  # (V, H, W) int64 triangle index within its mesh
    mesh_index: np.ndarray  # (V, H, W) int64 which of the meshes was hit
    barycentric: np.ndarray  # (V, H, W, 3) float32 weights of the triangle's 3 corners
    normal: np.ndarray  # (V, H, W, 3) float32 world-space face normal facing the camera's side of the mesh

    @property
    def mask(self) -> np.ndarray:
        return self.face >= 0


@dataclass(frozen=True)
class MeshRender:
    """Unlit renders of a coloured mesh."""

    rgb: np.ndarray  # (V, H, W, 3) uint8 on a white background
    alpha: np.ndarray  # (V, H, W) float32 coverage in [0, 1]
    depth: np.ndarray  # (V, H, W) float32 planar depth, 0 background

    @property
    def mask(self) -> np.ndarray:
        return self.alpha >= 0.5

    @property
    def rgba(self) -> np.ndarray:
        """(V, H, W, 4) uint8: the colour un-composited from white, with coverage as alpha."""
        alpha = self.alpha[..., None]
        colour = np.where(alpha > 0, (self.rgb / 255.0 - (1.0 - alpha)) / np.maximum(alpha, 1e-6), 1.0)
        rgba = np.concatenate([np.clip(colour, 0, 1), alpha], axis=-1)  # (V, H, W, 4)
        return (rgba * 255).round().astype(np.uint8)


def cast_rays(meshes: Sequence[trimesh.Trimesh], cameras: CameraSet, supersample: int = 1) -> RayHits:
    """First hits of every pixel-centre ray of every camera (at `supersample` x the cameras' resolution)."""
    scene = o3d.t.geometry.RaycastingScene()
    for mesh in meshes:
        scene.add_triangles(
            o3d.core.Tensor(np.asarray(mesh.vertices, np.float32)),
            o3d.core.Tensor(np.asarray(mesh.faces, np.uint32)),
        )
    size = cameras.image_size * supersample
    scale = np.diag([supersample, supersample, 1.0])
    shape = (cameras.num_views, size, size)
    depth = np.zeros(shape, np.float32)
    face = np.full(shape, -1, np.int64)
    mesh_index = np.full(shape, -1, np.int64)
    barycentric = np.zeros((*shape, 3), np.float32)
    normal = np.zeros((*shape, 3), np.float32)
    for view in range(cameras.num_views):
        cam2world = cameras.cam2world[view]
        origins, directions = pixel_rays(cam2world, scale @ cameras.K[view], size)
        rays = o3d.core.Tensor(np.concatenate([origins, directions], axis=1).astype(np.float32))
        result = scene.cast_rays(rays)
        t = result["t_hit"].numpy()
        hit = np.isfinite(t)
        forward = -cam2world[:3, 2]
        planar = np.where(hit, t * (directions @ forward), 0.0)
        uv = result["primitive_uvs"].numpy()  # (H*W, 2): weights of corners 1 and 2
        weights = np.stack([1.0 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], axis=1)
        normals = result["primitive_normals"].numpy()
        facing = np.sign(np.einsum("ij,ij->i", normals, -directions))[:, None]
        depth[view] = planar.reshape(size, size)  # (H*W,) -> (H, W)
        face[view] = np.where(hit, result["primitive_ids"].numpy().astype(np.int64), -1).reshape(size, size)
        mesh_index[view] = np.where(hit, result["geometry_ids"].numpy().astype(np.int64), -1).reshape(size, size)
        barycentric[view] = np.where(hit[:, None], weights, 0.0).reshape(size, size, 3)
        normal[view] = np.where(hit[:, None], normals * facing, 0.0).reshape(size, size, 3)
    return RayHits(depth, face, mesh_index, barycentric, normal)


def surface_colours(mesh: trimesh.Trimesh, faces: np.ndarray, barycentric: np.ndarray) -> np.ndarray:
    """(N, 3) float colours in [0, 1] of points given by triangle index and barycentric weights.

    Handles textured meshes (UVs + an image, times the material's base colour factor), vertex colours,
    face colours and plain materials.
    """
    visual = mesh.visual
    if isinstance(visual, trimesh.visual.TextureVisuals):
        material = visual.material
        image = getattr(material, "baseColorTexture", None) or getattr(material, "image", None)
        factor = _material_factor(material)
        if image is not None and visual.uv is not None and len(visual.uv) == len(mesh.vertices):
            corner_uv = visual.uv[mesh.faces[faces]]  # (N, 3, 2)
            uv = np.einsum("nk,nkc->nc", barycentric, corner_uv)
            return sample_texture(np.asarray(image.convert("RGB")), uv) * factor
        return np.broadcast_to(factor, (len(faces), 3)).copy()
    if visual.kind == "vertex":
        corner = visual.vertex_colors[mesh.faces[faces], :3] / 255.0  # (N, 3, 3)
        return np.einsum("nk,nkc->nc", barycentric, corner)
    return visual.face_colors[faces, :3] / 255.0


def _material_factor(material: object) -> np.ndarray:
    factor = getattr(material, "baseColorFactor", None)
    if factor is None:
        factor = getattr(material, "diffuse", None)
    if factor is None:
        return np.ones(3)
    factor = np.asarray(factor, np.float64)[:3]
    return factor / 255.0 if factor.max() > 1.0 else factor


def sample_texture(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear, wrapping lookup of (N, 2) UVs (origin bottom-left, trimesh's convention) -> (N, C) in [0, 1]."""
    height, width = texture.shape[:2]
    x = np.mod(uv[:, 0], 1.0) * width - 0.5
    y = (1.0 - np.mod(uv[:, 1], 1.0)) * height - 0.5
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    image = texture.astype(np.float32) / 255.0 if texture.dtype == np.uint8 else texture.astype(np.float32)

    def at(row: np.ndarray, col: np.ndarray) -> np.ndarray:
        return image[np.mod(row, height), np.mod(col, width)]

    top = at(y0, x0) * (1 - fx) + at(y0, x0 + 1) * fx
    bottom = at(y0 + 1, x0) * (1 - fx) + at(y0 + 1, x0 + 1) * fx
    return top * (1 - fy) + bottom * fy


def render_meshes(
    meshes: trimesh.Trimesh | Sequence[trimesh.Trimesh], cameras: CameraSet, supersample: int = 2
) -> MeshRender:
    """Unlit renders (surface colour only) on white; `supersample`^2 rays per pixel anti-alias the edges."""
    meshes = [meshes] if isinstance(meshes, trimesh.Trimesh) else list(meshes)
    hits = cast_rays(meshes, cameras, supersample)
    colour = np.ones((*hits.face.shape, 3), np.float32)
    for index, mesh in enumerate(meshes):
        selected = hits.mesh_index == index
        if selected.any():
            colour[selected] = surface_colours(mesh, hits.face[selected], hits.barycentric[selected])
    coverage = hits.mask.astype(np.float32)
    size = cameras.image_size
    shape = (cameras.num_views, size, supersample, size, supersample)
    # (V, H*s, W*s, C) -> (V, H, s, W, s, C): average each pixel's s x s samples
    rgb = colour.reshape(*shape, 3).mean(axis=(2, 4))
    alpha = coverage.reshape(shape).mean(axis=(2, 4))
    depth = hits.depth if supersample == 1 else cast_rays(meshes, cameras, 1).depth
    return MeshRender((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8), alpha, depth)
