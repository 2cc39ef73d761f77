"""The edit_library batch: bounded fan-out over a manifest, failure isolation, summary, resume, the CLI.

The batch runs in this process against the session's Prefect test server (and, for the CLI tests, in
subprocesses pointed at the same server). Settings are the tiny preset cut down further (1 training step,
2 sampling steps), so every stage runs for real in seconds.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest
import yaml
from prefect.states import State

from dreamedit3d_core.config import pipeline_config
from dreamedit3d_core.mvdiffusion import EditConfig
from flows.deployments import ref_from_store, run_stage_remotely
from flows.edit_asset import edit_asset
from flows.edit_library import TABLE_ARTIFACT_KEY, BatchFailed, batch_summary, edit_library
from storage import ArtifactStore
from tasks.catalog import EDIT
from tasks.stage import StageCall
from tests.helpers import CLI, FAST, FAST_CONFIG, PROJECT_ROOT, RunCli

pytestmark = pytest.mark.usefixtures("prefect_api_url")

BATCH = 900  # seconds a `batch` command may take
CHAIR_EDITS = ["a photo of <asset0> in gold", "a photo of <asset1> in red"]
T = TypeVar("T")


def poll(read: Callable[[], T], done: Callable[[T], bool], timeout: float = 60.0) -> T:
    """Read until `done` (the server records runs and artifacts asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def ledger_rows(store: str) -> list[dict[str, Any]]:
    return ArtifactStore(store).ledger.read().to_pylist()


def computed_keys(store: str) -> Counter[str]:
    return Counter(row["key"] for row in ledger_rows(store) if row["status"] == "computed")


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, shared_assets: Path, chair: Path) -> Path:
    """Two good assets (the chair with two edits, nested.glb with one) and an empty OBJ, in one manifest."""
    folder = tmp_path_factory.mktemp("library")
    shutil.copyfile(chair, folder / "chair.glb")
    shutil.copy(shared_assets / "good" / "nested.glb", folder / "nested.glb")
    shutil.copy(shared_assets / "bad" / "empty.obj", folder / "empty.obj")
    rows = [
        {"asset": "chair.glb", "edits": CHAIR_EDITS},
        {"asset": "nested.glb", "edits": ["a photo of <asset0> in blue"]},
        {"asset": "empty.obj", "edits": ["a photo of <asset0> in red"]},
    ]
    (folder / "manifest.yaml").write_text(yaml.safe_dump(rows))
    return folder


@pytest.fixture(scope="module")
def first_batch(library: Path, tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str) -> tuple[State, str]:
    store = str(tmp_path_factory.mktemp("batch") / "store")
    state = edit_library(
        manifest=str(library / "manifest.yaml"), store=store, preset="tiny", overrides=FAST, max_concurrency=2,
        return_state=True,
    )
    return state, store


def test_a_bad_asset_fails_the_batch_but_not_the_other_assets(first_batch: tuple[State, str]) -> None:
    state, store = first_batch
    assert state.is_failed() and state.message == "1 of 3 assets failed"
    summary = batch_summary(state)
    assert (summary.completed, summary.failed) == (2, 1)
    chair, nested, empty = summary.assets
    assert [a.row for a in summary.assets] == [1, 2, 3]
    assert empty.status == "failed" and empty.error is not None
    assert empty.error.startswith("ingest: AssetError") and "empty.obj" in empty.error and "no geometry" in empty.error
    assert [(s["stage"], s["status"]) for s in empty.stages] == [("ingest", "failed")]

    for asset, edits in ((chair, CHAIR_EDITS), (nested, ["a photo of <asset0> in blue"])):
        assert asset.status == "completed" and asset.error is None
        assert {s["status"] for s in asset.stages} == {"computed"}
        assert [edit["prompt"] for edit in asset.outputs["edits"]] == edits
        assert all(Path(edit["views"].removeprefix("file://")).is_dir() for edit in asset.outputs["edits"])
        # Personalised once, however many edits: one invert and one finetune, one sample per edit.
        stages = Counter(row["stage"] for row in ledger_rows(store) if row["asset_id"] == asset.asset_id)
        assert stages["invert"] == stages["finetune"] == 1
        assert stages["sample"] == len(edits)
    assert chair.asset_id is not None and chair.asset_id.startswith("chair-")

    # Called without return_state, the batch raises, and the exception still carries the summary.
    with pytest.raises(BatchFailed, match="1 of 3 assets failed") as raised:
        state.result()
    assert raised.value.summary == summary


