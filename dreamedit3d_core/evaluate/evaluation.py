"""The evaluate stage's whole computation for one edit: render source and result from the same cameras, decide
which components the prompt keeps, compute every metric, and write the report.

The source asset and the edited mesh are rendered by the same Blender renderer from the evaluation cameras.
Components the prompt does not name ("<asset0> and <asset1> in green" names <asset1>) must stay: their
pixels are the keep masks of the preservation metrics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import trimesh

from dreamedit3d_core.evaluate.colour import component_colour_shares, edit_colour_metrics, main_colours
from dreamedit3d_core.evaluate.config import EvaluateConfig, EvaluationViewsConfig
from dreamedit3d_core.evaluate.edit import edit_metrics
from dreamedit3d_core.evaluate.edit_inputs import isolation_summary, keep_masks
from dreamedit3d_core.evaluate.report import html_report
from dreamedit3d_core.evaluate.turntable import turntable_strip
from dreamedit3d_core.geometry.cameras import CameraSet
from dreamedit3d_core.ingest import IngestedAsset
from dreamedit3d_core.mvdiffusion.prompts import edit_phrases
from dreamedit3d_core.reconstruct import GLB_FRAME, ReconstructedMesh
from dreamedit3d_core.render import RenderConfig, render_mesh_file, render_views

SOURCE_PROMPT = "a photo of an object"  # what CLIP's directional similarity measures the edit from


@dataclass(frozen=True)
class EditEvaluation:
    metrics: dict[str, Any]  # the prompt and every metric: one row of the metrics table
    component_colours: list[dict[str, Any]]  # every component's share of every named hue, source and result
    report: str  # a self-contained HTML page


def evaluation_render_config(render_config: RenderConfig, views_config: EvaluationViewsConfig) -> RenderConfig:
    """The renderer of the source and the result: the render stage's, on the evaluation orbit."""
    return render_config.orbit(views_config.views, views_config.elevation)


def edited_components(prompt: str, tokens: Sequence[str]) -> list[int]:
    """Indices of the components the prompt edits (the tokens its edit words belong to)."""
    return [list(tokens).index(token) for token in edit_phrases(prompt) if token in tokens]


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
) -> EditEvaluation:
    """One edit against its source asset.

    `sampled_views` (V, H, W, 3) uint8 were sampled at `cameras` (the render stage's, any image size);
    `components` is the mask stage's table (`token`, `part_ids`); `isolation_tables` are the attention
    isolation rows of each personalisation phase; the previews go into the report as they are."""
    tokens = list(components["token"])
    cameras = cameras.resized(int(sampled_views.shape[1]))
    evaluation = evaluation_render_config(render_config, views_config)
    source = render_views(asset_dir, evaluation.camera_set(), evaluation)
    edited = render_mesh_file(mesh_glb, evaluation.camera_set(), evaluation, GLB_FRAME)
    phrases = edit_phrases(prompt)
    edited_indices = edited_components(prompt, tokens)
    vertices, faces, _ = IngestedAsset.read(asset_dir).mesh_arrays()
    metrics: dict[str, Any] = dict(
        edit_metrics(
            cameras,
            sampled_views,
            ReconstructedMesh.load_glb(mesh_glb).trimesh_world,
            config,
            source_renders=source.rgba,
            edited_renders=edited.rgba,
            keep_masks=keep_masks(source.part_id, components["part_ids"], edited_indices),
            source_mesh=trimesh.Trimesh(vertices, faces, process=False),
            source_prompt=SOURCE_PROMPT,
            edit_prompt=prompt,
        )
    )
    metrics.update(
        edit_colour_metrics(source.part_id, source.rgb_white, edited.rgba, components["part_ids"], tokens, phrases)
    )
    for rows in isolation_tables:
        metrics.update(isolation_summary(rows))
    colour_rows = component_colour_shares(source.part_id, source.rgb_white, edited.rgba, components["part_ids"], tokens)
    kept = [token for index, token in enumerate(tokens) if index not in edited_indices]
    report = html_report(
        f"{title}: {prompt}",
        [
            ("source, rendered from the evaluation cameras", turntable_strip(source.rgb_white)),
            ("components (masks of the training views)", masks_preview),
            ("sampled views of the edit", turntable_strip(sampled_views)),
            ("reconstructed mesh, same cameras", turntable_strip(edited.rgb_white)),
            ("turntable of the reconstructed mesh", mesh_preview),
        ],
        metrics,
        notes=[
            f"kept components: {kept}",
            *(f"{token} main colour, source -> result: {change}" for token, change in main_colours(colour_rows).items()),
        ],
    )
    return EditEvaluation(metrics={"prompt": prompt, **metrics}, component_colours=colour_rows, report=report)
