"""The `dreamedit3d` command as a user runs it: caching across runs, resuming after SIGKILL, clear errors."""

from __future__ import annotations

import json
import re
import os
import signal
import subprocess
import time
from pathlib import Path

from urllib.parse import urlparse

import numpy as np
import pytest
import trimesh

from dreamedit3d_core.config import pipeline_config
from dreamedit3d_core.ingest import IngestedAsset, ingest_asset
from dreamedit3d_core.reconstruct import GLB_FRAME
from storage import ArtifactStore
from tasks.catalog import EDIT
from tests.helpers import CLI, PROJECT_ROOT, RunCli

pytestmark = pytest.mark.usefixtures("prefect_api_url")

# The stages `edit` runs under the suite's preset (tiny: the optional reconstruction is off), in order.
EDIT_STAGES = [stage.name for stage in EDIT.stages if EDIT.runs(stage, pipeline_config("tiny"))]


def test_example_writes_the_chair_every_test_edits(cli: RunCli, chair: Path, tmp_path: Path) -> None:
    path = tmp_path / "chair.glb"
    result = cli("example", str(path), "--json")
    assert json.loads(result.stdout) == {"asset": str(path)}
    assert path.read_bytes() == chair.read_bytes()  # the `chair` fixture's file, byte for byte


def computed_rows(store: Path) -> int:
    rows = ArtifactStore(str(store)).ledger.read().to_pylist()
    return sum(row["status"] == "computed" for row in rows)


