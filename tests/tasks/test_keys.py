"""Artifact keys: what changes them (settings a stage reads, its inputs) and what never does (how it runs)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from dreamedit3d_core.config import PipelineConfig, WorldTrainingConfig, merge, pipeline_config
from dreamedit3d_core.execution import execution_paths
from dreamedit3d_core.mvdiffusion import EditConfig
from storage import artifact_key
from tasks import artifacts as a
from tasks.catalog import EDIT, WORLD
from tasks.stage import Pipeline, StageRef, plan

# Another valid value for every execution-only setting; the test below fails when a new one is not listed.
EXECUTION_CHANGES: dict[str, Any] = {
    "ingest.limits": {"max_faces": 5_000_000, "max_texture_pixels": 16384 * 16384},
    "ingest.timeout_s": 30.0,
    "render.device": "cpu",
    "render.threads": 1,
    "render.blender_executable": "/opt/blender/blender",
    "render.timeout_s": 60.0,
    "mask.sam.device": "cuda",
    "model.device": "cpu",
    "model.performance": {"dtype": "bfloat16", "gradient_checkpointing": True, "compile": True},
    "invert.gradient_checkpointing": True,
    "finetune.gradient_checkpointing": True,
    "finetune.checkpoint_every": 7,
    "reconstruct.enabled": True,
    "reconstruct.lgm.device": "cuda",
    "evaluate.clip.device": "cuda",
}
WORLD_EXECUTION_CHANGES: dict[str, Any] = {
    "device": "cuda",
    "dataset.render.device": "cpu",
    "dataset.render.threads": 1,
    "dataset.render.blender_executable": "/opt/blender/blender",
    "dataset.render.timeout_s": 60.0,
    "pretrain.checkpoint_every": 7,
    "pretrain.log_every": 3,
}


def nested(path: str, value: Any) -> dict[str, Any]:
    head, _, rest = path.partition(".")
    return {head: nested(rest, value) if rest else value}


def stage_keys(pipeline: Pipeline, config: Any, source: str | None = None) -> dict[str, str]:
    """Every stage's key for `config`, with each upstream artifact standing in as a fixed digest."""
    keys, refs = {}, {}
    for stage in pipeline.stages:
        call = pipeline.call(stage, store="memory://keys", config=config, upstream=refs, source=source, edit=EditConfig(prompt="a photo of <asset0> in red"))
        stage_plan = plan(stage, call)
        keys[stage.name] = stage_plan.key
        digest = hashlib.sha256(stage_plan.key.encode()).hexdigest()
        refs[stage.name] = StageRef(
            asset_id=stage_plan.asset_id, stage=stage.name, key=stage_plan.key, digest=digest, status="computed", seconds=0.0, artifacts={}
        )
    return keys


def test_every_execution_only_setting_is_listed_here() -> None:
    assert set(EXECUTION_CHANGES) == set(execution_paths(PipelineConfig))
    assert set(WORLD_EXECUTION_CHANGES) == set(execution_paths(WorldTrainingConfig))


@pytest.mark.parametrize("path", sorted(EXECUTION_CHANGES))
def test_an_execution_only_setting_changes_no_key_upstream_or_downstream(chair: Path, path: str) -> None:
    base = pipeline_config("tiny")
    changed = PipelineConfig.model_validate(merge(base.model_dump(), nested(path, EXECUTION_CHANGES[path])))
    assert changed != base
    assert stage_keys(EDIT, changed, str(chair)) == stage_keys(EDIT, base, str(chair))


@pytest.mark.parametrize("path", sorted(WORLD_EXECUTION_CHANGES))
def test_the_world_models_execution_settings_change_no_key(path: str) -> None:
    base = WorldTrainingConfig()
    changed = WorldTrainingConfig.model_validate(merge(base.model_dump(), nested(path, WORLD_EXECUTION_CHANGES[path])))
    assert changed != base and stage_keys(WORLD, changed) == stage_keys(WORLD, base)


def test_a_setting_changes_the_key_of_each_stage_that_reads_it(chair: Path) -> None:
    base = stage_keys(EDIT, pipeline_config("tiny"), str(chair))
    changes = {
        "render.image_size": ("render", 32),
        "mask.min_coverage": ("mask", 0.01),
        "invert.steps": ("invert", 5),
        "finetune.lr": ("finetune", 1e-3),
        "sample.guidance_scale": ("sample", 3.0),
        "reconstruct.grid_resolution": ("reconstruct", 48),
        "merge.texture.size": ("merge", 128),
        "evaluation_views.views": ("evaluate", 4),
        "model.seed": ("invert", 1),
    }
    for path, (first, value) in changes.items():
        keys = stage_keys(EDIT, pipeline_config("tiny", nested(path, value)), str(chair))
        changed = [name for name in EDIT.stage_names if keys[name] != base[name]]
        assert changed[0] == first and changed == list(EDIT.stage_names[EDIT.stage_names.index(first) :]), path


