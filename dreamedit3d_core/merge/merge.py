"""The merge stage's computation: the edited asset is the source asset with only the named components changed.

Every component the prompt does not name is carried over untouched (its parts are the very same objects:
geometry, UVs, materials, textures and names). A named component with an appearance edit keeps its geometry
and gets a texture baked from the sampled views (bake.py); one with a shape edit is rebuilt from the views
where the kept components do not explain them (shape.py). Components that are regions of a mesh own the faces
their masks see (faces.py), so the same merge applies to them: their faces become a primitive of their own.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import trimesh

from dreamedit3d_core.geometry.cameras import CameraSet
from dreamedit3d_core.ingest import IngestedAsset, Material, Part
from dreamedit3d_core.ingest.glb import source_frame
from dreamedit3d_core.merge.bake import bake_surface, delight
from dreamedit3d_core.merge.config import MergeConfig
from dreamedit3d_core.merge.faces import face_components
from dreamedit3d_core.merge.shape import agreement, rebuild_surface, silhouette_change
from dreamedit3d_core.mvdiffusion.wording import appearance_only
from dreamedit3d_core.mvdiffusion.prompts import edit_phrases, edited_components
from dreamedit3d_core.reconstruct.config import ReconstructConfig
from dreamedit3d_core.reconstruct.mesh import ReconstructedMesh
from dreamedit3d_core.render import Renders
from dreamedit3d_core.reconstruct.reconstructors import reconstruct_views
from dreamedit3d_core.reconstruct.views import check_views, foreground_masks, rgb_on_white


@dataclass(frozen=True)
class MergeResult:
    asset: IngestedAsset  # the source asset with the edited components changed (normalised frame)
    components: list[dict[str, Any]]  # per component: token, edited, kind, silhouette change, texture, faces
    maps_to_geometry: bool  # False: some edited component owns no face, so the views cannot go back on the asset
    seconds: float
    warnings: list[str] = field(default_factory=list)


def resize_nearest(images: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W) -> (N, size, size) by nearest pixel centres (masks, part ids, depth)."""
    height = images.shape[1]
    if height == size:
        return images
    index = np.minimum(((np.arange(size) + 0.5) * height / size).astype(np.int64), height - 1)
    return images[:, index][:, :, index]


def merge_edit(
    asset: IngestedAsset,
    views: np.ndarray,
    cameras: CameraSet,
    renders: Renders,
    masks: np.ndarray,
    component_parts: Sequence[Sequence[int]],
    tokens: Sequence[str],
    prompt: str,
    config: MergeConfig | None = None,
) -> MergeResult:
    """Merge one edit's sampled views (V, h, w, 3) uint8 into `asset`.

    `cameras`, `renders` (depth, colour and albedo) and `masks` (K, V, H, W) are the render and mask stages'
    (the views may have another size: the model's); `component_parts[k]` and `tokens[k]` describe component k."""
    config = config or MergeConfig()
    started = time.perf_counter()
    images = check_views(views, cameras.resized(int(np.shape(views)[1])))
    size = images.shape[1]
    view_cameras = cameras.resized(size)
    owners = face_components(asset, component_parts, cameras, renders.depth, masks, config.depth_tolerance)
    masks_v = resize_nearest(masks.reshape(-1, *masks.shape[2:]), size).reshape(*masks.shape[:2], size, size)
    depth_v = resize_nearest(renders.depth, size)
    source_rgb, source_albedo = resize_nearest(renders.rgb_white, size), resize_nearest(renders.albedo, size)
    foreground = foreground_masks(images, config.foreground, allow_empty=True)  # an empty view: the part was lost
    views_rgb = rgb_on_white(images)
    edited = edited_components(prompt, tokens)
    phrases = edit_phrases(prompt)
    parts, materials = list(asset.parts), list(asset.materials)
    rows, warnings = [], []
    maps_to_geometry = all(any((owner == k).any() for owner in owners) for k in edited)
    for k, token in enumerate(tokens):
        row: dict[str, Any] = {"token": token, "edited": k in edited, "faces": int(sum((o == k).sum() for o in owners))}
        if k not in edited or not maps_to_geometry:
            rows.append({**row, "kind": "kept" if k not in edited else "no geometry"})
            continue
        kept = masks_v[[j for j in range(len(tokens)) if j not in edited]].any(axis=0)
        change = silhouette_change(foreground, masks_v[k], kept, round(config.shape_margin * size))
        row.update(gained=change.gained, lost=change.lost)
        kind, why = _edit_kind(config, phrases.get(token, ""), change.change)
        rebuilt = None
        if kind == "shape":
            region = foreground & ~kept
            kept_mesh = _owned_mesh(asset, owners, [j for j in range(len(tokens)) if j not in edited])
            kept_depth = np.where(kept, depth_v, 0.0)
            rebuilt = rebuild_surface(views_rgb, region, kept, kept_depth, view_cameras, config, kept_mesh)
            if rebuilt is not None:
                row["agreement"] = agreement(rebuilt, region, kept, kept_depth, view_cameras)
                if config.edit_kind == "auto" and row["agreement"] < config.shape_agreement:
                    rebuilt = None  # the views do not agree on a shape
        removed = kind == "shape" and rebuilt is None and change.lost > config.shape_threshold * 0.5 and change.gained < 0.1
        if rebuilt is not None or removed:  # a new shape, or none: the views show nothing where the part was
            row.update(_replace_geometry(parts, materials, owners, k, rebuilt, token))
            if removed:
                kind, why = "removed", "the views show nothing where it was"
                warnings.append(f"{token}: the sampled views show nothing where it was; its faces are removed")
        else:
            if kind == "shape":  # the views' silhouettes agree on no new shape: keep the geometry, take the colours
                kind, why = "appearance", "its silhouette changed, but the four views agree on no new shape"
                warnings.append(f"{token}: its silhouette changed, but the views agree on no new shape; re-textured only")
            unlit = delight(views_rgb, source_rgb, source_albedo, masks_v[k])
            row.update(_recolour(parts, materials, owners, k, unlit, drawn_part(masks_v[k], foreground), view_cameras, config))
        row.update(kind=kind, why=why)
        rows.append(row)
    kept_parts = [part for part in parts if len(part.faces)]
    merged = IngestedAsset(
        parts=kept_parts,
        materials=materials,
        source=asset.source,
        normalization=asset.normalization,
        warnings=list(asset.warnings) + warnings,
    )
    return MergeResult(_compact_materials(merged), rows, maps_to_geometry, time.perf_counter() - started, warnings)


