"""Execution-only settings: how a stage runs, never what it computes.

Threads, devices, executables, timeouts and checkpoint intervals change where and how fast a stage runs, not
its artifact. They are marked on the config classes themselves with `execution_field(...)`, and
`key_settings(config)` leaves every marked field out (at any depth), so changing one recomputes nothing,
upstream or downstream. Everything else in a config is part of the key of every stage that reads it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, TypeAdapter

_MARK = "execution_only"


def marked_field(mark: str, default: Any = ..., **kwargs: Any) -> Any:
    """A pydantic `Field` carrying `mark` (execution-only here; per-asset in asset_settings.py)."""
    if "default_factory" in kwargs:
        return Field(json_schema_extra={mark: True}, **kwargs)
    return Field(default, json_schema_extra={mark: True}, **kwargs)


def has_mark(model: type[BaseModel], name: str, mark: str) -> bool:
    extra = model.model_fields[name].json_schema_extra
    return isinstance(extra, dict) and bool(extra.get(mark))


def marked_paths(model: type[BaseModel], mark: str, prefix: str = "") -> list[str]:
    """Dotted names of every field of `model` carrying `mark`, and of the config classes nested in it, in declared
    order (a marked config class covers everything under it)."""
    found = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        if has_mark(model, name, mark):
            found.append(path)
            continue
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found += marked_paths(annotation, mark, f"{path}.")
    return found


def execution_field(default: Any = ..., **kwargs: Any) -> Any:
    """A pydantic `Field` marked execution-only: left out of artifact keys."""
    return marked_field(_MARK, default, **kwargs)


def is_execution_only(model: type[BaseModel], name: str) -> bool:
    return has_mark(model, name, _MARK)


def key_settings(value: Any) -> Any:
    """What of a setting goes into an artifact key: its JSON (`model_dump(mode="json")` for a config) without
    the execution-only fields, at any depth."""
    if isinstance(value, BaseModel):
        return _prune(value.model_dump(mode="json"), value)
    return _json(value)


def _prune(dumped: Any, value: Any) -> Any:
    """`dumped` (the JSON of `value`) without the execution-only fields of the configs inside `value`."""
    if isinstance(value, BaseModel):
        return {
            name: _prune(dumped[name], getattr(value, name))
            for name in type(value).model_fields
            if name in dumped and not is_execution_only(type(value), name)
        }
    if isinstance(value, dict) and isinstance(dumped, dict):
        return {key: _prune(item, inner) for (key, item), inner in zip(dumped.items(), value.values(), strict=True)}
    if isinstance(value, (list, tuple)) and isinstance(dumped, list):
        return [_prune(item, inner) for item, inner in zip(dumped, value, strict=True)]
    return dumped


def _json(value: Any) -> Any:
    return TypeAdapter(type(value)).dump_python(value, mode="json")


def execution_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Dotted names of every execution-only field of `model` and of the config classes nested in it."""
    return marked_paths(model, _MARK, prefix)