def test_the_summary_is_a_parquet_table_an_html_index_and_prefect_artifacts(first_batch: tuple[State, str]) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, FlowRunFilter

    state, store = first_batch
    summary = batch_summary(state)
    assert summary.summary_uri is not None and summary.index_uri is not None
    (batch,) = ArtifactStore(store).list(stage="batch")
    table = batch.table("summary").to_pylist()  # one row per edit, in plain columns
    assert [(row["row"], row["edit"], row["status"]) for row in table] == [
        (1, CHAIR_EDITS[0], "completed"), (1, CHAIR_EDITS[1], "completed"),
        (2, "a photo of <asset0> in blue", "completed"), (3, "a photo of <asset0> in red", "failed"),
    ]  # fmt: skip
    assert {row["preset"] for row in table} == {"tiny"}
    assert [row["verdict"] for row in table] == ["noise: random model"] * 3 + [None]
    assert "empty.obj" in table[3]["error"] and table[3]["mesh"] is None
    edits = summary.assets[0].outputs["edits"]
    assert [row["mesh"] for row in table[:2]] == [edit["mesh_source_frame"] for edit in edits]
    assert [row["report"] for row in table[:2]] == [edit["report"] for edit in edits]
    assert all(isinstance(row["edited_colour_share"], float) for row in table[:3])

    page = Path(summary.index_uri.removeprefix("file://")).read_text()
    assert 'src="file:' not in page  # meshes and pictures inlined: the page works copied anywhere
    assert page.count("<model-viewer ") == 2 + 3  # each source and each edit in 3D
    for asset in summary.assets[:2]:
        for edit in asset.outputs["edits"]:
            assert f"<h3>{edit['prompt'].replace('<', '&lt;').replace('>', '&gt;')}</h3>" in page
    assert "no geometry" in page  # the failure's error; the file itself is broken: no retry, but "fix the file"
    assert "fix the file" in page and "retry the failed rows" not in page
    assert "edits: 3 noise: random model, 1 failed" in page and "preset <b>tiny</b>" in page  # at the top
    assert page.count("verdict: noise: random model") == 2 * 3  # on each edit's card and above its details
    assert "share of the edited parts now in the asked colour" in page  # metrics in words
    report_link = "../../" + summary.assets[0].outputs["edits"][0]["report"].split("/objects/", 1)[1]
    assert f'href="{report_link}"' in page  # relative to the gallery's place in the store
    assert (Path(summary.index_uri.removeprefix("file://")).parent / report_link).resolve().is_file()

    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        task_runs = poll(
            lambda: client.read_task_runs(flow_run_filter=FlowRunFilter(id={"any_": [flow_run_id]})),
            lambda runs: len([r for r in runs if r.name.startswith("row-") and r.state and r.state.is_final()]) == 3,
        )
        per_asset = {run.name: run for run in task_runs if run.name.startswith("row-")}
        assert sorted(per_asset) == ["row-1-chair.glb", "row-2-nested.glb", "row-3-empty.obj"]
        assert per_asset["row-3-empty.obj"].state.is_failed()
        assert per_asset["row-1-chair.glb"].state.is_completed()
        # Each asset's edit-asset run is a subflow of the batch: its parent task run is in the batch's run.
        subflows = client.read_flow_runs(flow_run_filter=FlowRunFilter(parent_flow_run_id={"any_": [flow_run_id]}))
        assert len(subflows) == 3
        parents = {client.read_task_run(run.parent_task_run_id).flow_run_id for run in subflows}
        assert parents == {flow_run_id}
        # Each asset's run is found by its tags; no task run carries them (Prefect would ask the server for a
        # concurrency slot per tag of every task run before it starts: seconds per stage on a busy server).
        assert all({"preset:tiny", f"store:{store}"} <= set(run.tags) for run in subflows)
        stage_runs = poll(
            lambda: client.read_task_runs(flow_run_filter=FlowRunFilter(id={"any_": [run.id for run in subflows]})),
            lambda runs: {run.name for run in runs} >= {"ingest", "render", "mask"},
        )
        assert [run.name for run in [*stage_runs, *per_asset.values()] if run.tags] == []
        artifacts = poll(
            lambda: client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id={"any_": [flow_run_id]})),
            lambda found: {"table", "progress", "markdown"} <= {a.type for a in found},
        )
    by_type = {artifact.type: artifact for artifact in artifacts}
    assert by_type["table"].key == TABLE_ARTIFACT_KEY
    rows = json.loads(by_type["table"].data) if isinstance(by_type["table"].data, str) else by_type["table"].data
    assert [row["status"] for row in rows] == ["completed", "completed", "failed"]
    assert float(by_type["progress"].data) == 100.0
    assert "index.html" in by_type["markdown"].data  # the link to the HTML index


