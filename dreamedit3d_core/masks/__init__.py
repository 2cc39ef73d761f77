"""The mask stage: one mask per component per view, and a table of tokens with their initializer words.

    components = build_components(rgb_white, depth, part_id, cameras, parts_table, MaskConfig())
    components.masks            # (K, V, H, W) bool
    components.table            # rows: component, token, name, initializer_word, source, part_ids, coverage, ...
    mask_preview(rgb_white, components.masks, components.tokens)

The Segment Anything helpers (`load_sam_predictor`, `build_tiny_sam`) import torch and segment_anything
only when first used, so parts-only work stays light.
"""

from __future__ import annotations

from typing import Any

from dreamedit3d_core.masks.components import TOKEN_FORMAT, Components, build_components, component_descriptions
from dreamedit3d_core.masks.config import MaskConfig, SamConfig, ViewPromptConfig
from dreamedit3d_core.masks.parts import PartsTable, read_parts_table, resolve_groups
from dreamedit3d_core.masks.preview import mask_preview
from dreamedit3d_core.masks.prompts import ProjectedPoints, project_surface_points
from dreamedit3d_core.masks.words import initializer_word

_SAM_NAMES = ("load_sam_predictor", "build_tiny_sam", "read_state_dict")

__all__ = [
    "component_descriptions",
    "TOKEN_FORMAT",
    "Components",
    "MaskConfig",
    "PartsTable",
    "ProjectedPoints",
    "SamConfig",
    "ViewPromptConfig",
    "build_components",
    "initializer_word",
    "mask_preview",
    "project_surface_points",
    "read_parts_table",
    "resolve_groups",
    *_SAM_NAMES,
]


def __getattr__(name: str) -> Any:
    if name in _SAM_NAMES:
        from dreamedit3d_core.masks import sam

        return getattr(sam, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
