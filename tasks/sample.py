"""Stage `sample`: one edit prompt in, V consistent views of the edited asset out (per seed and sample)."""

from __future__ import annotations

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from dreamedit3d_core.mvdiffusion import MultiViewDiffusion, SampleConfig, sample_views
from dreamedit3d_core.mvdiffusion.loading import ModelConfig, load_base_model, resolve_device
from dreamedit3d_core.mvdiffusion.local_edit import edit_region
from storage import ArtifactWriter
from tasks.images import png_bytes
from tasks.models import base_model_digest
from tasks.prefect_task import stage_task
from tasks.progress import progress_bar
from tasks.stage import StagePlan, StageRef, open_artifact, run_stage, upstream_digests

CODE_VERSION = "2"  # 2: local edits (sample.local_edit) read the component masks


class EditConfig(BaseModel):
    """What one edit samples: the prompt, its seed and how many samples (each V views)."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1)
    seed: int = 0
    samples: int = Field(1, ge=1, le=16)


def plan(
    store: str,
    renders: StageRef,
    model: StageRef | None,
    model_config: ModelConfig,
    edit: EditConfig,
    config: SampleConfig,
    masks: StageRef | None = None,
) -> StagePlan:
    if config.local_edit and masks is None:
        raise ValueError("sample.local_edit needs the component masks (the mask stage's artifact)")
    inputs = upstream_digests(renders=renders, **({"masks": masks} if config.local_edit else {}))
    inputs["model"] = model.digest if model is not None else base_model_digest(model_config)
    return StagePlan(
        store_uri=store,
        asset_id=renders.asset_id,
        stage="sample",
        code_version=CODE_VERSION,
        config={"edit": edit.model_dump(mode="json"), "sample": config.model_dump(mode="json")},
        inputs=inputs,
    )


def load_model(store: str, model: StageRef | None, model_config: ModelConfig) -> MultiViewDiffusion:
    """The personalised model when there is one, else the base model."""
    if model is None:
        return load_base_model(model_config)
    folder = open_artifact(model, store).local_path("finetuned_model")
    device = resolve_device(model_config.device)
    return MultiViewDiffusion.from_pretrained(folder, device=device).apply_performance(model_config.performance)


@stage_task("sample", plan)
def sample(
    store: str,
    renders: StageRef,
    model: StageRef | None,
    model_config: ModelConfig,
    edit: EditConfig,
    config: SampleConfig,
    masks: StageRef | None = None,
) -> StageRef:
    stage_plan = plan(store, renders, model, model_config, edit, config, masks)

    def compute(writer: ArtifactWriter) -> dict:
        diffusion = load_model(store, model, model_config)
        cameras_table = open_artifact(renders, store).table("cameras").to_pydict()
        cameras = torch.tensor(np.asarray(cameras_table["mvdream_camera"], dtype=np.float32))  # (V, 16)
        generator = torch.Generator(device="cpu").manual_seed(edit.seed)
        regions = None
        if config.local_edit:  # the edited components' masks, from the same cameras as the sampled views
            components = open_artifact(masks, store)
            component_masks = components.array("masks", "masks")[:]  # (K, V, H, W)
            region = edit_region(component_masks, components.table("components").to_pydict()["token"], edit.prompt)
            regions = np.broadcast_to(region, (edit.samples, *region.shape))
        with progress_bar(f"sample {edit.prompt[:40]!r}") as on_step:
            output = sample_views(
                diffusion, [edit.prompt] * edit.samples, cameras, config, generator, on_step=on_step, edit_regions=regions
            )
        views = output.views  # (E, V, H, W, 3)
        writer.array("views", "views", views, dims=("sample", "view", "y", "x", "channel"))
        if output.edit_masks is not None:
            writer.array("views", "edit_masks", output.edit_masks, dims=("sample", "view", "y", "x"))
        writer.group_attrs("views", {"prompt": edit.prompt, "seed": edit.seed, "azimuths": cameras_table["azimuth"]})
        sheet = views.transpose(0, 2, 1, 3, 4).reshape(views.shape[0] * views.shape[2], -1, 3)  # (E*H, V*W, 3)
        writer.file("preview", png_bytes(np.ascontiguousarray(sheet)), filename="views.png")
        return {"prompt": edit.prompt, "samples": edit.samples, "views": int(views.shape[1])}

    return run_stage(stage_plan, compute, items={"views": "views", "views_preview": "preview"})
