"""From a field on a grid to a clean triangle mesh: marching cubes, debris removal, smoothing, decimation."""

from __future__ import annotations

import numpy as np
import open3d as o3d
import trimesh
from skimage import measure

from dreamedit3d_core.reconstruct.carving import CarveField


class EmptyReconstructionError(ValueError):
    """The views carve away everything (e.g. silhouettes that no single object can explain)."""


def extract_surface(field: CarveField) -> trimesh.Trimesh:
    """The zero level set of `field` as an outward-oriented triangle mesh in world coordinates."""
    values = field.values
    if not (values.min() < 0.0 < values.max()):
        raise EmptyReconstructionError(
            "the carved volume is empty: the silhouettes have no common 3D interior "
            "(check that the views and cameras belong together)"
        )
    # a positive border closes surfaces that touch the grid's edge
    padded = np.pad(values, 1, mode="constant", constant_values=max(float(values.max()), 1e-3))
    vertices, faces, _, _ = measure.marching_cubes(padded, level=0.0, spacing=(field.spacing,) * 3)
    vertices = vertices - field.spacing - field.bound  # undo the padding and move to [-bound, bound]
    mesh = trimesh.Trimesh(vertices, faces, process=True)
    if mesh.volume < 0:  # skimage's orientation depends on the field's sign convention
        mesh.invert()
    return mesh


def keep_large_components(mesh: trimesh.Trimesh, min_fraction: float) -> trimesh.Trimesh:
    """Drops pieces whose area is below `min_fraction` of the largest piece's (carving debris)."""
    pieces = mesh.split(only_watertight=False)
    if len(pieces) <= 1:
        return mesh
    areas = np.array([piece.area for piece in pieces])
    kept = [piece for piece, area in zip(pieces, areas, strict=True) if area >= min_fraction * areas.max()]
    return trimesh.util.concatenate(kept)


def smooth(mesh: trimesh.Trimesh, iterations: int) -> trimesh.Trimesh:
    """Taubin smoothing: alternating shrink and inflate steps remove voxel ripples without shrinking."""
    if iterations <= 0:
        return mesh
    smoothed = mesh.copy()
    trimesh.smoothing.filter_taubin(smoothed, lamb=0.5, nu=0.53, iterations=iterations)
    return smoothed


def decimate(mesh: trimesh.Trimesh, target_faces: int) -> trimesh.Trimesh:
    """Quadric edge-collapse simplification (open3d) down to about `target_faces` triangles."""
    if len(mesh.faces) <= target_faces:
        return mesh
    legacy = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(np.asarray(mesh.vertices, np.float64)),
        o3d.utility.Vector3iVector(np.asarray(mesh.faces, np.int32)),
    )
    simplified = legacy.simplify_quadric_decimation(target_number_of_triangles=int(target_faces))
    simplified.remove_degenerate_triangles()
    simplified.remove_duplicated_triangles()
    simplified.remove_unreferenced_vertices()
    return trimesh.Trimesh(np.asarray(simplified.vertices), np.asarray(simplified.triangles), process=True)


def drop_degenerate_faces(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Removes zero-area triangles (they have no normal: glTF requires unit normals on every vertex)."""
    keep = mesh.area_faces > 1e-12
    if keep.all():
        return mesh
    cleaned = mesh.copy()
    cleaned.update_faces(keep)
    cleaned.remove_unreferenced_vertices()
    return cleaned
