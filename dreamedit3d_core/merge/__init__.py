"""Merge stage: an edit's sampled views back onto the source asset, changing only the components it names.

    result = merge_edit(asset, views, cameras, depth, masks, component_parts, tokens, prompt, MergeConfig())
    result.asset.to_glb()                 # the source asset, edited components re-textured (or rebuilt)
    result.asset.to_glb(frame="source")   # the same in the source file's own frame
"""

from dreamedit3d_core.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "config": ("MergeConfig",),
        "merge": ("MergeResult", "edit_glbs", "edited_components", "merge_edit"),
    },
)
