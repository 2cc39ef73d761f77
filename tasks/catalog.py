"""The stage catalog: every stage of DreamEdit3D, declared once.

Each entry says what the stage is called, which artifacts it loads (the stages it reads follow from them: those
that make them), which config sections it reads,
whether it runs once per edit and on which work pool, its code version, and the artifacts it makes. From
this list come the artifact keys (tasks/stage.py), the Prefect tasks (tasks/prefect_task.py), the order
`edit_asset` runs them in and where `--until` stops, the per-stage CLI commands, `dreamedit3d status`, and
which stages a distributed run sends to the gpu pool. A new stage is one entry here plus its compute
function in tasks/<stage>.py (and its config section, if it has settings of its own).

Code versions: bump a stage's `code_version` when its artifact would change; the source of every stage (its
task module and the core modules it reaches) is recorded in tasks/code_versions.json, and a test fails when
that source changes without either a bump or `python -m tasks.code_versions --outputs-unchanged STAGE`.
"""

from __future__ import annotations

from collections.abc import Sequence

from dreamedit3d_core.config import PipelineConfig, WorldTrainingConfig
from dreamedit3d_core.evaluate.config import EvaluateConfig
from dreamedit3d_core.evaluate.page import viewer_version
from dreamedit3d_core.execution import key_settings
from dreamedit3d_core.mvdiffusion.prompts import check_prompt_tokens
from tasks import artifacts as a
from tasks.ingest import identify_source, source_asset_id
from tasks.models import base_model_digest
from tasks.stage import Deferred, Pipeline, Stage, StageRef



def check_edit_tokens(masks: StageRef, edits: Sequence[str]) -> None:
    """Before any personalisation: every token an edit names must be one of the asset's components."""
    described = {entry["token"]: ", ".join(entry["parts"]) or entry["name"] for entry in masks.metadata.get("described", [])}
    for prompt in edits:
        check_prompt_tokens(prompt, masks.metadata["tokens"], described)


def evaluate_key(evaluate: EvaluateConfig) -> dict:
    """The report inlines the vendored 3D viewer: which one (None: not installed, pictures instead) is in the key,
    so installing it later remakes the reports."""
    return {**key_settings(evaluate), "viewer": viewer_version() if evaluate.report_3d else None}


