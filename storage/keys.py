"""Content addresses: file digests, artifact keys and the JSON form of configs and metadata."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import json
import math
import os
import re
import unicodedata
from collections.abc import Mapping, Set
from pathlib import PurePath
from typing import Any

import numpy as np

NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
_MAX_NAME = 200  # well under the 255-byte file-name limit, with room for suffixes


def check_name(value: str, what: str) -> str:
    """Raise ValueError unless `value` can be used as a single path component in the store."""
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value) or len(value) > _MAX_NAME:
        raise ValueError(
            f"invalid {what} {value!r}: use letters, digits, '_', '.', '-' (not first), at most {_MAX_NAME} characters"
        )
    return value


def file_digest(path: str | os.PathLike[str]) -> str:
    """sha256 hex digest of a file's bytes, streamed (never loaded whole)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def to_json(obj: Any, *, canonical: bool = False) -> Any:
    """Convert configs and metadata to plain JSON values.

    Handles mappings (keys become strings), tuples and sets, paths (posix strings), numpy scalars and arrays,
    enums, datetimes, dataclasses and pydantic models. With `canonical=True` (used for keys) integral floats become
    ints, so `lr: 1` and `lr: 1.0` in two config files address the same artifact, sets are sorted and -0.0 is 0.
    """
    if hasattr(obj, "model_dump") and callable(obj.model_dump):  # pydantic v2 model
        obj = obj.model_dump(mode="json")
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, enum.Enum):
        obj = obj.value
    if isinstance(obj, np.generic):
        obj = obj.item()
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        if canonical and math.isfinite(obj) and obj.is_integer():
            return int(obj)
        return float(obj)
    if isinstance(obj, Mapping):
        out = {str(k): to_json(v, canonical=canonical) for k, v in obj.items()}
        if len(out) != len(obj):
            raise ValueError(f"mapping keys collide once converted to strings: {list(obj)!r}")
        return out
    if isinstance(obj, PurePath):
        return obj.as_posix()
    if isinstance(obj, (dt.datetime, dt.date)):
        return obj.isoformat()
    if isinstance(obj, np.ndarray):
        return to_json(obj.tolist(), canonical=canonical)
    if isinstance(obj, Set):
        items = [to_json(v, canonical=canonical) for v in obj]
        return sorted(items, key=_sort_key) if canonical else items
    if isinstance(obj, (list, tuple)):
        return [to_json(v, canonical=canonical) for v in obj]
    raise ValueError(f"cannot convert {type(obj).__name__} to JSON: {obj!r}")


def _sort_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def canonical_json(obj: Any) -> str:
    """One string per value: sorted keys, no whitespace, shortest float repr."""
    return json.dumps(to_json(obj, canonical=True), sort_keys=True, separators=(",", ":"), allow_nan=True)


def ascii_slug(text: str, keep: str = "") -> str:
    """A name for paths and keys, which take ASCII only: accents dropped (café -> cafe), every other character
    but letters, digits and `keep` as '-', no '-' at either end ('' when nothing is left)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(rf"[^A-Za-z0-9{re.escape(keep)}]", "-", ascii_text).strip("-")


def artifact_key(stage: str, code_version: str, config: Mapping[str, Any], inputs: Mapping[str, str]) -> str:
    """Content address of a stage's output: `"<stage>-<32 hex>"`.

    `inputs` maps each input's name to its sha256 digest: `file_digest(path)` for input files,
    `artifact.digest` for upstream artifacts. Dict order never matters; any change of stage, code version,
    config value or input digest gives a new key.
    """
    check_name(stage, "stage name")
    if not isinstance(code_version, str) or not code_version:
        raise ValueError(f"code_version must be a non-empty string, not {code_version!r}")
    for name, digest in inputs.items():
        if not isinstance(digest, str) or not HEX_DIGEST.fullmatch(digest):
            raise ValueError(
                f"input {name!r} must be a sha256 hex digest (file_digest(path) or artifact.digest), not {digest!r}"
            )
    payload = {"stage": stage, "code_version": code_version, "config": config, "inputs": dict(inputs)}
    digest = hashlib.sha256(canonical_json(payload).encode()).hexdigest()
    return f"{stage}-{digest[:32]}"
