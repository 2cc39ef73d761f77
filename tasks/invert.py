"""Stage `invert` (phase 1): one learned token embedding per component, from the views and their masks."""

from __future__ import annotations

import numpy as np

from dreamedit3d_core.mvdiffusion.loading import ModelConfig, load_base_model
from dreamedit3d_core.personalize import InvertConfig, invert_tokens, prepare_training_data, save_token_embeddings
from storage import ArtifactWriter
from tasks.images import png_bytes
from tasks.models import base_model_digest
from tasks.prefect_task import stage_task
from tasks.progress import progress_bar
from tasks.tables import columns
from tasks.stage import StagePlan, StageRef, open_artifact, run_stage, upstream_digests

CODE_VERSION = "1"


def plan(store: str, renders: StageRef, masks: StageRef, model_config: ModelConfig, config: InvertConfig) -> StagePlan:
    inputs = upstream_digests(renders=renders, masks=masks)
    inputs["model"] = base_model_digest(model_config)
    return StagePlan(
        store_uri=store,
        asset_id=renders.asset_id,
        stage="invert",
        code_version=CODE_VERSION,
        config=config.model_dump(mode="json"),
        inputs=inputs,
    )


def training_inputs(store: str, renders: StageRef, masks: StageRef) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """White-background views, component masks, MVDream cameras and the components table."""
    rendered = open_artifact(renders, store)
    masked = open_artifact(masks, store)
    cameras = np.asarray(rendered.table("cameras").to_pydict()["mvdream_camera"], dtype=np.float32)  # (V, 16)
    components = masked.table("components").to_pydict()
    return rendered.array("renders", "rgb_white"), masked.array("masks", "masks"), cameras, components


@stage_task("invert", plan)
def invert(store: str, renders: StageRef, masks: StageRef, model_config: ModelConfig, config: InvertConfig) -> StageRef:
    stage_plan = plan(store, renders, masks, model_config, config)

    def compute(writer: ArtifactWriter) -> dict:
        rgb, mask_array, cameras, components = training_inputs(store, renders, masks)
        model = load_base_model(model_config)
        data = prepare_training_data(model, rgb, mask_array, cameras)
        with progress_bar("invert") as on_step:
            result = invert_tokens(
                model, data, components["token"], components["initializer_word"], config, on_step=on_step
            )
        save_token_embeddings(writer.new_directory("token_embeddings"), components["token"], result.embeddings)
        writer.table("log", columns(result.log))
        writer.table("attention_isolation", columns(result.isolation_before + result.isolation_after, ("token",)))
        writer.file("attention_preview", png_bytes(result.attention_preview), filename="attention.png")
        return {
            "tokens": list(components["token"]),
            "initializer_words": result.initializer_words,
            "probe_before": result.probe_before,
            "probe_after": result.probe_after,
        }

    return run_stage(
        stage_plan,
        compute,
        items={
            "token_embeddings": "token_embeddings",
            "invert_log": "log",
            "attention_isolation": "attention_isolation",
            "attention_preview": "attention_preview",
        },
    )