def test_the_gallery_and_a_report_open_from_a_copied_folder_in_chromium_with_every_3d_viewer_drawing(
    first_batch: tuple[State, str], tmp_path: Path
) -> None:
    from tests.flows.browser import linked_viewers, open_page

    summary = batch_summary(first_batch[0])
    copied = tmp_path / "copied"
    copied.mkdir()
    shutil.copy(str(summary.index_uri).removeprefix("file://"), copied / "index.html")
    shutil.copy(summary.assets[0].outputs["edits"][0]["report"].removeprefix("file://"), copied / "report.html")

    gallery = open_page(copied / "index.html", tmp_path)
    assert gallery.errors == [] and gallery.outside == []
    assert len(gallery.viewers) == 5, gallery.viewers  # 2 sources + 3 edits, all loaded
    assert all(share > 0.02 for share in gallery.viewers.values()), gallery.viewers  # each draws its asset
    assert gallery.images >= 3 and gallery.broken_images == 0  # sampled views, components

    report = open_page(copied / "report.html", tmp_path)
    assert report.errors == [] and report.outside == []
    assert sorted(report.viewers) == ["viewer-0", "viewer-1"], report.viewers  # before and after
    assert all(share > 0.02 for share in report.viewers.values()), report.viewers
    assert report.broken_images == 0

    linked = linked_viewers(copied / "report.html")  # before and after move as one
    (first, later) = linked["turning"]
    assert later[0] != first[0] and later[0] == pytest.approx(later[1], abs=0.01)  # turning, in step
    (stopped, still) = linked["paused"]
    assert still == pytest.approx(stopped, abs=1e-6)  # the pause button stops both
    (before, after) = linked["dragged"]
    assert after[0] != pytest.approx(before[0], abs=0.05) and after[0] == pytest.approx(after[1], abs=1e-3)
    (own, parts) = linked["colours"]
    assert parts != own and parts[0][:2] == parts[1][:2]  # "part colours": each material its own, in both


def test_the_gallery_says_at_the_top_and_on_each_card_which_edits_landed(
    cli: RunCli, first_batch: tuple[State, str], tmp_path: Path
) -> None:
    """One asset whose edit was applied, one whose edit was not, one that failed: a person sees which at once."""
    from flows.batch_index import html_index
    from tests.flows.browser import visible_text

    summary = batch_summary(first_batch[0])
    chair, nested, empty = summary.assets

    def judged(outcome: Any, verdict: str, reason: str) -> Any:  # the tiny model's verdicts are all "noise"
        edit = {**outcome.outputs["edits"][0], "verdict": verdict, "verdict_reason": reason}
        return outcome.model_copy(update={"outputs": {**outcome.outputs, "edits": [edit]}, "edits": outcome.edits[:1]})

    staged = summary.model_copy(update={"assets": [
        judged(chair, "applied", "81% of the edited parts in gold, kept parts 31.0 dB from the source"),
        judged(nested, "not applied", "2% of the edited parts in blue, kept parts 35.2 dB from the source"), empty,
    ]})  # fmt: skip
    page = tmp_path / "index.html"
    page.write_text(html_index(staged, preset="world"))
    text = visible_text(page, tmp_path / "gallery.png")
    assert text.index("edits: 1 applied, 1 not applied, 1 failed") < text.index("row 1")  # at the top
    assert "row 1: chair" in text and "completed (" in text and "· applied" in text
    assert "· not applied" in text and "row 3: empty-" in text and "failed (" in text
    assert "verdict: applied (81% of the edited parts in gold" in text
    assert "verdict: not applied (2% of the edited parts in blue" in text
    assert "fix the file" in text
    status = json.loads(cli("status", "--store", first_batch[1], "--json").stdout)
    verdicts = [edit["verdict"] for asset in status["assets"] for edit in asset["edits"]]
    assert verdicts and set(verdicts) == {"noise: random model"}  # `status` shows each edit's verdict
    assert {asset["preset"] for asset in status["assets"]} == {"tiny"}


