"""The edit_asset flow in-process, on an in-memory store: Prefect reports committed stages as Cached."""

from __future__ import annotations

from pathlib import Path

import pytest

from dreamedit3d_core.config import pipeline_config
from dreamedit3d_core.ingest import make_example_asset
from flows.edit_asset import edit_asset
from storage import ArtifactStore

pytestmark = pytest.mark.usefixtures("prefect_api_url")


def test_memory_store_second_run_is_cached_and_a_deleted_artifact_recomputes(tmp_path: Path) -> None:
    asset = make_example_asset(tmp_path / "chair.glb")
    store = f"memory://flow-{tmp_path.name}"
    config = pipeline_config("tiny")

    first = edit_asset(asset_path=str(asset), edits=[], store=store, config=config, until="mask")
    assert [ref.stage for ref in first.stages] == ["ingest", "render", "mask"]
    assert all(ref.status == "computed" for ref in first.stages)

    second = edit_asset(asset_path=str(asset), edits=[], store=store, config=config, until="mask")
    assert all(ref.status == "cached" for ref in second.stages)

    ArtifactStore(store).delete(first.stages[2].key)  # the masks
    third = edit_asset(asset_path=str(asset), edits=[], store=store, config=config, until="mask")
    assert [ref.status for ref in third.stages] == ["cached", "cached", "computed"]
    masks = ArtifactStore(store).get(third.stages[2].key).array("masks", "masks")
    assert masks.shape == (6, 4, 64, 64)  # the chair's six parts in four views


def test_a_config_change_recomputes_that_stage_and_what_follows(tmp_path: Path) -> None:
    asset = make_example_asset(tmp_path / "chair.glb")
    store = f"memory://config-{tmp_path.name}"
    edit_asset(asset_path=str(asset), edits=[], store=store, config=pipeline_config("tiny"), until="mask")
    changed = pipeline_config("tiny", {"render": {"azimuths": [90, 180, 270, 0]}})
    result = edit_asset(asset_path=str(asset), edits=[], store=store, config=changed, until="mask")
    assert [ref.status for ref in result.stages] == ["cached", "computed", "computed"]


def test_an_unknown_stage_is_refused_before_any_work(tmp_path: Path) -> None:
    asset = make_example_asset(tmp_path / "chair.glb")
    store = f"memory://unknown-{tmp_path.name}"
    with pytest.raises(ValueError, match="unknown stage 'paint'"):
        edit_asset(asset_path=str(asset), edits=[], store=store, config=pipeline_config("tiny"), until="paint")
    assert ArtifactStore(store).list() == []
