"""`plan` says what a run would do without doing it: cached stages, stages to compute, and their expected
time from the ledger's past runs."""

from __future__ import annotations

from pathlib import Path

from dreamedit3d_core.config import pipeline_config
from flows.planning import plan_asset, remaining_seconds, typical_seconds
from storage import ArtifactStore
from tasks.catalog import EDIT
from tasks.running import run_stage

CONFIG = pipeline_config("tiny")


def test_a_plan_before_and_after_running_the_asset_stages(chair: Path, tmp_path: Path) -> None:
    asset, store = str(chair), str(tmp_path / "store")
    edits = ["a photo of <asset0> in gold"]
    before = plan_asset(asset, edits, store, CONFIG)
    assert [(p.stage, p.status, p.expected_seconds) for p in before] == [
        (stage.name, "to compute", None) for stage in EDIT.stages if EDIT.runs(stage, CONFIG)
    ]  # one edit: each stage once, in order
    assert [p.prompt for p in before if p.stage == "sample"] == edits
    assert not ArtifactStore(store).list()  # a plan computes nothing
    assert ArtifactStore(store).ledger.read().num_rows == 0  # and records no run

    refs = {}
    ran = EDIT.until("mask")
    for stage in ran:
        refs[stage.name] = run_stage(stage, EDIT.call(stage, store=store, config=CONFIG, upstream=refs, source=asset))
    after = plan_asset(asset, edits, store, CONFIG)
    status = {p.stage: p.status for p in after}
    assert status == {p.stage: "cached" if EDIT.stage(p.stage) in ran else "to compute" for p in before}
    # the same stages computed again elsewhere are expected to take what they took here
    typical = typical_seconds(store)
    elsewhere = plan_asset(asset, edits, str(tmp_path / "other"), CONFIG, typical=typical)
    ledger = ArtifactStore(store).ledger.read().to_pylist()
    took = {row["stage"]: row["seconds"] for row in ledger}
    assert {p.stage: p.expected_seconds for p in elsewhere if p.stage in took} == took
    seconds, unknown = remaining_seconds(elsewhere)
    assert seconds == sum(took.values()) and unknown == len(elsewhere) - len(ran)

    # another preset (another model, other steps) is never estimated from these runs: unknown until it ran
    world = plan_asset(asset, edits, str(tmp_path / "other"), pipeline_config("world"), typical=typical)
    assert all(p.expected_seconds is None for p in world)
    # nor the same preset with a setting that changes the cost
    bigger = pipeline_config("tiny", {"render": {"image_size": 128}})
    assert {p.stage for p in plan_asset(asset, edits, str(tmp_path / "other"), bigger, typical=typical) if p.expected_seconds} == {"ingest", "mask"}