def test_a_per_edit_stage_is_keyed_by_its_edit(chair: Path) -> None:
    config = pipeline_config("tiny")
    refs: dict[str, StageRef] = {}
    for stage in EDIT.until("finetune"):
        stage_plan = plan(stage, EDIT.call(stage, store="memory://keys", config=config, upstream=refs, source=str(chair)))
        refs[stage.name] = StageRef(
            asset_id=stage_plan.asset_id, stage=stage.name, key=stage_plan.key, digest="0" * 64, status="computed", seconds=0.0, artifacts={}
        )
    sample = EDIT.stage("sample")
    keys = {
        plan(sample, EDIT.call(sample, store="memory://keys", config=config, upstream=refs, edit=edit)).key
        for edit in (EditConfig(prompt="a photo of <asset0>"), EditConfig(prompt="a photo of <asset1>"), EditConfig(prompt="a photo of <asset0>", seed=1))
    }
    assert len(keys) == 3


def test_editing_a_material_file_next_to_an_obj_changes_the_ingest_key(shared_assets: Path, tmp_path: Path) -> None:
    for name in ("fuze.obj", "fuze.obj.mtl", "fuze uv.jpg"):
        (tmp_path / name).write_bytes((shared_assets / "good" / name).read_bytes())
    ingest = EDIT.stage("ingest")
    before = plan(ingest, EDIT.call(ingest, store="memory://keys", config=pipeline_config("tiny"), source=str(tmp_path / "fuze.obj")))
    assert set(before.inputs) == {"file:fuze.obj", "file:fuze.obj.mtl", "file:fuze uv.jpg"}
    mtl = tmp_path / "fuze.obj.mtl"
    mtl.write_text(mtl.read_text().replace("Kd", "Kd 0.5 0.5 0.5\n# was: Kd", 1))
    after = plan(ingest, EDIT.call(ingest, store="memory://keys", config=pipeline_config("tiny"), source=str(tmp_path / "fuze.obj")))
    assert after.key != before.key and after.asset_id == before.asset_id  # the same asset, a new artifact
    (tmp_path / "notes.txt").write_text("not part of the asset")
    unrelated = plan(ingest, EDIT.call(ingest, store="memory://keys", config=pipeline_config("tiny"), source=str(tmp_path / "fuze.obj")))
    assert unrelated.key == after.key


def fixed_digest_keys(pipeline: Pipeline, config: Any, source: str | None = None) -> dict[str, str]:
    """Every stage's key with every upstream artifact's digest the same whatever its key: what a store gives
    when a recomputed artifact has the same bytes as before (a downstream key hashes the upstream *digest*)."""
    keys, refs = {}, {}
    for stage in pipeline.stages:
        call = pipeline.call(stage, store="memory://keys", config=config, upstream=refs, source=source, edit=EditConfig(prompt="a photo of <asset0> in red"))
        stage_plan = plan(stage, call)
        keys[stage.name] = stage_plan.key
        refs[stage.name] = StageRef(
            asset_id=stage_plan.asset_id, stage=stage.name, key=stage_plan.key, digest="0" * 64, status="computed", seconds=0.0, artifacts={}
        )
    return keys


def test_with_every_noun_at_format_version_1_no_key_changes(chair: Path) -> None:
    """Nouns' format versions enter a key only once bumped: every key is the one computed without them."""
    for pipeline, config, source in ((EDIT, pipeline_config("tiny"), str(chair)), (WORLD, WorldTrainingConfig(), None)):
        assert all(noun.format_version == "1" for stage in pipeline.stages for noun in stage.makes)
        refs: dict[str, StageRef] = {}
        for stage in pipeline.stages:
            call = pipeline.call(stage, store="memory://keys", config=config, upstream=refs, source=source, edit=EditConfig(prompt="a photo of <asset0>"))
            stage_plan = plan(stage, call)
            assert stage_plan.formats == {}
            assert stage_plan.key == artifact_key(stage_plan.stage, stage_plan.code_version, stage_plan.config, stage_plan.inputs)
            digest = hashlib.sha256(stage_plan.key.encode()).hexdigest()
            refs[stage.name] = StageRef(
                asset_id=stage_plan.asset_id, stage=stage.name, key=stage_plan.key, digest=digest, status="computed", seconds=0.0, artifacts={}
            )


def test_bumping_a_nouns_format_version_changes_the_keys_of_the_stages_that_make_or_load_it(
    chair: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = pipeline_config("tiny")
    before, before_fixed = stage_keys(EDIT, config, str(chair)), fixed_digest_keys(EDIT, config, str(chair))
    monkeypatch.setattr(a.RENDERS, "format_version", "2")
    after, after_fixed = stage_keys(EDIT, config, str(chair)), fixed_digest_keys(EDIT, config, str(chair))
    # the maker's key changes; downstream keys hash the upstream artifact's digest, so they change when the new
    # format gives other bytes (here: a digest made from the key), everything from render on
    assert [name for name in EDIT.stage_names if after[name] != before[name]] == list(EDIT.stage_names[1:])
    # when the bytes stay the same (a change to `load` only), the digest does too: then the stages that load
    # the noun still get new keys, and the others (ingest; reconstruct and evaluate, which do not load renders)
    # keep theirs
    loaders = [stage.name for stage in EDIT.stages if a.RENDERS in stage.loads]
    assert loaders == ["mask", "invert", "finetune", "sample", "merge"]
    changed = [name for name in EDIT.stage_names if after_fixed[name] != before_fixed[name]]
    assert changed == ["render", *loaders]
    monkeypatch.setattr(a.RENDERS, "format_version", "1")
    assert stage_keys(EDIT, config, str(chair)) == before  # back at "1": the keys are the old ones again