def test_a_rerun_computes_nothing_and_a_lost_artifact_alone_is_recomputed(
    first_batch: tuple[State, str], library: Path
) -> None:
    state, store = first_batch
    before = computed_keys(store)
    again = batch_summary(
        edit_library(manifest=str(library / "manifest.yaml"), store=store, preset="tiny", overrides=FAST, return_state=True)
    )
    assert computed_keys(store) == before
    for asset in again.assets[:2]:
        assert {s["status"] for s in asset.stages} == {"cached"}
    assert again.assets[2].status == "failed"

    lost = again.assets[0].stages[-1]["key"]  # the chair's last stage: nothing depends on it
    ArtifactStore(store).delete(lost)
    edit_library(manifest=str(library / "manifest.yaml"), store=store, preset="tiny", overrides=FAST, return_state=True)
    assert computed_keys(store) - before == Counter({lost: 1})


def test_a_gpu_stage_moves_between_processes_as_json_and_a_committed_one_never_leaves(
    first_batch: tuple[State, str], library: Path
) -> None:
    _, store = first_batch
    config = pipeline_config("tiny", FAST)
    result = edit_asset(asset_path=str(library / "chair.glb"), edits=CHAIR_EDITS[:1], store=store, config=config)
    refs = {ref.stage: ref for ref in result.stages}
    stage = EDIT.stage("sample")
    call = EDIT.call(stage, store=store, config=config, upstream=refs, edit=EditConfig(prompt=CHAIR_EDITS[0], seed=0))
    # The call holds what the catalog declares for the stage, nothing else: three references, two config sections.
    assert set(call.upstream) == {"render", "mask", "finetune"} and set(call.config) == {"model", "sample"}
    parameters = json.loads(json.dumps({"stage": stage.name, "call": call.model_dump(mode="json")}))  # as sent
    assert StageCall.model_validate(parameters["call"]) == call
    with pytest.raises(ValueError, match="prompt"):
        StageCall.model_validate({**parameters["call"], "prompt": "x"})
    # Committed: no deployment is needed (this server has none) and the reference is the same.
    ref = run_stage_remotely(stage, call)
    assert ref.status == "cached"
    assert ref.model_dump(exclude={"status", "seconds"}) == refs["sample"].model_dump(exclude={"status", "seconds"})
    # Where a remote run's result cannot be read, the reference is rebuilt from the store, with the status
    # and seconds of the ledger row that run wrote.
    (computed,) = [r for r in ledger_rows(store) if r["key"] == ref.key and r["status"] == "computed"]
    rebuilt = ref_from_store(stage, call, computed["run_id"], ArtifactStore(store))
    assert rebuilt.model_dump(exclude={"seconds"}) == {**ref.model_dump(exclude={"seconds"}), "status": "computed"}
    assert rebuilt.seconds == pytest.approx(computed["seconds"], abs=1e-3)


