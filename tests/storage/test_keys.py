"""Content addresses: what changes a key and what must not."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from storage import artifact_key, file_digest

ASSET = hashlib.sha256(b"asset bytes").hexdigest()
UPSTREAM = hashlib.sha256(b"upstream artifact").hexdigest()
CONFIG = {"resolution": 256, "elevation": 15.0, "azimuths": (0, 90, 180, 270), "camera": {"fov": 40.0, "near": 0.1}}


def key(**changes: object) -> str:
    args = {"stage": "render", "code_version": "1", "config": CONFIG, "inputs": {"asset": ASSET}} | changes
    return artifact_key(**args)  # type: ignore[arg-type]


def test_key_format_names_the_stage() -> None:
    assert re.fullmatch(r"render-[0-9a-f]{32}", key())


def test_key_ignores_dict_order_and_equivalent_spellings() -> None:
    reordered = {"camera": {"near": 0.1, "fov": 40.0}, "azimuths": [0, 90, 180, 270], "elevation": 15}
    reordered["resolution"] = 256
    assert key(config=reordered) == key()
    assert key(inputs={"b": UPSTREAM, "a": ASSET}) == key(inputs={"a": ASSET, "b": UPSTREAM})
    assert key(config={"n": np.int64(4), "p": Path("x/y")}) == key(config={"n": 4, "p": "x/y"})


@pytest.mark.parametrize(
    "changes",
    [
        {"stage": "mask"},
        {"code_version": "2"},
        {"config": CONFIG | {"elevation": 15.5}},
        {"config": CONFIG | {"camera": {"fov": 40.0, "near": 0.2}}},
        {"config": CONFIG | {"azimuths": (90, 180, 270, 0)}},
        {"inputs": {"asset": UPSTREAM}},
        {"inputs": {"asset": ASSET, "renders": UPSTREAM}},
    ],
)
def test_key_changes_with_every_ingredient(changes: dict[str, object]) -> None:
    assert key(**changes) != key()


def test_key_rejects_inputs_that_are_not_digests() -> None:
    with pytest.raises(ValueError, match="'asset' must be a sha256 hex digest"):
        key(inputs={"asset": "/data/duck.glb"})
    with pytest.raises(ValueError, match="invalid stage name"):
        key(stage="../render")


def test_file_digest_streams_a_file_with_spaces_in_its_name(tmp_path: Path) -> None:
    data = np.random.default_rng(0).bytes(3 * 2**20 + 17)  # several read blocks and a ragged end
    path = tmp_path / "my asset (copy).glb"
    path.write_bytes(data)
    assert file_digest(path) == hashlib.sha256(data).hexdigest()
    assert file_digest(str(path)) == file_digest(path)
    with pytest.raises(FileNotFoundError):
        file_digest(tmp_path / "missing file.glb")
