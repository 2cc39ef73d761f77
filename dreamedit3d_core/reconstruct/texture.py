"""UV unwrapping (xatlas) and texture baking from the views.

Each texel is a point on the mesh. Every view that sees it (its depth agrees with the mesh's own depth map
in that view, i.e. nothing of the mesh is in front) votes for the colour under its projection, weighted by
cos(normal, direction to the camera)^sharpness and faded near the view's silhouette edge, where pixels mix
with the background. Surface no view sees (the underside, deep concavities) is filled by harmonic
interpolation over the mesh: the colour diffuses in from the seen surface around it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import open3d as o3d
import trimesh
import xatlas
from scipy import ndimage, sparse
from scipy.sparse.linalg import spsolve
from scipy.spatial import cKDTree

from dreamedit3d_core.geometry.cameras import CameraSet, project_points
from dreamedit3d_core.reconstruct.config import TextureConfig
from dreamedit3d_core.reconstruct.raycast import cast_rays, sample_texture
from dreamedit3d_core.reconstruct.views import silhouette_distance

# colours for points no view sees: (N, 3) world points -> (N, 3) colours in [0, 1]
FallbackColours = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class UnwrappedMesh:
    """A mesh split along its UV seams: vertex i of the result is vertex source[i] of the input."""

    vertices: np.ndarray  # (N, 3) float64
    faces: np.ndarray  # (F, 3) int64
    uvs: np.ndarray  # (N, 2) float64 in [0, 1], origin bottom-left
    normals: np.ndarray  # (N, 3) float64 unit, smooth across seams
    source: np.ndarray  # (N,) int64


def unwrap(mesh: trimesh.Trimesh, texture_size: int) -> UnwrappedMesh:
    """Charts and packing by xatlas for a `texture_size`^2 texture (2-texel gutters between charts)."""
    atlas = xatlas.Atlas()
    atlas.add_mesh(np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces, np.uint32))
    pack = xatlas.PackOptions()
    pack.resolution = int(texture_size)
    pack.padding = 2
    pack.bilinear = True
    atlas.generate(xatlas.ChartOptions(), pack)
    source, faces, uvs = atlas[0]
    source = source.astype(np.int64)
    normals = np.asarray(mesh.vertex_normals)[source]
    # a vertex whose faces cancel out has no normal: point it away from the centre instead
    flat = np.linalg.norm(normals, axis=1) < 0.5
    if flat.any():
        outward = np.asarray(mesh.vertices)[source[flat]] - mesh.centroid
        normals[flat] = outward / np.maximum(np.linalg.norm(outward, axis=1, keepdims=True), 1e-12)
        normals[flat & (np.linalg.norm(normals, axis=1) < 0.5)] = [0.0, 0.0, 1.0]
    return UnwrappedMesh(
        np.asarray(mesh.vertices)[source], faces.astype(np.int64), uvs.astype(np.float64), normals, source
    )


def rasterize_uv(uvs: np.ndarray, faces: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Which triangle covers each texel centre, and where: (T, T) face index (-1 empty), (T, T, 3) weights.

    The UV layout is ray cast as a flat mesh at z = 0, straight down through every texel centre.
    """
    flat = np.concatenate([uvs, np.zeros((len(uvs), 1))], axis=1).astype(np.float32)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(flat), o3d.core.Tensor(faces.astype(np.uint32)))
    rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    u = (cols + 0.5) / size
    v = 1.0 - (rows + 0.5) / size  # texture row 0 is the top of the image, v grows upwards
    origins = np.stack([u, v, np.ones_like(u)], axis=-1).reshape(-1, 3)  # (T*T, 3)
    directions = np.broadcast_to([0.0, 0.0, -1.0], origins.shape)
    rays = o3d.core.Tensor(np.concatenate([origins, directions], axis=1).astype(np.float32))
    result = scene.cast_rays(rays)
    hit = np.isfinite(result["t_hit"].numpy())
    face = np.where(hit, result["primitive_ids"].numpy().astype(np.int64), -1)
    weights_12 = result["primitive_uvs"].numpy()
    weights = np.stack([1.0 - weights_12.sum(axis=1), weights_12[:, 0], weights_12[:, 1]], axis=1)
    return face.reshape(size, size), weights.reshape(size, size, 3).astype(np.float64)  # (T*T,) -> (T, T)