def test_the_batch_command_prints_json_and_exits_1_when_an_asset_failed(
    cli: RunCli, first_batch: tuple[State, str], library: Path, tmp_path: Path
) -> None:
    _, store = first_batch
    out = tmp_path / "results"
    result = cli(
        "batch", str(library / "manifest.yaml"), "--store", store, "--config", str(FAST_CONFIG), "--json",
        "--out", str(out), "--fail-on-unapplied", check=False, timeout=BATCH,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr  # an asset failed: that comes before "not applied" (3)
    payload = json.loads(result.stdout)
    # --out: every edit's GLB and report under a name a person reads, a plain table, the gallery linking them
    assert sorted(path.name for path in out.iterdir()) == [
        "chair__asset0-in-gold.glb", "chair__asset0-in-gold.html", "chair__asset1-in-red.glb", "chair__asset1-in-red.html",
        "index.html", "nested__asset0-in-blue.glb", "nested__asset0-in-blue.html", "summary.csv",
    ]  # fmt: skip
    with open(out / "summary.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [(row["row"], row["edit"], row["verdict"], row["mesh"]) for row in table][:2] == [
        ("1", CHAIR_EDITS[0], "noise: random model", "chair__asset0-in-gold.glb"),
        ("1", CHAIR_EDITS[1], "noise: random model", "chair__asset1-in-red.glb"),
    ]  # fmt: skip
    assert table[3]["status"] == "failed" and "no geometry" in table[3]["error"]
    assert 'href="chair__asset0-in-gold.html"' in (out / "index.html").read_text()
    assert payload["preset"] == "tiny" and payload["verdicts"] == {"noise: random model": 3, "failed": 1}
    assert (payload["completed"], payload["failed"]) == (2, 1)
    assert [a["status"] for a in payload["assets"]] == ["completed", "completed", "failed"]
    assert {"asset", "status", "error", "stages", "outputs"} <= set(payload["assets"][0])
    assert payload["assets"][0]["asset"] == str(library / "chair.glb")
    assert {s["status"] for s in payload["assets"][0]["stages"]} == {"cached"}
    assert "empty.obj" in payload["assets"][2]["error"]
    progress = [line for line in result.stderr.splitlines() if line.startswith("[batch ")]
    assert len(progress) == 3 and any("row 3" in line and "failed" in line for line in progress)
    assert all("left" in line for line in progress[:2]) and "all done in" in progress[2]  # and the time left
    assert any(line.startswith("[batch] 3 assets, ") for line in result.stderr.splitlines())

    status = json.loads(cli("status", "--store", store, "--json").stdout)
    states = {row["asset_id"]: row["stages"] for row in status["assets"]}
    chair_id = payload["assets"][0]["asset_id"]
    assert states[chair_id]["finetune"]["state"] == "done" and states[chair_id]["sample"]["state"] == "done"
    edits = {row["asset_id"]: row["edits"] for row in status["assets"]}[chair_id]  # one row per edit prompt
    assert [edit["prompt"] for edit in edits] == sorted(CHAIR_EDITS)
    assert all(edit["stages"]["evaluate"]["state"] == "done" for edit in edits)
    assert states[payload["assets"][2]["asset_id"]]["ingest"]["state"] == "failed"


KILLED_WRITER = {  # what `verify` finds of a write whose process was killed (SIGKILL) before it could clean up
    "files of an interrupted or failed write (never committed)",
    "lock file of a crashed writer",
    "stale lock left by a crashed process",
}


def _session_processes(session: int) -> list[psutil.Process]:
    """The live processes of a session (zombies are gone: they wait only for their parent to read them)."""
    found = []
    for process in psutil.process_iter(["pid", "status"]):
        try:
            if os.getsid(process.pid) == session and process.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (ProcessLookupError, psutil.Error):
            continue
    return found


@pytest.mark.parametrize("target", ["the command", "its process group"])
def test_one_signal_stops_a_batch_and_every_worker_within_5_s_and_the_batch_resumes(
    cli: RunCli, library: Path, tmp_path: Path, shared_assets: Path, target: str
) -> None:
    """A supervisor's single `kill -INT` (the command), or Ctrl-C at a terminal (the whole process group)."""
    shutil.copy(shared_assets / "good" / "two_objects.obj", tmp_path / "two_objects.obj")
    for name in ("chair.glb", "nested.glb"):
        shutil.copy(library / name, tmp_path / name)
    rows = [{"asset": name, "edits": ["a photo of <asset0> in red"]} for name in ("chair.glb", "nested.glb", "two_objects.obj")]
    manifest = tmp_path / "three.yaml"
    manifest.write_text(yaml.safe_dump(rows))
    store = tmp_path / "store"
    args = ["batch", str(manifest), "--store", str(store), "--preset", "tiny", "--config", str(FAST_CONFIG), "--json"]
    process = subprocess.Popen(
        [*CLI, *args], cwd=PROJECT_ROOT, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,  # its own session: every process of the batch is found by it
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not (list((store / "commits").glob("*.json")) and len(psutil.Process(process.pid).children()) >= 3):
        assert process.poll() is None, process.communicate()[1]  # workers running, a stage committed
        assert time.monotonic() < deadline, "the batch never got going"
        time.sleep(0.05)
    if target == "the command":
        process.send_signal(signal.SIGINT)
    else:
        os.killpg(process.pid, signal.SIGINT)
    interrupted = time.monotonic()
    stdout, stderr = process.communicate(timeout=60)
    took = time.monotonic() - interrupted
    assert took < 5, f"one signal took {took:.1f} s to stop the batch (exit {process.returncode}):\n{stderr[-3000:]}"
    assert process.returncode == 130, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == "interrupted: committed stages are kept; run the same command again to resume"
    assert stdout == ""
    # no worker, no Blender left behind (multiprocessing's resource tracker ends by itself once the command has:
    # it cleans up after the stopped workers; give it a moment)
    left = poll(lambda: _session_processes(process.pid), lambda found: found == [], timeout=5)
    assert left == [], [(p.pid, p.cmdline()) for p in left]
    # Nothing committed is touched. A stage cut short removes its unfinished files as its worker stops; a worker
    # that is still inside a long C call when its 2 s of grace end is killed, and only the files and locks of that
    # write are left, which verify reports and --repair removes.
    verify = cli("verify", "--store", str(store), "--check-only", "--json", check=False)
    problems = {problem["problem"] for problem in json.loads(verify.stdout)["problems"]}
    assert problems <= KILLED_WRITER, verify.stdout
    if problems:
        cli("verify", "--store", str(store), "--json", check=False)
        assert json.loads(cli("verify", "--store", str(store), "--check-only", "--json").stdout)["clean"]

    if target == "its process group":  # the same command resumes: what was committed is reused
        committed = {row["key"] for row in ledger_rows(str(store)) if row["status"] == "computed"}
        resumed = cli(*args, timeout=BATCH)
        stages = [stage for asset in json.loads(resumed.stdout)["assets"] for stage in asset["stages"]]
        assert {stage["key"] for stage in stages if stage["status"] == "cached"} == committed & {s["key"] for s in stages}
        assert committed & {s["key"] for s in stages}


def test_a_bad_manifest_exits_2_naming_the_row_before_any_work(cli: RunCli, library: Path, tmp_path: Path) -> None:
    manifest = library / "bad.csv"
    manifest.write_text("asset,edits\nchair.glb,a photo of <asset0>\n../escape.glb,x\n")
    store = tmp_path / "store"
    result = cli("batch", str(manifest), "--store", str(store), "--json", check=False, timeout=300)
    assert result.returncode == 2
    assert "row 2: asset '../escape.glb' escapes" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == "" and not store.exists()


@pytest.mark.slow
def test_two_batches_at_once_on_one_store_compute_each_stage_once(library: Path, tmp_path: Path) -> None:
    manifest = library / "two.yaml"
    manifest.write_text(
        yaml.safe_dump(
            [
                {"asset": "chair.glb", "edits": CHAIR_EDITS[:1]},
                {"asset": "nested.glb", "edits": ["a photo of <asset0> in green"]},
            ]
        )
    )
    store = str(tmp_path / "store")
    args = [*CLI, "batch", str(manifest), "--store", store, "--config", str(FAST_CONFIG), "--json"]
    processes = [
        subprocess.Popen(
            args, cwd=PROJECT_ROOT, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=1200) for process in processes]
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
    first, second = (json.loads(stdout) for stdout, _ in outputs)
    keys = [[s["key"] for s in asset["stages"]] for asset in first["assets"]]
    assert keys == [[s["key"] for s in asset["stages"]] for asset in second["assets"]]
    computed = computed_keys(store)
    assert set(computed) == {key for asset in keys for key in asset}
    assert set(computed.values()) == {1}  # every stage computed by exactly one of the two processes
    assert ArtifactStore(store).verify().clean


def test_several_assets_at_once_need_a_store_other_processes_can_reach(library: Path) -> None:
    with pytest.raises(ValueError, match="memory:// store lives in one process"):
        edit_library(manifest=str(library / "manifest.yaml"), store="memory://batch", preset="tiny", max_concurrency=2)


def test_a_worker_answer_that_does_not_come_back_whole_fails_that_asset_and_not_the_batch() -> None:
    """Prefect's process pool re-raises, in the batch's process, an error that the worker's answer could not be
    read back with (an HTTP error from the API does not unpickle): that row fails with it, the batch goes on."""
    from flows.edit_library import _outcome
    from flows.manifest import ManifestEntry

    class Unreadable:
        state = None

        def wait(self) -> None:
            raise TypeError("HTTPStatusError.__init__() missing 2 required keyword-only arguments: 'request' and 'response'")

    outcome = _outcome(Unreadable(), ManifestEntry(row=4, asset="/library/chair.glb", edits=["a photo of <asset0>"]))
    assert (outcome.row, outcome.status, outcome.edits) == (4, "failed", ["a photo of <asset0>"])
    assert outcome.error.startswith("TypeError: HTTPStatusError.__init__() missing")