def drawn_part(mask: np.ndarray, foreground: np.ndarray, least: float = 0.5) -> np.ndarray:
    """(V, H, W): the component's pixels where the views drew something. Where the views show background inside
    its mask, the model drew the part a little smaller: those pixels say nothing of its colour, and its texture
    there is filled in from what was drawn. When the views drew less than `least` of the mask (a part asked to be
    white is background-coloured), the whole mask."""
    drawn = mask & foreground
    return drawn if drawn.sum() >= least * mask.sum() else mask


def _edit_kind(config: MergeConfig, phrase: str, change: float) -> tuple[str, str]:
    """Appearance or shape (to be confirmed by the views), and why."""
    if config.edit_kind != "auto":
        return config.edit_kind, "the merge config says so"
    if appearance_only(phrase):
        return "appearance", f"{phrase!r} names only colours, materials or finishes"
    if change > config.shape_threshold:
        return "shape", f"its silhouette changed by {change:.2f} of its pixels"
    return "appearance", f"its silhouette stays (changed by {change:.2f} of its pixels)"


def _owned_mesh(asset: IngestedAsset, owners: list[np.ndarray], components: Sequence[int]) -> trimesh.Trimesh:
    """The source geometry of the given components, as one mesh."""
    vertices, faces, offset = [], [], 0
    for part, owner in zip(asset.parts, owners, strict=True):
        mine = np.isin(owner[: len(part.faces)], components)
        vertices.append(part.vertices)
        faces.append(part.faces[mine] + offset)
        offset += len(part.vertices)
    return trimesh.Trimesh(np.concatenate(vertices), np.concatenate(faces), process=False)


def _recolour(
    parts: list[Part],
    materials: list[Material],
    owners: list[np.ndarray],
    component: int,
    views_rgb: np.ndarray,
    masks: np.ndarray,
    cameras: CameraSet,
    config: MergeConfig,
) -> dict[str, Any]:
    """Bake a new texture onto every face the component owns; the part's other faces stay as they are."""
    seen, uvs_from = [], set()
    for index, part in enumerate(parts):
        mine = owners[index] == component
        if not mine.any():
            continue
        used, local_faces = np.unique(part.faces[mine], return_inverse=True)
        uvs = None if part.uvs is None else part.uvs[used]
        baked = bake_surface(part.vertices[used], local_faces.reshape(-1, 3), uvs, views_rgb, masks, cameras, config)
        seen.append(baked.seen_fraction)
        uvs_from.add(baked.uvs_from)
        base = materials[int(np.bincount(part.face_materials[mine]).argmax())]
        materials.append(Material(f"{part.name}_edit", (1.0, 1.0, 1.0, 1.0), base.metallic, base.roughness, baked.texture))
        new = Part(
            name=part.name,
            vertices=baked.vertices,
            faces=baked.faces,
            face_materials=np.full(len(baked.faces), len(materials) - 1, dtype=np.int32),
            uvs=baked.uvs,
            colors=None,  # the views' colours are in the texture
        )
        parts[index] = new if mine.all() else _join(part.with_faces(~mine), new)
        owners[index] = np.concatenate([owners[index][~mine], np.full(len(new.faces), component)])  # faces' new order
    return {"seen_fraction": float(np.mean(seen)) if seen else 0.0, "uvs": "+".join(sorted(uvs_from))}


