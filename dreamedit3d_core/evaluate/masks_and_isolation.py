"""What the evaluation of one edit needs from earlier stages: which pixels must stay, how isolated tokens are."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def keep_masks(part_id: np.ndarray, component_parts: Sequence[Sequence[int]], named: Sequence[int]) -> np.ndarray:
    """(V, H, W) bool: pixels of the parts of every component the edit prompt does not name."""
    kept_parts = [part for index, parts in enumerate(component_parts) if index not in set(named) for part in parts]
    return np.isin(part_id, np.asarray(kept_parts, dtype=part_id.dtype))


def isolation_summary(rows: Sequence[Mapping[str, object]]) -> dict[str, float]:
    """Mean attention isolation per phase ("before_invert" ...): the share of attention inside own masks."""
    by_phase: dict[str, list[float]] = {}
    for row in rows:
        by_phase.setdefault(str(row["phase"]), []).append(float(row["attention_isolation"]))  # type: ignore[arg-type]
    return {f"isolation_{phase}": float(np.mean(values)) for phase, values in by_phase.items()}