class ViewProjector:
    """Colours and weights the views give to surface points (with visibility against the mesh itself)."""

    def __init__(
        self,
        mesh: trimesh.Trimesh,
        views_rgb: np.ndarray,
        masks: np.ndarray,
        cameras: CameraSet,
        config: TextureConfig,
        depth_tolerance: float,
    ) -> None:
        self.views_rgb = views_rgb
        self.cameras = cameras
        self.config = config
        self.depth_tolerance = depth_tolerance
        self.depth = cast_rays([mesh], cameras).depth  # (V, H, W) the mesh's own depth maps
        self.inside = [np.maximum(-silhouette_distance(mask), 0.0) for mask in masks]  # px into the silhouette

    def weighted_colours(self, points: np.ndarray, normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3) weighted colour sums and (N,) weight sums over all views."""
        colour_sum = np.zeros((len(points), 3))
        weight_sum = np.zeros(len(points))
        min_cos = np.cos(np.radians(self.config.max_view_angle_deg))
        for view in range(self.cameras.num_views):
            cam2world, K = self.cameras.cam2world[view], self.cameras.K[view]
            uv, depth = project_points(points, cam2world, K)
            to_camera = cam2world[:3, 3] - points
            cosine = np.einsum("ij,ij->i", normals, to_camera) / np.linalg.norm(to_camera, axis=1)
            size = self.cameras.image_size
            col, row = np.floor(uv[:, 0]).astype(np.int64), np.floor(uv[:, 1]).astype(np.int64)
            usable = (cosine > min_cos) & (col >= 0) & (col < size) & (row >= 0) & (row < size)
            rows, cols = row[usable], col[usable]
            surface = self.depth[view][rows, cols]
            visible = (surface > 0) & (np.abs(depth[usable] - surface) < self.depth_tolerance)
            index = np.flatnonzero(usable)[visible]
            uv_visible = uv[index]
            inside = ndimage.map_coordinates(
                self.inside[view], [uv_visible[:, 1] - 0.5, uv_visible[:, 0] - 0.5], order=1
            )
            fade = np.clip(inside / self.config.edge_fade_px, 0.0, 1.0) if self.config.edge_fade_px > 0 else 1.0
            weight = cosine[index] ** self.config.sharpness * fade
            colour = _sample_view(self.views_rgb[view], uv_visible)
            colour_sum[index] += weight[:, None] * colour
            weight_sum[index] += weight
        return colour_sum, weight_sum


def _sample_view(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear colour of an (H, W, 3) float image at pixel coordinates (u, v) (top-left origin)."""
    height, width = image.shape[:2]
    # sample_texture takes UVs with a bottom-left origin in [0, 1]
    texture_uv = np.stack([uv[:, 0] / width, 1.0 - uv[:, 1] / height], axis=1)
    clamped = np.clip(texture_uv, 0.5 / np.array([width, height]), 1.0 - 0.5 / np.array([width, height]))
    return sample_texture(image, clamped)


def harmonic_fill(
    mesh: trimesh.Trimesh, colours: np.ndarray, known: np.ndarray, fallback: np.ndarray | None = None
) -> np.ndarray:
    """Vertex colours where `known` is False, interpolated harmonically from the known ones over the mesh.

    A small pull towards `fallback` (or the mean known colour) keeps pieces with nothing known solvable.
    """
    if known.all():
        return colours
    if not known.any():
        base = fallback if fallback is not None else np.full_like(colours, 0.5)
        return base
    edges = mesh.edges_unique
    count = len(mesh.vertices)
    adjacency = sparse.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(count, count))
    adjacency = (adjacency + adjacency.T).tocsr()
    laplacian = sparse.diags(np.asarray(adjacency.sum(axis=1)).ravel()) - adjacency
    unknown = ~known
    if fallback is None:
        fallback = np.broadcast_to(colours[known].mean(axis=0), colours.shape)
    epsilon = 1e-3
    system = laplacian[unknown][:, unknown] + epsilon * sparse.eye(int(unknown.sum()))
    rhs = -laplacian[unknown][:, known] @ colours[known] + epsilon * fallback[unknown]
    filled = colours.copy()
    filled[unknown] = np.column_stack([spsolve(system.tocsc(), rhs[:, channel]) for channel in range(3)])
    return np.clip(filled, 0.0, 1.0)


