"""Stage `mask`: renders and parts in, one mask per component per view and the components table out."""

from __future__ import annotations

from dreamedit3d_core.masks import build_components, component_descriptions, mask_preview
from tasks.artifacts import CAMERAS, COMPONENTS, MASKS, MASKS_PREVIEW, PARTS, RENDERS
from tasks.running import StageInputs, StageOutputs


def mask(inputs: StageInputs, outputs: StageOutputs) -> dict:
    renders = inputs.load(RENDERS)
    components = build_components(
        renders.rgb_white, renders.depth, renders.part_id, inputs.load(CAMERAS), inputs.load(PARTS), inputs.settings("mask"),
        albedo=renders.albedo,
    )
    outputs.save(MASKS, components.masks)
    outputs.save(COMPONENTS, components.table)
    outputs.save(MASKS_PREVIEW, mask_preview(renders.rgb_white, components.masks, components.tokens))
    return {
        "components": len(components.tokens),
        "tokens": components.tokens,
        "described": component_descriptions(components.table, inputs.load(PARTS)),
        "warnings": components.warnings,
        **components.statistics,
    }
