"""Stage `sample`: one edit prompt in, V consistent views of the edited asset out (per seed and sample)."""

from __future__ import annotations

from typing import Any

from dreamedit3d_core.mvdiffusion import MultiViewDiffusion
from dreamedit3d_core.mvdiffusion.sampling import sample_edit, views_sheet
from dreamedit3d_core.mvdiffusion.loading import resolve_device
from tasks.artifacts import CAMERAS, COMPONENTS, FINETUNED_MODEL, MASKS, RENDERS, VIEWS, VIEWS_PREVIEW, EditViews
from tasks.models import base_model
from tasks.progress import progress
from tasks.running import StageInputs, StageOutputs


def trained_attributes(inputs: StageInputs) -> dict[str, str]:
    """The words each token was fine-tuned beside (attribute-aware training), to prompt the model as it learned."""
    return dict(inputs.artifact("finetune").metadata.get("result", {}).get("attribute_words") or {})


def sample(inputs: StageInputs, outputs: StageOutputs) -> dict:
    model_config, config, edit = inputs.settings("model"), inputs.settings("sample"), inputs.edit
    attributes: dict[str, str] = {}
    if inputs.ran("finetune"):  # the personalised model
        model = MultiViewDiffusion.from_pretrained(inputs.load(FINETUNED_MODEL), device=resolve_device(model_config.device))
        model = model.apply_performance(model_config.performance)
        attributes, which = trained_attributes(inputs), {"model": "personalised"}
    else:  # `personalize: false`: the base model, and the config made sure the sampler needs no tokens
        model, model_was = base_model(model_config)
        which = {"model": "base", "base_model": model_was}
    cameras = inputs.load(CAMERAS)
    local: dict[str, Any] = {}
    if config.local_edit:  # the edited components' masks, their words, and the source's views where asked for
        components = inputs.load(COMPONENTS)
        local = {
            "component_masks": inputs.load(MASKS),
            "tokens": components["token"],
            "initializer_words": dict(zip(components["token"], components["initializer_word"], strict=True)),
            "source_views": inputs.load(RENDERS).rgb_white if config.known_region == "source" else None,
        }
    with progress(f"sample {edit.prompt[:40]!r}") as on_step:
        output = sample_edit(model, edit, cameras.mvdream_vectors(), config, attributes=attributes, on_step=on_step, **local)
    views = EditViews(output.views, edit.prompt, edit.seed, [float(a) for a in cameras.azimuths], output.edit_masks)
    outputs.save(VIEWS, views)
    outputs.save(VIEWS_PREVIEW, views_sheet(output.views))
    return {"prompt": edit.prompt, "samples": edit.samples, "views": int(output.views.shape[1]), **which}