EDIT = Pipeline(
    name="edit",
    config_class=PipelineConfig,
    section_keys={"model": lambda model: {"base_model": base_model_digest(model)}, "evaluate": evaluate_key},
    stages=(
        Stage(
            name="ingest",
            about="read a 3D file, refuse bad input, normalise it (centred, unit sphere, +Z up)",
            compute=Deferred("tasks.ingest", "ingest"),
            code_version="3",
            config=("ingest",),
            identify=identify_source,
            name_source=source_asset_id,
            makes=(a.ASSET, a.PARTS),
        ),
        Stage(
            name="render",
            about="Blender renders of the asset from the MVDream orbit: colour, depth, normals, part ids, albedo",
            compute=Deferred("tasks.render", "render"),
            code_version="3",
            loads=(a.ASSET,),
            config=("render",),
            makes=(a.RENDERS, a.CAMERAS, a.RENDERS_PREVIEW),
        ),
        Stage(
            name="mask",
            about="one mask per component per view, and a token per component",
            compute=Deferred("tasks.mask", "mask"),
            code_version="6",
            loads=(a.RENDERS, a.CAMERAS, a.PARTS),
            config=("mask",),
            check_edits=check_edit_tokens,
            makes=(a.MASKS, a.COMPONENTS, a.MASKS_PREVIEW),
        ),
        Stage(
            name="invert",
            about="phase 1: one token embedding per component (textual inversion with attention alignment)",
            compute=Deferred("tasks.invert", "invert"),
            code_version="3",
            loads=(a.COMPONENTS, a.RENDERS, a.MASKS, a.CAMERAS),
            config=("model", "invert"),
            when="personalize",
            pool="gpu",
            makes=(a.TOKEN_EMBEDDINGS, a.INVERT_LOG, a.ATTENTION_ISOLATION, a.ATTENTION_PREVIEW),
        ),
        Stage(
            name="finetune",
            about="phase 2: the multi-view model fine-tuned with the tokens (resumes from checkpoints)",
            compute=Deferred("tasks.finetune", "finetune"),
            code_version="3",
            loads=(a.COMPONENTS, a.TOKEN_EMBEDDINGS, a.RENDERS, a.MASKS, a.CAMERAS),
            config=("model", "finetune"),
            when="personalize",
            pool="gpu",
            checkpoints=True,
            makes=(a.FINETUNED_MODEL, a.FINETUNE_LOG, a.FINETUNE_ATTENTION_ISOLATION, a.FINETUNE_ATTENTION_PREVIEW),
        ),
        Stage(
            name="sample",
            about="the views of one edit prompt, sampled from the personalised model (or the base model without it)",
            compute=Deferred("tasks.sample", "sample"),
            code_version="6",
            loads=(a.FINETUNED_MODEL, a.CAMERAS, a.COMPONENTS, a.MASKS, a.RENDERS),
            config=("model", "sample"),
            per_edit=True,
            pool="gpu",
            makes=(a.VIEWS, a.VIEWS_PREVIEW),
        ),
        Stage(
            name="reconstruct",
            about="the paper's last step, optional: the whole object lifted from the edit's views to a new mesh",
            compute=Deferred("tasks.reconstruct", "reconstruct"),
            code_version="3",
            loads=(a.VIEWS, a.CAMERAS),
            config=("reconstruct", "render"),
            per_edit=True,
            when="reconstruct.enabled",
            makes=(a.RECONSTRUCTION, a.RECONSTRUCTION_PREVIEW, a.RECONSTRUCTION_TURNTABLE),
        ),
        Stage(
            name="merge",
            about="the source asset with only the named components changed: re-textured from the views, or rebuilt",
            compute=Deferred("tasks.merge", "merge"),
            code_version="4",
            loads=(a.VIEWS, a.CAMERAS, a.COMPONENTS, a.ASSET, a.RENDERS, a.MASKS, a.RECONSTRUCTION),
            config=("merge", "reconstruct", "render"),
            per_edit=True,
            makes=(a.MESH, a.MESH_SOURCE_FRAME, a.MESH_PREVIEW, a.TURNTABLE, a.MERGE_REPORT),
        ),
        Stage(
            name="evaluate",
            about="the edit against its source: metrics and an HTML report",
            compute=Deferred("tasks.evaluate", "evaluate"),
            code_version="12",
            loads=(
                a.VIEWS, a.ATTENTION_ISOLATION, a.FINETUNE_ATTENTION_ISOLATION, a.ASSET, a.MESH, a.CAMERAS, a.COMPONENTS,
                a.MASKS_PREVIEW, a.MESH_PREVIEW, a.MERGE_REPORT, a.RECONSTRUCTION,
            ),
            config=("evaluate", "evaluation_views", "render", "model"),
            per_edit=True,
            makes=(a.METRICS, a.COMPONENT_COLOURS, a.REPORT),
        ),
    ),
)

WORLD = Pipeline(
    name="world",
    config_class=WorldTrainingConfig,
    asset_id="world",  # the pseudo-asset of the world model's stages in the store and in `status`
    stages=(
        Stage(
            name="world_dataset",
            about="render the procedural parts world's training and held-out objects",
            compute=Deferred("tasks.world", "world_dataset"),
            code_version="2",
            config=("dataset",),
            makes=(a.WORLD_IMAGES, a.WORLD_OBJECTS, a.WORLD_CAMERAS, a.WORLD_PREVIEW),
        ),
        Stage(
            name="pretrain",
            about="train the small multi-view world model from scratch (resumes from checkpoints)",
            compute=Deferred("tasks.world", "pretrain_world_model"),
            code_version="2",
            loads=(a.WORLD_IMAGES, a.WORLD_OBJECTS, a.WORLD_CAMERAS),
            config=("pretrain", "model_seed", "device"),
            retries=0,
            checkpoints=True,
            makes=(a.WORLD_MODEL, a.PRETRAIN_LOSSES),
        ),
    ),
)

PIPELINES = (EDIT, WORLD)


def all_stages() -> list[Stage]:
    return [stage for pipeline in PIPELINES for stage in pipeline.stages]


def find_stage(name: str) -> Stage:
    """A stage of any pipeline, by name."""
    for stage in all_stages():
        if stage.name == name:
            return stage
    raise ValueError(f"unknown stage {name!r}; stages are {', '.join(s.name for s in all_stages())}")


def pipeline_of(asset_id: str) -> Pipeline:
    """The pipeline an asset's stages belong to in the store (the world model's pseudo-asset, or an edit)."""
    return next((p for p in PIPELINES if p.asset_id == asset_id), EDIT)
