"""Stage `finetune` (phase 2): the multi-view model fine-tuned on the asset with its learned tokens.

Resumable inside the stage: checkpoints go to the store's scratch folder for this artifact key every
`checkpoint_every` steps, and a killed run continues from the last one (the ledger's details say from
which step). The scratch folder is removed once the fine-tuned model is committed.
"""

from __future__ import annotations

from dreamedit3d_core.mvdiffusion.loading import ModelConfig, load_base_model
from dreamedit3d_core.personalize import FinetuneConfig, finetune_model, load_token_embeddings, prepare_training_data
from storage import ArtifactStore, ArtifactWriter
from tasks.images import png_bytes
from tasks.invert import training_inputs
from tasks.models import base_model_digest
from tasks.prefect_task import stage_task
from tasks.progress import progress_bar
from tasks.stage import StagePlan, StageRef, open_artifact, run_stage, upstream_digests
from tasks.tables import columns

CODE_VERSION = "1"


def plan(
    store: str, renders: StageRef, masks: StageRef, tokens: StageRef, model_config: ModelConfig, config: FinetuneConfig
) -> StagePlan:
    inputs = upstream_digests(renders=renders, masks=masks, tokens=tokens)
    inputs["model"] = base_model_digest(model_config)
    return StagePlan(
        store_uri=store,
        asset_id=renders.asset_id,
        stage="finetune",
        code_version=CODE_VERSION,
        config=config.model_dump(mode="json"),
        inputs=inputs,
    )


@stage_task("finetune", plan)
def finetune(
    store: str, renders: StageRef, masks: StageRef, tokens: StageRef, model_config: ModelConfig, config: FinetuneConfig
) -> StageRef:
    stage_plan = plan(store, renders, masks, tokens, model_config, config)
    artifact_store = ArtifactStore(store)

    def compute(writer: ArtifactWriter) -> dict:
        rgb, mask_array, cameras, components = training_inputs(store, renders, masks)
        model = load_base_model(model_config)
        token_dir = open_artifact(tokens, store).local_path("token_embeddings")
        load_token_embeddings(token_dir, model, components["token"])
        data = prepare_training_data(model, rgb, mask_array, cameras)
        with progress_bar("finetune") as on_step:
            result = finetune_model(
                model,
                data,
                components["token"],
                config,
                checkpoint_dir=artifact_store.scratch_dir(stage_plan.key),
                on_step=on_step,
            )
        result.model.save_pretrained(writer.new_directory("finetuned_model"))
        writer.table("log", columns(result.log))
        writer.table("attention_isolation", columns(result.isolation_before + result.isolation_after, ("token",)))
        writer.file("attention_preview", png_bytes(result.attention_preview), filename="attention.png")
        return {
            "tokens": list(components["token"]),
            "resumed_from_step": result.resumed_from_step,
            "trained_parameters": len(result.trained_parameters),
            "probe_before": result.probe_before,
            "probe_after": result.probe_after,
        }

    ref = run_stage(
        stage_plan,
        compute,
        items={
            "finetuned_model": "finetuned_model",
            "finetune_log": "log",
            "finetune_attention_isolation": "attention_isolation",
            "finetune_attention_preview": "attention_preview",
        },
        store=artifact_store,
    )
    artifact_store.clear_scratch(stage_plan.key)
    return ref
