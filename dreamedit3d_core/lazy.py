"""Package exports imported at first use (PEP 562), so that reading a config never imports torch.

A stage package lists its public names by submodule:

    __all__, __getattr__, __dir__ = lazy_exports(__name__, {"config": ("RenderConfig",), "render": ("render_views",)})

`from dreamedit3d_core.render import RenderConfig` then imports `dreamedit3d_core.render.config` only, and
`render_views` imports `dreamedit3d_core.render.render` the first time it is asked for. The mapping must be a
literal: `tasks/source_digests.py` reads it to follow a name to the module that defines it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, Sequence[str]]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """`__all__`, `__getattr__` and `__dir__` for `package`, whose names live in the submodules `exports` lists."""
    where = {name: f"{package}.{module}" for module, names in exports.items() for name in names}
    # A name that is also a submodule's name (`ingest.source_files`, the function of `source_files.py`) is bound
    # now: importing that submodule later would otherwise set the package attribute to the module.
    for name, module in where.items():
        if module == f"{package}.{name}":
            setattr(sys.modules[package], name, getattr(importlib.import_module(module), name))

    def __getattr__(name: str) -> Any:
        try:
            module = where[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return sorted(where), __getattr__, __dir__
