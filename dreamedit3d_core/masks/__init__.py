"""The mask stage: one mask per component per view, and a table of tokens with their initializer words.

    components = build_components(rgb_white, depth, part_id, cameras, parts_table, MaskConfig())
    components.masks            # (K, V, H, W) bool
    components.table            # rows: component, token, name, initializer_word, source, part_ids, coverage, ...
    mask_preview(rgb_white, components.masks, components.tokens)

The Segment Anything helpers (`load_sam_predictor`, `build_tiny_sam`) import torch and segment_anything
only when first used, so parts-only work stays light.
"""

from dreamedit3d_core.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "components": ("TOKEN_FORMAT", "Components", "build_components", "component_descriptions"),
        "config": ("MaskConfig", "SamConfig", "ViewPromptConfig"),
        "parts": ("PartsTable", "read_parts_table", "resolve_groups"),
        "preview": ("mask_preview",),
        "prompts": ("ProjectedPoints", "project_surface_points"),
        "words": ("initializer_word",),
        "sam": ("load_sam_predictor", "build_tiny_sam", "read_state_dict"),
    },
)
