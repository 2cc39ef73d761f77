"""Core functions return rows (lists of dicts); the store writes columns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def columns(rows: Sequence[dict[str, Any]], empty: Sequence[str] = ("step",)) -> dict[str, list[Any]]:
    """Rows -> a mapping of columns (an empty table keeps the `empty` column names)."""
    if not rows:
        return {name: [] for name in empty}
    return {name: [row[name] for row in rows] for name in rows[0]}
