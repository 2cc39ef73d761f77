"""Per-asset settings: what one asset of a batch may choose for itself.

A manifest row's `overrides` (flows/manifest.py) may set only these: an asset's up axis, render size, components,
prompts, seeds and edit kind. They are marked on the config classes themselves with `asset_field(...)`, as
execution-only settings are with `execution_field(...)` (execution.py); `asset_paths(PipelineConfig)` is the list a
manifest checks against. Execution and security settings (executables, devices, timeouts, limits, weights) are never
marked: they come only from the operator's config.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from dreamedit3d_core.execution import has_mark, marked_field, marked_paths

_MARK = "per_asset"


def asset_field(default: Any = ..., **kwargs: Any) -> Any:
    """A pydantic `Field` marked per-asset: a manifest row's overrides may set it."""
    return marked_field(_MARK, default, **kwargs)


def is_per_asset(model: type[BaseModel], name: str) -> bool:
    return has_mark(model, name, _MARK)


def asset_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Dotted names of every per-asset field of `model` and of the config classes nested in it, in declared order
    (a marked config class or mapping covers everything under it)."""
    return marked_paths(model, _MARK, prefix)