def test_second_run_reports_every_stage_cached_and_computes_nothing(cli: RunCli, chair: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    run = cli("edit", str(chair), "--edit", "a photo of <asset0> in red", "--store", str(store), "--json")
    first = json.loads(run.stdout)
    # before personalising, how the edit is read: the part it changes, by its name, and the parts it keeps
    assert re.search(r"edit 'a photo of <asset0> in red' changes <asset0> \([\w ,]+\) 'in red'; keeps <asset1> \(", run.stderr)
    stages = [entry["stage"] for entry in first["stages"]]
    assert stages == EDIT_STAGES
    assert {entry["status"] for entry in first["stages"]} == {"computed"}
    assert first["asset_id"].startswith("chair-")
    assert {"asset", "parts", "renders", "cameras", "masks", "components"} <= set(first["outputs"])
    computed_after_first = computed_rows(store)
    assert computed_after_first == len(stages)
    (mask_row,) = [row for row in ArtifactStore(str(store)).ledger.read().to_pylist() if row["stage"] == "mask"]
    mask_details = json.loads(mask_row["details"])  # coverage statistics reach the ledger
    assert mask_details["components"] == 6 and 0.9 < mask_details["assigned_share"] <= 1.0

    (edit,) = first["outputs"]["edits"]
    assert edit["prompt"] == "a photo of <asset0> in red"
    mesh = trimesh.load(urlparse(edit["mesh"]).path, force="scene")
    assert sum(len(g.faces) for g in mesh.geometry.values()) > 0  # a GLB another tool opens ...
    merged = ingest_asset(urlparse(edit["mesh"]).path, GLB_FRAME)  # ... the chair's six parts by their names
    source = IngestedAsset.read(Path(urlparse(first["outputs"]["asset"]).path))
    assert [p.name for p in merged.parts] == [p.name for p in source.parts]
    assert merged.parts[0].uvs is not None and np.array_equal(merged.parts[1].vertices, source.parts[1].vertices)
    validation = subprocess.run(
        ["node", str(PROJECT_ROOT / "scripts" / "validate_gltf.js"), urlparse(edit["mesh"]).path],
        capture_output=True, text=True, timeout=120,
    )
    assert validation.returncode == 0, validation.stdout + validation.stderr  # Khronos validator: no errors
    assert json.loads(validation.stdout)["numErrors"] == 0
    metrics = ArtifactStore(str(store)).get(first["stages"][-1]["key"]).table("metrics").to_pylist()
    assert metrics[0]["prompt"] == edit["prompt"] and metrics[0]["clip_status"] == "not computed: no CLIP weights"
    colours = ArtifactStore(str(store)).get(first["stages"][-1]["key"]).table("component_colours").to_pylist()
    assert {row["token"] for row in colours} == {f"<asset{i}>" for i in range(6)}  # every component, every hue
    assert len(colours) == 6 * 9 and all(0 <= (row["source_share"] or 0) <= 1 for row in colours)
    assert "<html" in Path(urlparse(edit["report"]).path).read_text()
    assert Path(urlparse(edit["mesh_preview"]).path).read_bytes().startswith(b"\x89PNG")

    second = json.loads(cli("edit", str(chair), "--edit", "a photo of <asset0> in red", "--store", str(store), "--json").stdout)
    assert [entry["status"] for entry in second["stages"]] == ["cached"] * len(stages)
    assert [entry["key"] for entry in second["stages"]] == [entry["key"] for entry in first["stages"]]
    assert computed_rows(store) == computed_after_first

    status = json.loads(cli("status", "--store", str(store), "--json").stdout)
    (asset,) = status["assets"]
    assert asset["asset_id"] == first["asset_id"]
    assert all(asset["stages"][stage]["state"] == "done" for stage in stages)


def test_a_deleted_artifact_is_recomputed_not_reported_cached(cli: RunCli, chair: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = json.loads(cli("render", str(chair), "--store", str(store), "--json").stdout)
    assert first["stage"] == "render" and first["status"] == "computed"
    assert {"renders", "cameras", "renders_preview"} <= set(first["artifacts"])
    ArtifactStore(str(store)).delete(first["key"])

    again = json.loads(cli("render", str(chair), "--store", str(store), "--json").stdout)
    assert again["key"] == first["key"]
    assert again["status"] == "computed"


def test_a_run_killed_mid_stage_resumes_and_leaves_a_clean_store(cli: RunCli, chair: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    cli("ingest", str(chair), "--store", str(store))
    killed_temp = tmp_path / "tmp"  # what the killed process cannot remove lands here, not in /tmp
    killed_temp.mkdir()
    process = subprocess.Popen(
        [*CLI, "mask", str(chair), "--store", str(store)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "TMPDIR": str(killed_temp)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: the kill takes Blender down with it
    )
    deadline = time.monotonic() + 300
    while not list((store / "objects").glob("render-*/*")):
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "the render stage never started"
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not [key for key in _committed(store) if key.startswith("render-")]

    resumed = json.loads(cli("mask", str(chair), "--store", str(store), "--json").stdout)
    assert resumed["status"] == "computed"
    ledger = ArtifactStore(str(store)).ledger.read().to_pylist()
    assert [row["status"] for row in ledger if row["stage"] == "ingest"] == ["computed", "cached"]
    report = json.loads(cli("verify", "--store", str(store), "--check-only", "--json").stdout)
    assert report == {"clean": True, "problems": []}
    compacted = json.loads(cli("ledger", "compact", "--store", str(store), "--json").stdout)
    assert compacted["rows"] == len(ledger) and len(ArtifactStore(str(store)).ledger.parts()) == 1

    damaged = next(path for path in (store / "objects").rglob("*") if path.is_file() and path.suffix == ".npz")
    damaged.write_bytes(b"not what was committed")
    check = cli("verify", "--store", str(store), "--check-only", check=False)
    assert check.returncode == 1 and damaged.exists()  # a script sees the problem; nothing was changed


def test_ctrl_c_stops_at_once_says_so_exits_130_and_the_same_command_resumes(
    cli: RunCli, chair: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    args = ["edit", str(chair), "--edit", "a photo of <asset0> in gold", "--store", str(store)]
    process = subprocess.Popen(
        [*CLI, *args], cwd=PROJECT_ROOT, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 300
    while not list((store / "objects").glob("invert-*/*")):  # personalising: the middle of the edit
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "the invert stage never started"
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    interrupted = time.monotonic()
    _, stderr = process.communicate(timeout=60)
    assert time.monotonic() - interrupted < 5, "Ctrl-C took longer than 5 s"
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "interrupted: committed stages are kept; run the same command again to resume"
    assert json.loads(cli("verify", "--store", str(store), "--check-only", "--json").stdout)["clean"]

    resumed = json.loads(cli(*args, "--json").stdout)
    statuses = {ref["stage"]: ref["status"] for ref in resumed["stages"]}
    assert statuses["ingest"] == statuses["render"] == statuses["mask"] == "cached"
    assert statuses["evaluate"] == "computed"


def _committed(store: Path) -> list[str]:
    return [path.stem for path in (store / "commits").glob("*.json")]


@pytest.mark.parametrize("name", ["empty.obj", "notenoughindices.obj"])
def test_a_bad_asset_is_refused_in_one_line_and_nothing_is_committed(
    cli: RunCli, shared_assets: Path, tmp_path: Path, name: str
) -> None:
    store = tmp_path / "store"
    result = cli("edit", str(shared_assets / "bad" / name), "--store", str(store), check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and name in lines[0]
    assert _committed(store) == []
    (row,) = ArtifactStore(str(store)).ledger.read().to_pylist()
    assert row["stage"] == "ingest" and row["status"] == "failed" and name in row["error"]


def test_a_file_referencing_one_outside_its_folder_is_refused_once_with_a_ledger_row(
    cli: RunCli, tmp_path: Path
) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.mtl").write_text("newmtl secret\nKd 1 0 0\n")
    (tmp_path / "asset").mkdir()
    model = tmp_path / "asset" / "model.obj"
    model.write_text("mtllib ../outside/secret.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    store = tmp_path / "store"
    result = cli("ingest", str(model), "--store", str(store), check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "model.obj" in line and "'../outside/secret.mtl' is outside the asset's folder" in line
    assert _committed(store) == []
    (row,) = ArtifactStore(str(store)).ledger.read().to_pylist()  # one attempt: bad input is not retried
    assert row["status"] == "failed" and row["key"] == "ingest-unplanned" and row["asset_id"].startswith("model-")


def test_user_mistakes_exit_2_with_a_one_line_reason(cli: RunCli, chair: Path, tmp_path: Path) -> None:
    missing = cli("edit", str(tmp_path / "nope.glb"), "--store", str(tmp_path / "s"), check=False)
    assert missing.returncode == 2 and "asset file not found" in missing.stderr and "Traceback" not in missing.stderr

    config = tmp_path / "bad.yaml"
    config.write_text("render:\n  image_sise: 128\n")
    bad_key = cli("edit", str(chair), "--config", str(config), "--store", str(tmp_path / "s"), check=False)
    assert bad_key.returncode == 2 and "image_sise" in bad_key.stderr

    preset = cli("edit", str(chair), "--preset", "huge", "--store", str(tmp_path / "s"), check=False)
    assert preset.returncode == 2 and "unknown preset 'huge'" in preset.stderr
    assert _committed(tmp_path / "s") == []


def test_a_new_prompt_recomputes_only_the_per_edit_stages(cli: RunCli, chair: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    plain = cli("edit", str(chair), "--edit", "a photo of a red chair", "--store", str(store), check=False)
    assert plain.returncode == 2  # refused before any work: its words describe no token
    assert "edit 'a photo of a red chair' changes no component: put the words next to the token" in plain.stderr
    assert "--allow-no-edit" in plain.stderr and not store.exists()
    noise = cli("edit", str(chair), "--edit", "a photo of <asset0> in red", "--store", str(store), "--fail-on-unapplied",
                "--out", str(tmp_path / "out"), check=False)  # fmt: skip
    assert noise.returncode == 3, noise.stderr  # the tiny preset's random model: its edits are noise, and say so
    assert "verdict  noise: random model" in noise.stdout and "(preset tiny)" in noise.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["chair__asset0-in-red.glb", "chair__asset0-in-red.html"]
    assert f"mesh     {(tmp_path / 'out' / 'chair__asset0-in-red.glb').resolve()}" in noise.stdout
    second = json.loads(
        cli("edit", str(chair), "--edit", "a photo of a blue chair", "--allow-no-edit", "--store", str(store), "--json").stdout
    )
    status = {entry["stage"]: entry["status"] for entry in second["stages"]}
    assert status == {name: "computed" if EDIT.stage(name).per_edit else "cached" for name in EDIT_STAGES}
    (edit,) = second["outputs"]["edits"]
    assert edit["prompt"] == "a photo of a blue chair"

    sampled = json.loads(
        cli("sample", str(chair), "--edit", "a photo of a blue chair", "--store", str(store), "--json").stdout
    )
    assert sampled["status"] == "cached" and sampled["artifacts"]["views"] == edit["views"]
    views = ArtifactStore(str(store)).get(sampled["key"]).array("views", "views")
    assert views.dtype == np.uint8 and views.shape == (1, 4, 64, 64, 3)

    reseeded = json.loads(
        cli("sample", str(chair), "--edit", "a photo of a blue chair", "--seed", "7", "--store", str(store), "--json").stdout
    )
    assert reseeded["status"] == "computed" and reseeded["key"] != sampled["key"]
    other = ArtifactStore(str(store)).get(reseeded["key"]).array("views", "views")
    assert not np.array_equal(views, other)


def test_an_edit_naming_an_unknown_token_is_refused_before_personalisation(cli: RunCli, chair: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    result = cli("edit", str(chair), "--edit", "a photo of <asset9> in gold", "--store", str(store), check=False)
    assert result.returncode == 2
    assert "<asset9>" in result.stderr
    assert re.search(r"available tokens: <asset0> \([\w ,]+\), <asset1> \([\w ,]+\)", result.stderr), result.stderr
    assert not [key for key in _committed(store) if key.startswith(("invert-", "finetune-", "sample-"))]


def test_components_says_which_token_is_which_part_before_any_editing(
    cli: RunCli, chair: Path, shared_assets: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    result = cli("components", str(shared_assets / "good" / "two_objects.obj"), "--store", str(store), "--json")
    listed = json.loads(result.stdout)["components"]
    assert [(entry["token"], entry["parts"]) for entry in listed] == [("<asset0>", ["cube"]), ("<asset1>", ["tetra"])]
    assert all(entry["initializer_word"] and 0 < entry["coverage"] <= 1 for entry in listed)
    assert not [key for key in _committed(store) if not key.startswith(("ingest-", "render-", "mask-"))]
    assert json.loads(result.stdout)["below_min_coverage"] == [] and "warning" not in result.stderr

    # a configured group smaller than mask.min_coverage keeps its token: `components` says its edits may not show
    config = tmp_path / "groups.yaml"
    config.write_text("mask:\n  groups: {one_leg: [leg_front_left]}\n  min_coverage: 0.1\n")
    small = cli("components", str(chair), "--config", str(config), "--store", str(store), "--json")
    payload = json.loads(small.stdout)
    (token,) = [entry["token"] for entry in payload["components"] if entry["name"] == "one_leg"]
    assert payload["below_min_coverage"] == [token]
    assert f"warning: {token} (leg_front_left) is " in small.stderr and "below mask.min_coverage 10.0%" in small.stderr

    # `plan` checks an edit's tokens against the cached components before any work
    unknown = cli("plan", str(chair), "--config", str(config), "--edit", "a photo of <asset9> in gold",
                  "--store", str(store), check=False)  # fmt: skip
    assert unknown.returncode == 2 and "names unknown token(s) <asset9>" in unknown.stderr


def test_finetune_killed_mid_training_resumes_from_its_checkpoint(cli: RunCli, chair: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    config = tmp_path / "long.yaml"
    config.write_text("finetune:\n  steps: 60\n  checkpoint_every: 2\n")
    cli("invert", str(chair), "--config", str(config), "--store", str(store))
    process = subprocess.Popen(
        [*CLI, "finetune", str(chair), "--config", str(config), "--store", str(store)],
        cwd=PROJECT_ROOT,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not list((store / "scratch").glob("finetune-*/step-*/state.json")):
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "finetune never wrote a checkpoint"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()

    resumed = json.loads(cli("finetune", str(chair), "--config", str(config), "--store", str(store), "--json").stdout)
    assert resumed["status"] == "computed"
    rows = [row for row in ArtifactStore(str(store)).ledger.read().to_pylist() if row["stage"] == "finetune"]
    assert [row["status"] for row in rows] == ["failed", "computed"] or [row["status"] for row in rows] == ["computed"]
    details = json.loads(rows[-1]["details"])
    assert details["resumed_from_step"] is not None and details["resumed_from_step"] >= 2
    assert not list((store / "scratch").glob("finetune-*"))  # the checkpoints go once the model is committed
