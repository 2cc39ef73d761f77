"""Geometric distance between two surfaces: Chamfer distance and F-score on sampled surface points.

Both surfaces are sampled uniformly by area; each sample's distance to the other sample set (cKDTree) is
its nearest-neighbour distance. Accuracy = mean distance from the prediction's samples to the reference,
completeness = the reverse; Chamfer = their mean (an L1-style, unsquared distance in world units).
Precision / recall = the share of samples within `threshold` of the other set; F-score their harmonic
mean. With N samples on a surface of area A, the sampling itself adds about 0.5 * sqrt(A / N).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import trimesh
from scipy.spatial import cKDTree


@dataclass(frozen=True)
class SurfaceDistance:
    chamfer: float
    accuracy: float  # mean distance prediction -> reference
    completeness: float  # mean distance reference -> prediction
    precision: float
    recall: float
    f_score: float
    threshold: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def sample_surface(mesh: trimesh.Trimesh, count: int, seed: int = 0) -> np.ndarray:
    """(count, 3) points uniformly distributed over the surface area."""
    if len(mesh.faces) == 0 or mesh.area <= 0:
        raise ValueError("cannot sample a surface with no area")
    points, _ = trimesh.sample.sample_surface(mesh, count, seed=seed)
    return np.asarray(points)


def point_distance(predicted: np.ndarray, reference: np.ndarray, threshold: float) -> SurfaceDistance:
    """Chamfer / F-score between two point sets (N, 3) and (M, 3)."""
    if len(predicted) == 0 or len(reference) == 0:
        raise ValueError("both point sets need at least one point")
    to_reference, _ = cKDTree(reference).query(predicted)
    to_predicted, _ = cKDTree(predicted).query(reference)
    precision = float(np.mean(to_reference < threshold))
    recall = float(np.mean(to_predicted < threshold))
    f_score = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    accuracy, completeness = float(to_reference.mean()), float(to_predicted.mean())
    return SurfaceDistance(
        chamfer=0.5 * (accuracy + completeness),
        accuracy=accuracy,
        completeness=completeness,
        precision=precision,
        recall=recall,
        f_score=f_score,
        threshold=threshold,
    )


def surface_distance(
    predicted: trimesh.Trimesh,
    reference: trimesh.Trimesh,
    threshold: float = 0.02,
    samples: int = 50_000,
    seed: int = 0,
) -> SurfaceDistance:
    """Chamfer / F-score between two meshes from `samples` points on each."""
    return point_distance(
        sample_surface(predicted, samples, seed), sample_surface(reference, samples, seed + 1), threshold
    )