def _replace_geometry(
    parts: list[Part], materials: list[Material], owners: list[np.ndarray], component: int, rebuilt: Any, token: str
) -> dict[str, Any]:
    """The component's faces leave their parts; the rebuilt surface joins the first of them."""
    first = next(index for index, owner in enumerate(owners) if (owner == component).any())
    for index, part in enumerate(parts):
        mine = owners[index] == component
        if mine.any():
            parts[index] = part.with_faces(~mine)
            owners[index] = owners[index][~mine]
    if rebuilt is None:
        return {"uvs": "none", "seen_fraction": 0.0}
    part = parts[first]
    base = materials[int(np.bincount(part.face_materials).argmax())] if len(part.faces) else materials[0]
    materials.append(Material(f"{part.name}_edit", (1.0, 1.0, 1.0, 1.0), base.metallic, base.roughness, rebuilt.texture))
    new = Part(
        name=part.name,
        vertices=np.asarray(rebuilt.vertices, np.float32),
        faces=np.asarray(rebuilt.faces, np.int32),
        face_materials=np.full(len(rebuilt.faces), len(materials) - 1, dtype=np.int32),
        uvs=np.asarray(rebuilt.uvs, np.float32),
        colors=None,
    )
    parts[first] = _join(part, new) if len(part.faces) else new
    owners[first] = np.concatenate([owners[first], np.full(len(new.faces), component)])
    return {"uvs": "rebuilt", "seen_fraction": float(rebuilt.info.get("texture_seen_fraction", 0.0))}


def _join(first: Part, second: Part) -> Part:
    """One part of both (one node, one primitive per material); missing UVs and colours are filled neutral."""
    if not len(first.faces):
        return second

    def stacked(a: np.ndarray | None, b: np.ndarray | None, n_a: int, n_b: int, fill: np.ndarray) -> np.ndarray | None:
        if a is None and b is None:
            return None
        a = np.tile(fill, (n_a, 1)) if a is None else a
        b = np.tile(fill, (n_b, 1)) if b is None else b
        return np.concatenate([a, b]).astype(fill.dtype)

    n_a, n_b = len(first.vertices), len(second.vertices)
    return replace(
        first,
        vertices=np.concatenate([first.vertices, second.vertices]).astype(np.float32),
        faces=np.concatenate([first.faces, second.faces + n_a]).astype(np.int32),
        face_materials=np.concatenate([first.face_materials, second.face_materials]).astype(np.int32),
        uvs=stacked(first.uvs, second.uvs, n_a, n_b, np.zeros(2, np.float32)),
        colors=stacked(first.colors, second.colors, n_a, n_b, np.full(4, 255, np.uint8)),
    )


def _compact_materials(asset: IngestedAsset) -> IngestedAsset:
    """Drop materials no face uses any more (the edited parts' old ones), renumbering the rest in order."""
    used = np.unique(np.concatenate([part.face_materials for part in asset.parts]))
    remap = np.full(len(asset.materials), -1, dtype=np.int32)
    remap[used] = np.arange(len(used), dtype=np.int32)
    parts = [part if np.array_equal(remap[part.face_materials], part.face_materials) else replace(part, face_materials=remap[part.face_materials]) for part in asset.parts]
    return replace(asset, parts=parts, materials=[asset.materials[i] for i in used])


def edit_glbs(
    result: MergeResult,
    source: IngestedAsset,
    views: np.ndarray,
    cameras: CameraSet,
    reconstruct: ReconstructConfig,
    reconstruction: bytes | None = None,
) -> tuple[bytes, bytes]:
    """The edit as GLB, in the normalised frame and in the source file's frame. When an edited component maps to
    no geometry there is nothing to put the views on: the whole object is lifted from the views instead, or,
    where `reconstruction` is given, taken from it: the GLB (normalised frame, `ReconstructedMesh.glb_bytes`)
    of these views, cameras and config already reconstructed (the reconstruct stage's), not made again."""
    if result.maps_to_geometry:
        return result.asset.to_glb(), result.asset.to_glb(frame="source")
    if reconstruction is None:
        mesh = reconstruct_views(views, cameras, reconstruct)
        normalised, stored = mesh.glb_bytes(), False
    else:  # read back as stored: written again, it is the same file (its normals already unitized)
        mesh, normalised, stored = ReconstructedMesh.from_glb_bytes(reconstruction), reconstruction, True
    placement = source_frame(source.normalization)  # a scale and a shift: normals keep their directions
    moved = replace(mesh, vertices=(mesh.vertices @ placement[:3, :3].T + placement[:3, 3]).astype(np.float32))
    return normalised, moved.glb_bytes(unitize_normals=not stored)
