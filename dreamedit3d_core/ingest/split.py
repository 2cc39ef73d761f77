"""An asset that comes as one mesh still has parts: its materials, else its disconnected bodies.

Components are built from parts (exact masks from the part-id render), and an edit changes components. A file
that is one mesh (an STL of several bodies, a scan, a single-object OBJ) would otherwise be one component that
can only be edited whole. Several materials become several parts (named after the mesh and the material);
otherwise bodies that share no vertex position become parts (the mesh's name and a number, in the order their
first face comes in the file). Vertices are welded by position first, so UV seams do not split a body.
"""

from __future__ import annotations

import numpy as np
import trimesh

from dreamedit3d_core.ingest.asset import Material, Part

MAX_PIECES = 64  # more bodies than this is a scan's debris or a particle cloud, not parts: kept as one


def split_single_mesh(parts: list[Part], materials: list[Material], warnings: list[str], source: str) -> list[Part]:
    """`parts` unchanged unless there is exactly one; then its material groups, else its bodies, as parts."""
    if len(parts) != 1:
        return parts
    part = parts[0]
    groups = np.unique(part.face_materials)
    if len(groups) > 1:
        labels = np.searchsorted(groups, part.face_materials)
        names = [f"{part.name}_{materials[g].name}" for g in groups]
    else:
        labels = body_labels(part)
        count = int(labels.max()) + 1
        if count == 1:
            return parts
        if count > MAX_PIECES:
            warnings.append(f"{source}: {count} separate bodies in one mesh, kept as one part (more than {MAX_PIECES})")
            return parts
        names = [f"{part.name}_{k}" for k in range(count)]
    return [part.with_faces(labels == k, name) for k, name in enumerate(names)]


def body_labels(part: Part) -> np.ndarray:
    """(F,) body index of every face: faces linked through shared vertex positions, numbered by first face."""
    scale = float(np.ptp(part.vertices, axis=0).max()) or 1.0
    welded = np.round(part.vertices.astype(np.float64) / (scale * 1e-7)).astype(np.int64)
    _, position = np.unique(welded, axis=0, return_inverse=True)
    faces = position.reshape(-1)[part.faces]  # (F, 3) in welded vertex ids
    vertex_body = trimesh.graph.connected_component_labels(trimesh.geometry.faces_to_edges(faces), node_count=int(position.max()) + 1)
    face_body = vertex_body[faces[:, 0]]
    _, first = np.unique(face_body, return_index=True)
    order = np.argsort(np.argsort(first))  # bodies numbered by their first face
    return order[np.searchsorted(np.unique(face_body), face_body)]

