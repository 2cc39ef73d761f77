"""The edit_asset flow in-process, on an in-memory store: Prefect reports committed stages as Cached."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from dreamedit3d_core.config import merge, pipeline_config
from dreamedit3d_core.ingest import IngestedAsset
from flows.edit_asset import edit_asset
from storage import ArtifactStore
from tasks.catalog import EDIT
from tests.helpers import PROJECT_ROOT

pytestmark = pytest.mark.usefixtures("prefect_api_url")


def test_memory_store_second_run_is_cached_and_a_deleted_artifact_recomputes(chair: Path, tmp_path: Path) -> None:
    store = f"memory://flow-{tmp_path.name}"
    config = pipeline_config("tiny")

    first = edit_asset(asset_path=str(chair), edits=[], store=store, config=config, until="mask")
    assert [ref.stage for ref in first.stages] == [stage.name for stage in EDIT.until("mask")]
    assert all(ref.status == "computed" for ref in first.stages)

    second = edit_asset(asset_path=str(chair), edits=[], store=store, config=config, until="mask")
    assert all(ref.status == "cached" for ref in second.stages)

    ArtifactStore(store).delete(first.stages[-1].key)  # the masks
    third = edit_asset(asset_path=str(chair), edits=[], store=store, config=config, until="mask")
    assert [ref.status for ref in third.stages] == ["cached"] * (len(third.stages) - 1) + ["computed"]
    masks = ArtifactStore(store).get(third.stages[-1].key).array("masks", "masks")
    assert masks.shape == (6, 4, 64, 64)  # the chair's six parts in four views


def test_a_config_change_recomputes_that_stage_and_what_follows(chair: Path, tmp_path: Path) -> None:
    store = f"memory://config-{tmp_path.name}"
    edit_asset(asset_path=str(chair), edits=[], store=store, config=pipeline_config("tiny"), until="mask")
    changed = pipeline_config("tiny", {"render": {"azimuths": [90, 180, 270, 0]}})
    result = edit_asset(asset_path=str(chair), edits=[], store=store, config=changed, until="mask")
    assert {ref.stage: ref.status for ref in result.stages} == {  # the ingested asset is kept; render onwards is redone
        stage.name: "cached" if stage.name == "ingest" else "computed" for stage in EDIT.until("mask")
    }


def test_an_unknown_stage_is_refused_before_any_work(chair: Path, tmp_path: Path) -> None:
    store = f"memory://unknown-{tmp_path.name}"
    with pytest.raises(ValueError, match="unknown stage 'paint'"):
        edit_asset(asset_path=str(chair), edits=[], store=store, config=pipeline_config("tiny"), until="paint")
    assert ArtifactStore(store).list() == []


def test_a_local_edit_reads_the_component_masks_and_keeps_its_region(chair: Path, tmp_path: Path) -> None:
    """sample.local_edit: the sample stage depends on the masks, and stores where the edit was allowed."""
    from tests.helpers import FAST

    store = f"memory://local-{tmp_path.name}"
    config = pipeline_config("tiny", {**FAST, "sample": {"steps": 2, "local_edit": True, "local_edit_grow": 0}})
    result = edit_asset(asset_path=str(chair), edits=["a photo of <asset0> in red"], store=store, config=config, until="sample")
    refs = {ref.stage: ref for ref in result.stages}
    sampled = ArtifactStore(store).get(refs["sample"].key)
    region = sampled.array("views", "edit_masks")  # (samples, views, h, w)
    masks = ArtifactStore(store).get(refs["mask"].key).array("masks", "masks")  # (components, views, H, W)
    assert region.shape[:2] == (1, 4) and 0 < region.mean() < 0.5  # one part of the chair, not all of it
    seat = masks[0].reshape(4, region.shape[2], masks.shape[2] // region.shape[2], region.shape[3], -1).any(axis=(2, 4))
    assert np.array_equal(region[0], seat)  # the cells <asset0>'s mask touches


def test_a_regional_edit_with_the_source_outside_uses_each_parts_words_and_the_renders(chair: Path, tmp_path: Path) -> None:
    """Regional prompts, the source as the known region and the personalisation departures, end to end: the
    components are named by colour, the tokens trained beside those words, and the sample stage reads the
    renders and each edited part's own words."""
    from tests.helpers import FAST

    store = f"memory://regional-{tmp_path.name}"
    departures = {
        "invert": {"attribute_words": True, "token_norm": "initializer"},
        "finetune": {"attribute_words": True, "unet_weights": "cross_attention_kv", "train_text_encoder": False},
        "sample": {"steps": 2, "local_edit": True, "regional_prompts": True, "region_words": "initializer", "known_region": "source"},
    }
    config = pipeline_config("tiny", merge(FAST, departures))
    edit = "a photo of <asset0> in red and <asset1> as a sphere"
    result = edit_asset(asset_path=str(chair), edits=[edit], store=store, config=config, until="sample")
    refs = {ref.stage: ref for ref in result.stages}
    catalog = ArtifactStore(store)
    components = catalog.get(refs["mask"].key).table("components").to_pylist()
    colour_of = lambda part: next(r["colour"] for r in components if part in r["source"].removeprefix("parts: ").split(", "))  # noqa: E731
    # the example chair: a red cushion, dark wood legs, a blue back, named from the albedo renders
    assert (colour_of("seat"), colour_of("back")) == ("red", "blue"), components
    assert colour_of("leg_front_left") in ("brown", "black"), components
    assert refs["finetune"].metadata["attribute_words"] == {row["token"]: f"in {row['colour']}" for row in components}
    region = catalog.get(refs["sample"].key).array("views", "edit_masks")[0]  # (views, h, w)
    masks = catalog.get(refs["mask"].key).array("masks", "masks")
    cells = lambda k: masks[k].reshape(4, region.shape[1], masks.shape[2] // region.shape[1], region.shape[2], -1).any(axis=(2, 4))  # noqa: E731
    assert region[cells(0)].all() and region[cells(1)].all()  # both edited parts, each with its own words
    assert region.sum() > (cells(0) | cells(1)).sum()  # grown, the new shape more
    plain = pipeline_config("tiny", merge(FAST, merge(departures, {"sample": {"known_region": "plain_prompt"}})))
    again = edit_asset(asset_path=str(chair), edits=[edit], store=store, config=plain, until="sample")
    assert [ref.status for ref in again.stages] == ["cached"] * (len(EDIT.until("sample")) - 1) + ["computed"]


def test_changing_execution_only_settings_and_editing_again_computes_nothing(
    chair: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks import stage as stage_module
    from tests.helpers import FAST

    planned: Counter[str] = Counter()  # each stage call is planned once, whoever asks for its key
    plan = stage_module.plan
    monkeypatch.setattr(stage_module, "plan", lambda stage, call: planned.update([stage.name]) or plan(stage, call))
    store = f"memory://execution-{tmp_path.name}"
    edits = ["a photo of <asset0> in red"]
    first = edit_asset(asset_path=str(chair), edits=edits, store=store, config=pipeline_config("tiny", FAST))
    assert {ref.status for ref in first.stages} == {"computed"}
    assert planned == Counter(ref.stage for ref in first.stages), planned
    how_it_runs = {
        "render": {"threads": 1, "timeout_s": 600.0, "device": "cpu"},
        "model": {"device": "cpu", "performance": {"gradient_checkpointing": True}},
        "finetune": {"checkpoint_every": 3},
        "evaluate": {"clip": {"device": "cpu"}},
    }
    again = edit_asset(asset_path=str(chair), edits=edits, store=store, config=pipeline_config("tiny", merge(FAST, how_it_runs)))
    assert [ref.status for ref in again.stages] == ["cached"] * len(first.stages)
    assert [ref.key for ref in again.stages] == [ref.key for ref in first.stages]


def test_editing_a_material_file_next_to_an_obj_ingests_it_again(shared_assets: Path, tmp_path: Path) -> None:
    for name in ("fuze.obj", "fuze.obj.mtl", "fuze uv.jpg"):
        (tmp_path / name).write_bytes((shared_assets / "good" / name).read_bytes())
    store, config = f"memory://material-{tmp_path.name}", pipeline_config("tiny")
    first = edit_asset(asset_path=str(tmp_path / "fuze.obj"), edits=[], store=store, config=config, until="ingest")
    mtl = tmp_path / "fuze.obj.mtl"
    mtl.write_text(mtl.read_text().replace("Kd 1.000000 1.000000 1.000000", "Kd 0.800000 0.100000 0.100000"))
    second = edit_asset(asset_path=str(tmp_path / "fuze.obj"), edits=[], store=store, config=config, until="ingest")
    assert first.stages[0].status == "computed" and second.stages[0].status == "computed"
    assert second.stages[0].key != first.stages[0].key
    (material,) = IngestedAsset.read(ArtifactStore(store).get(second.stages[0].key).local_path("asset")).materials
    assert material.base_color[:3] == pytest.approx((0.8, 0.1, 0.1))


def test_prefect_never_hands_back_an_artifact_that_is_not_the_committed_one(chair: Path, tmp_path: Path) -> None:
    """Prefect's cache entries never expire: a recomputed artifact must not be answered with the old one."""
    store = str(tmp_path / "store")  # a local store: recomputing writes a new attempt folder
    config = pipeline_config("tiny")
    first = edit_asset(asset_path=str(chair), edits=[], store=store, config=config, until="render").stages[-1]
    ArtifactStore(store).delete(first.key)  # as `verify` does with a broken artifact
    recomputed = edit_asset(asset_path=str(chair), edits=[], store=store, config=config, until="render").stages[-1]
    cached = edit_asset(asset_path=str(chair), edits=[], store=store, config=config, until="render").stages[-1]
    assert (recomputed.status, cached.status) == ("computed", "cached")
    committed = ArtifactStore(store).get(first.key)
    for ref in (recomputed, cached):
        assert ref.key == first.key and ref.digest == committed.digest
        assert ref.artifacts == {noun: committed.uri(noun) for noun in ref.artifacts}
        assert all(Path(uri.removeprefix("file://")).exists() for uri in ref.artifacts.values())
    assert cached.artifacts != first.artifacts  # the first attempt's files are gone; its URIs are not served


def glb_parts(path: Path) -> dict[str, list[bytes]]:
    """Node name -> the bytes of every accessor its mesh's primitives use (positions, UVs, indices...)."""
    import json
    import struct

    data = path.read_bytes()
    json_length = struct.unpack_from("<I", data, 12)[0]
    document = json.loads(data[20 : 20 + json_length])
    binary = data[20 + json_length + 8 :]

    def accessor_bytes(index: int) -> bytes:
        accessor = document["accessors"][index]
        view = document["bufferViews"][accessor["bufferView"]]
        return binary[view.get("byteOffset", 0) : view.get("byteOffset", 0) + view["byteLength"]]

    parts = {}
    for node in document["nodes"]:
        mesh = document["meshes"][node["mesh"]]
        parts[node["name"]] = [
            accessor_bytes(index)
            for primitive in mesh["primitives"]
            for index in (*primitive["attributes"].values(), primitive["indices"])
        ]
    return parts


@pytest.mark.parametrize(("name", "edit"), [("two_objects.obj", "<asset1>"), ("TestScene.gltf", "<asset2>")])
def test_a_real_multi_part_asset_keeps_its_other_parts_bit_for_bit(shared_assets: Path, tmp_path: Path, name: str, edit: str) -> None:
    """The merge stage's GLB: the source asset, node names and all, with only the named component changed."""
    import json
    import os
    import subprocess
    import sys

    from tests.helpers import FAST

    store = f"memory://real-{tmp_path.name}"
    prompt = f"a photo of {edit} in gold"
    result = edit_asset(
        asset_path=str(shared_assets / "good" / name), edits=[prompt], store=store, config=pipeline_config("tiny", FAST), until="merge"
    )
    refs = {ref.stage: ref for ref in result.stages}
    artifacts = ArtifactStore(store)
    source = glb_parts(artifacts.get(refs["ingest"].key).local_path("asset") / "asset.glb")
    merged_path = artifacts.get(refs["merge"].key).local_path("mesh")
    merged = glb_parts(merged_path)
    assert list(merged) == list(source)  # every node, by the source's names, in order
    components = artifacts.get(refs["mask"].key).table("components").to_pydict()
    edited_parts = {source_name for part in components["part_ids"][int(edit[6:-1])] for source_name in [list(source)[part]]}
    for node, accessors in source.items():
        if node in edited_parts:
            assert merged[node] != accessors  # a new texture, new UVs
        else:
            assert merged[node] == accessors, node  # kept: the same bytes
    report = subprocess.run(
        ["node", str(PROJECT_ROOT / "scripts" / "validate_gltf.js"), str(merged_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert report.returncode == 0 and json.loads(report.stdout)["numErrors"] == 0, report.stdout + report.stderr
    # Blender's own glTF importer opens it, every node under its source name (bpy in a subprocess: it segfaults
    # at interpreter exit)
    script = (
        "import bpy, json; bpy.ops.wm.read_factory_settings(use_empty=True); "
        f"bpy.ops.import_scene.gltf(filepath={str(merged_path)!r}); "
        "print(json.dumps(sorted(o.name for o in bpy.data.objects if o.type == 'MESH')))"
    )
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # where a crashing exit leaves Blender's session folder
    blender = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert json.loads(blender.stdout.strip().splitlines()[-1]) == sorted(source), blender.stdout[-2000:] + blender.stderr[-2000:]


def test_without_personalisation_the_edit_skips_invert_and_finetune_and_plan_agrees(chair: Path, tmp_path: Path) -> None:
    """`personalize: false`: the sample stage draws each edited part with its initializer word on the base model
    (the source's renders elsewhere); plan and edit walk the same stages, and the report has no attention rows."""
    from flows.planning import plan_asset
    from tests.helpers import FAST

    store = f"memory://unpersonalised-{tmp_path.name}"
    words = {"local_edit": True, "regional_prompts": True, "region_words": "initializer", "known_region": "source"}
    config = pipeline_config("tiny", merge(FAST, {"personalize": False, "sample": words}))
    edit = "a photo of <asset0> in red"
    planned = plan_asset(str(chair), [edit], store, config)
    assert [p.stage for p in planned] == ["ingest", "render", "mask", "sample", "merge", "evaluate"]
    result = edit_asset(asset_path=str(chair), edits=[edit], store=store, config=config)
    assert [ref.stage for ref in result.stages] == [p.stage for p in planned]
    refs = {ref.stage: ref for ref in result.stages}
    catalog = ArtifactStore(store)
    assert catalog.get(refs["sample"].key).metadata["result"]["model"] == "base"
    metrics = catalog.get(refs["evaluate"].key).table("metrics").to_pylist()[0]
    assert not any("isolation" in name for name in metrics)  # no personalisation phase to measure
    assert all(p.status == "cached" for p in plan_asset(str(chair), [edit], store, config))
    # turned on, the same edit personalises first; the asset's first stages are shared
    personalised = edit_asset(asset_path=str(chair), edits=[edit], store=store, config=config.model_copy(update={"personalize": True}))
    assert [(ref.stage, ref.status) for ref in personalised.stages][:5] == [
        ("ingest", "cached"), ("render", "cached"), ("mask", "cached"), ("invert", "computed"), ("finetune", "computed")
    ]