@dataclass(frozen=True)
class BakedTexture:
    texture: np.ndarray  # (T, T, 3) uint8, row 0 at the top (v = 1)
    seen_fraction: float  # share of the surface's texels some view saw


def bake_texture(
    mesh: trimesh.Trimesh,
    unwrapped: UnwrappedMesh,
    views_rgb: np.ndarray,
    masks: np.ndarray,
    cameras: CameraSet,
    config: TextureConfig,
    depth_tolerance: float,
    fallback: FallbackColours | None = None,
) -> BakedTexture:
    """The texture of `unwrapped` (the UV-split copy of `mesh`) from the views (float, on white)."""
    size = config.size
    projector = ViewProjector(mesh, views_rgb, masks, cameras, config, depth_tolerance)

    # vertex colours first: seen vertices from the views, the rest by diffusion over the mesh
    vertex_sum, vertex_weight = projector.weighted_colours(np.asarray(mesh.vertices), np.asarray(mesh.vertex_normals))
    seen_vertices = vertex_weight > 1e-6
    vertex_colours = vertex_sum / np.maximum(vertex_weight, 1e-12)[:, None]
    fallback_vertices = fallback(np.asarray(mesh.vertices)) if fallback is not None else None
    vertex_colours = harmonic_fill(mesh, vertex_colours, seen_vertices, fallback_vertices)

    # texels: the views' colours at full texture resolution, the diffused vertex colours where unseen
    face, weights = rasterize_uv(unwrapped.uvs, unwrapped.faces, size)
    covered = face >= 0
    texel_face, texel_weights = face[covered], weights[covered]
    corners = unwrapped.faces[texel_face]  # (M, 3)
    points = np.einsum("mk,mkc->mc", texel_weights, unwrapped.vertices[corners])
    normals = np.einsum("mk,mkc->mc", texel_weights, unwrapped.normals[corners])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    colour_sum, weight_sum = projector.weighted_colours(points, normals)
    diffused = np.einsum("mk,mkc->mc", texel_weights, vertex_colours[unwrapped.source[corners]])
    # where the views only graze the surface (best view more than 60 degrees off) their texel colours are
    # smeared: blend towards the vertex-resolution colour, which the same views gave
    confidence = np.clip(weight_sum / 0.5**config.sharpness, 0.0, 1.0)[:, None]
    seen_colour = colour_sum / np.maximum(weight_sum, 1e-12)[:, None]
    texel_colours = confidence * seen_colour + (1.0 - confidence) * diffused

    image = np.zeros((size, size, 3))
    image[covered] = texel_colours
    # gutters: every empty texel repeats the nearest chart texel, so filtering never reads black
    _, (near_rows, near_cols) = ndimage.distance_transform_edt(~covered, return_indices=True)
    image = image[near_rows, near_cols]
    texture = (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)
    return BakedTexture(texture, float((weight_sum > 1e-6).mean()) if len(weight_sum) else 0.0)


def nearest_colours(points: np.ndarray, colours: np.ndarray, neighbours: int = 8) -> FallbackColours:
    """A fallback that colours a point by the inverse-distance mean of its nearest coloured points."""
    tree = cKDTree(points)
    k = min(neighbours, len(points))

    def lookup(query: np.ndarray) -> np.ndarray:
        distance, index = tree.query(query, k=k)
        distance, index = distance.reshape(len(query), k), index.reshape(len(query), k)
        weight = 1.0 / np.maximum(distance, 1e-6)
        return np.einsum("nk,nkc->nc", weight, colours[index]) / weight.sum(axis=1, keepdims=True)

    return lookup
