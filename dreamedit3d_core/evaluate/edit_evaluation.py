"""The evaluate stage's whole computation for one edit: render source and result from the same cameras, decide
which components the prompt keeps, compute every metric, and write the report.

The source asset and the edited asset (the merge stage's GLB) are rendered by the same Blender renderer from
the evaluation cameras. Components the prompt does not name ("<asset0> and <asset1> in green" names <asset1>)
must stay: their pixels, where no edited part hides them in the result, are the keep masks of the preservation
metrics. The result's parts carry the source's part names, so each of its pixels is traced to a source part.
When the full reconstruction ran too, it is measured the same way (metrics prefixed `reconstruction_`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import trimesh
from PIL import Image

from dreamedit3d_core.evaluate.colour import component_colour_shares, edit_colour_metrics, main_colours
from dreamedit3d_core.evaluate.config import EvaluateConfig, EvaluationViewsConfig
from dreamedit3d_core.evaluate.all_metrics import edit_metrics
from dreamedit3d_core.evaluate.masks_and_isolation import isolation_summary, keep_masks
from dreamedit3d_core.evaluate.image_metrics import masked_psnr, on_white, silhouette_iou
from dreamedit3d_core.evaluate.verdict import edit_verdict
from dreamedit3d_core.evaluate.report import html_report
from dreamedit3d_core.evaluate.turntable import turntable_strip
from dreamedit3d_core.geometry.cameras import CameraSet
from dreamedit3d_core.ingest import IngestedAsset, ingest_asset
from dreamedit3d_core.mvdiffusion.prompts import edit_phrases, edited_components
from dreamedit3d_core.reconstruct import GLB_FRAME
from dreamedit3d_core.render import RenderConfig, Renders, render_mesh_file, render_views

SOURCE_PROMPT = "a photo of an object"  # what CLIP's directional similarity measures the edit from


@dataclass(frozen=True)
class EditEvaluation:
    metrics: dict[str, Any]  # the prompt and every metric: one row of the metrics table
    # every component's share of every named hue, source and result ("output": "mesh", or "reconstruction")
    component_colours: list[dict[str, Any]]
    report: str  # a self-contained HTML page


def evaluation_render_config(render_config: RenderConfig, views_config: EvaluationViewsConfig) -> RenderConfig:
    """The renderer of the source and the result: the render stage's, on the evaluation orbit."""
    return render_config.orbit(views_config.views, views_config.elevation)


def _linear(srgb: np.ndarray) -> np.ndarray:
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


def _srgb(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1.0 / 2.4) - 0.055)


def asset_meshes(asset: IngestedAsset) -> list[trimesh.Trimesh]:
    """One trimesh per part and material, coloured as the asset (texture x base colour), for unlit re-renders."""
    meshes = []
    for part in asset.parts:
        for index in np.unique(part.face_materials):
            material = asset.materials[int(index)]
            mesh = trimesh.Trimesh(part.vertices.astype(np.float64), part.faces[part.face_materials == index], process=False)
            factor = np.asarray(material.base_color[:3], np.float64)
            if material.texture is not None and part.uvs is not None:
                texture = _srgb(_linear(material.texture[..., :3] / 255.0) * factor)
                image = Image.fromarray(np.round(texture * 255.0).astype(np.uint8))
                mesh.visual = trimesh.visual.TextureVisuals(
                    uv=part.uvs, material=trimesh.visual.material.PBRMaterial(baseColorTexture=image)
                )
            else:
                colour = np.append(np.round(_srgb(factor) * 255.0), 255).astype(np.uint8)
                mesh.visual = trimesh.visual.ColorVisuals(mesh, face_colors=np.tile(colour, (len(mesh.faces), 1)))
            meshes.append(mesh)
    return meshes


def traced_part_ids(result: IngestedAsset, source: IngestedAsset, part_id: np.ndarray) -> np.ndarray | None:
    """The result's part-id pass in source part ids (by part name), or None when no part is the source's."""
    names = {part.name: index for index, part in enumerate(source.parts)}
    lookup = np.array([names.get(part.name, -1) for part in result.parts] + [-1])  # last: background (-1)
    if (lookup[:-1] < 0).all():
        return None
    return lookup[np.where(part_id >= 0, part_id, len(result.parts))]


def evaluate_edit(
    *,
    title: str,
    prompt: str,
    asset_dir: Path,
    mesh_glb: Path,
    sampled_views: np.ndarray,
    cameras: CameraSet,
    components: Mapping[str, Sequence[Any]],
    isolation_tables: Sequence[Sequence[Mapping[str, Any]]],
    config: EvaluateConfig,
    views_config: EvaluationViewsConfig,
    render_config: RenderConfig,
    masks_preview: bytes,
    mesh_preview: bytes,
    merge_rows: Sequence[Mapping[str, Any]] = (),
    reconstruction_glb: Path | None = None,
    viewer_js: str | None = None,
    random_model: bool = False,
    preset: str | None = None,
) -> EditEvaluation:
    """One edit against its source asset.

    `sampled_views` (V, H, W, 3) uint8 were sampled at `cameras` (the render stage's, any image size);
    `components` is the mask stage's table (`token`, `part_ids`); `isolation_tables` are the attention
    isolation rows of each personalisation phase; `merge_rows` the merge stage's report; the previews go into
    the report as they are. `viewer_js` (the <model-viewer> bundle, see page.py) puts source and edit side by
    side in 3D; without it the report shows them as pictures. The verdict (`verdict.py`; `random_model`: the
    model was never trained, so the verdict is "noise") goes into the metrics and at the top of the report,
    with the `preset` that made the edit."""
    tokens, part_lists = list(components["token"]), components["part_ids"]
    cameras = cameras.resized(int(sampled_views.shape[1]))
    evaluation = evaluation_render_config(render_config, views_config)
    source_asset, result = IngestedAsset.read(asset_dir), ingest_asset(mesh_glb, GLB_FRAME)
    source = render_views(asset_dir, evaluation.camera_set(), evaluation)
    edited = render_mesh_file(mesh_glb, evaluation.camera_set(), evaluation, GLB_FRAME)
    phrases = edit_phrases(prompt)
    edited_indices = edited_components(prompt, tokens)
    kept_parts = [part for k, parts in enumerate(part_lists) if k not in edited_indices for part in parts]
    edited_parts = [part for k in edited_indices for part in part_lists[k]]
    vertices, faces, _ = source_asset.mesh_arrays()
    source_mesh = trimesh.Trimesh(vertices, faces, process=False)

    keep = keep_masks(source.part_id, part_lists, edited_indices)
    traced = traced_part_ids(result, source_asset, edited.part_id)
    metrics: dict[str, Any] = {}
    if traced is not None:  # where an edited part now hides a kept one, the kept one cannot be compared
        keep &= np.isin(traced, kept_parts)
        if edited_parts:
            before, after = np.isin(source.part_id, edited_parts), np.isin(traced, edited_parts)
            metrics["edited_silhouette_iou"] = float(silhouette_iou(before, after))
    metrics.update(
        edit_metrics(
            cameras,
            sampled_views,
            asset_meshes(result),
            config,
            source_renders=source.rgba,
            edited_renders=edited.rgba,
            keep_masks=keep,
            source_mesh=source_mesh,
            source_prompt=SOURCE_PROMPT,
            edit_prompt=prompt,
        )
    )
    metrics.update(edit_colour_metrics(source.part_id, source.rgb_white, edited.rgba, part_lists, tokens, phrases))
    for rows in isolation_tables:
        metrics.update(isolation_summary(rows))
    sections = [
        ("before: the source, rendered from the evaluation cameras", turntable_strip(source.rgb_white)),
        ("after: the edited asset, same cameras", turntable_strip(edited.rgb_white)),
        ("sampled views of the edit (what the model drew)", turntable_strip(sampled_views)),
        ("components (masks of the training views)", masks_preview),
        ("turntable of the edited asset", mesh_preview),
    ]
    colour_rows = component_colour_shares(source.part_id, source.rgb_white, edited.rgba, part_lists, tokens)
    all_colour_rows = [{"output": "mesh", **row} for row in colour_rows]
    before_after = [
        ("before: the source asset", (asset_dir / "asset.glb").read_bytes(), turntable_strip(source.rgb_white)),
        (f"after: {prompt}", Path(mesh_glb).read_bytes(), mesh_preview),
    ]
    if reconstruction_glb is not None:
        reconstruction = render_mesh_file(reconstruction_glb, evaluation.camera_set(), evaluation, GLB_FRAME)
        metrics.update(_reconstruction_metrics(source, reconstruction, part_lists, tokens, phrases, edited_indices))
        sections.append(("the full reconstruction (the paper's output), same cameras", turntable_strip(reconstruction.rgb_white)))
        before_after.append(
            ("the full reconstruction (the paper's output)", Path(reconstruction_glb).read_bytes(), turntable_strip(reconstruction.rgb_white))
        )
        shares = component_colour_shares(source.part_id, source.rgb_white, reconstruction.rgba, part_lists, tokens)
        all_colour_rows += [{"output": "reconstruction", **row} for row in shares]
    verdict = edit_verdict(metrics, config.verdict, random_model=random_model)
    metrics = {"verdict": verdict.label, "verdict_reason": verdict.reason, **metrics}
    kept = [token for index, token in enumerate(tokens) if index not in edited_indices]
    report = html_report(
        f"{title}: {prompt}",
        sections,
        metrics,
        verdict=verdict,
        preset=preset,
        notes=[
            f"kept components: {kept}",
            *(_merge_note(row) for row in merge_rows if row.get("edited")),
            *(f"{token} main colour, source -> result: {change}" for token, change in main_colours(colour_rows).items()),
        ],
        before_after=before_after,
        viewer_js=viewer_js,
    )
    return EditEvaluation(metrics={"prompt": prompt, **metrics}, component_colours=all_colour_rows, report=report)


def _reconstruction_metrics(
    source: Renders,
    reconstruction: Renders,
    part_lists: Sequence[Sequence[int]],
    tokens: Sequence[str],
    phrases: Mapping[str, str],
    edited_indices: Sequence[int],
) -> dict[str, Any]:
    """The kept components' PSNR and the asked colour's share on the full reconstruction, for comparison."""
    keep = keep_masks(source.part_id, part_lists, edited_indices)
    psnr = masked_psnr(on_white(source.rgba), on_white(reconstruction.rgba), keep) if keep.any() else None
    colour = edit_colour_metrics(source.part_id, source.rgb_white, reconstruction.rgba, part_lists, tokens, phrases)
    return {"reconstruction_preserved_psnr": psnr, **{f"reconstruction_{k}": v for k, v in colour.items()}}


def _merge_note(row: Mapping[str, Any]) -> str:
    kind, why = row.get("kind"), row.get("why")
    if kind == "appearance":
        return (
            f"{row['token']}: appearance edit ({why}): its geometry kept, a new texture on {row.get('uvs')} UVs "
            f"({100 * (row.get('seen_fraction') or 0):.0f}% of it seen by a view)"
        )
    if kind == "shape":
        return f"{row['token']}: shape edit ({why}), rebuilt from the views (they agree on it at {row.get('agreement') or 0:.2f})"
    return f"{row['token']}: {kind}" + (f" ({why})" if why else "")
