"""The store on s3://, against a real S3-compatible server on loopback: commits, reads, the ledger, verify,
status, and the whole `edit` and `batch` as a user runs them."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import fsspec
import numpy as np
import pytest
import yaml

from dreamedit3d_core.config import pipeline_config
from storage import ArtifactStore
from tasks.catalog import EDIT
from tests.helpers import RunCli

pytestmark = pytest.mark.usefixtures("prefect_api_url")

KEY = "render-" + "0" * 32


def test_commits_reads_and_verify_on_s3(s3_bucket: str) -> None:
    store = ArtifactStore(f"s3://{s3_bucket}/store")

    def render(writer) -> None:  # noqa: ANN001
        writer.array("renders", "rgb", np.arange(24, dtype=np.uint8).reshape(2, 3, 4), dims=("view", "y", "x"))
        writer.json("summary", {"views": 2})
        writer.file("mesh", b"glTF", "mesh.glb")

    artifact, status = store.compute(KEY, stage="render", metadata={"asset": "duck"}, fn=render)
    assert status == "computed" and artifact.uri("mesh").startswith("s3://")
    again, status = ArtifactStore(store.root_uri).compute(KEY, stage="render", fn=render)
    assert status == "cached" and again.attempt == artifact.attempt
    assert again.array("renders", "rgb").tolist() == np.arange(24).reshape(2, 3, 4).tolist()
    assert again.json("summary") == {"views": 2} and again.local_path("mesh").read_bytes() == b"glTF"
    assert store.verify().clean

    with fsspec.open(artifact.uri("mesh"), "wb") as damaged:  # another writer's bytes under a committed name
        damaged.write(b"not what was committed")
    report = store.verify(repair=False)
    assert not report.clean and any(KEY in where for where, _, _ in report.problems)
    assert store.is_committed(KEY)  # reported only
    store.verify(repair=True)
    assert not store.is_committed(KEY)  # removed, so the next run recomputes it


def test_verify_leaves_an_upload_in_progress_and_removes_one_whose_lease_lapsed(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ArtifactStore(f"s3://{s3_bucket}/store")
    uploading = store.attempt_path(KEY, "20261203T010203-0123456789ab")
    store.fs.pipe(f"{uploading}/renders.zarr/zarr.json", b"{}")  # another machine's upload, not yet committed
    assert store.verify(repair=True).clean and store.fs.exists(uploading)  # the same on every host: left alone

    monkeypatch.setenv("DREAMEDIT3D_WRITE_LEASE_S", "0")  # its lease has lapsed: a dead write
    report = store.verify(repair=True)
    assert [problem for _, problem, _ in report.problems] == ["files of an interrupted or failed write (never committed)"]
    assert not store.fs.exists(uploading)


def test_edit_status_verify_and_plan_on_s3_as_a_user_runs_them(cli: RunCli, chair: Path, s3_bucket: str) -> None:
    root = f"s3://{s3_bucket}/store"
    args = ["edit", str(chair), "--edit", "a photo of <asset0> in gold", "--store", root, "--json"]
    first = json.loads(cli(*args).stdout)
    assert {stage["status"] for stage in first["stages"]} == {"computed"}
    report = first["outputs"]["edits"][0]["report"]
    assert report.startswith(root) and b"<model-viewer" in fsspec.open(report, "rb").open().read()

    again = json.loads(cli(*args).stdout)
    assert {stage["status"] for stage in again["stages"]} == {"cached"}  # a second machine would see the same

    (row,) = json.loads(cli("status", "--store", root, "--json").stdout)["assets"]
    ran = [stage.name for stage in EDIT.stages if EDIT.runs(stage, pipeline_config("tiny"))]  # reconstruct: off
    assert {stage: cell["state"] for stage, cell in row["stages"].items()} == {
        stage.name: "done" if stage.name in ran else "not run" for stage in EDIT.stages
    }
    assert json.loads(cli("verify", "--store", root, "--check-only", "--json").stdout)["clean"]
    plan = cli("plan", str(chair), "--edit", "a photo of <asset0> in gold", "--store", root).stdout
    assert f"0 of {len(ran)} stages to compute" in plan


def test_a_batch_writes_its_gallery_to_s3(cli: RunCli, chair: Path, s3_bucket: str, tmp_path: Path) -> None:
    root = f"s3://{s3_bucket}/store"
    shutil.copyfile(chair, tmp_path / "chair.glb")  # beside the manifest
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump([{"asset": "chair.glb", "edits": ["a photo of <asset1> in red"]}]))
    summary = json.loads(cli("batch", str(tmp_path / "manifest.yaml"), "--store", root, "--json").stdout)
    assert summary["completed"] == 1 and summary["index"].startswith(root)
    page = fsspec.open(summary["index"], "rb").open().read().decode()
    assert page.count("<model-viewer ") == 2 and 'src="s3:' not in page  # inlined: opens anywhere


def test_checkpoints_reach_the_store_and_another_machine_resumes_from_them(
    s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks.running import ScratchSync

    root = f"s3://{s3_bucket}/store"
    key = "finetune-" + "1" * 32
    worker_a = ArtifactStore(root, cache_dir=tmp_path / "machine-a")
    scratch = worker_a.scratch_dir(key)
    with ScratchSync(worker_a, key, enabled=worker_a.shared_remote, interval=0.05):
        (scratch / ".tmp-step-000004-99").mkdir()  # a checkpoint being written: never uploaded
        (scratch / "step-000002").mkdir()
        (scratch / "step-000002" / "weights.safetensors").write_bytes(b"w2")
        (scratch / "step-000002" / "state.json").write_text('{"step": 2}')
        deadline = 100
        while not worker_a.fs.exists(f"{worker_a.path('scratch', key)}/step-000002.done") and deadline:
            deadline -= 1
            time.sleep(0.05)
    assert deadline, "the checkpoint was never uploaded"

    # The first worker is preempted; another machine (its own local cache) finds the checkpoint in the store.
    worker_b = ArtifactStore(root, cache_dir=tmp_path / "machine-b")
    resumed = worker_b.scratch_dir(key)
    assert sorted(p.name for p in resumed.iterdir()) == ["step-000002"]
    assert (resumed / "step-000002" / "weights.safetensors").read_bytes() == b"w2"

    # It writes a newer checkpoint and drops the older one: the store follows.
    (resumed / "step-000004").mkdir()
    (resumed / "step-000004" / "state.json").write_text('{"step": 4}')
    shutil.rmtree(resumed / "step-000002")
    assert worker_b.push_scratch(key) == ["step-000004"]
    worker_c = ArtifactStore(root, cache_dir=tmp_path / "machine-c")
    assert sorted(p.name for p in worker_c.scratch_dir(key).iterdir()) == ["step-000004"]

    # The first worker, still running, drops an entry while a third machine copies it: the third skips it.
    (resumed / "step-000006").mkdir()
    (resumed / "step-000006" / "state.json").write_text('{"step": 6}')
    assert worker_b.push_scratch(key) == ["step-000006"]
    worker_d = ArtifactStore(root, cache_dir=tmp_path / "machine-d")
    get = worker_d.fs.get

    def get_while_dropped(remote: str, local: str, **kwargs: object) -> None:
        if "step-000004" in remote:  # dropped by the other machine just before this copy
            worker_b.fs.rm(f"{worker_b.path('scratch', key)}/step-000004.done")
            worker_b.fs.rm(f"{worker_b.path('scratch', key)}/step-000004", recursive=True)
            worker_d.fs.invalidate_cache()
        get(remote, local, **kwargs)

    monkeypatch.setattr(worker_d.fs, "get", get_while_dropped)  # the s3fs instance is shared: undone after
    pulled = worker_d.scratch_dir(key)
    assert sorted(p.name for p in pulled.iterdir()) == ["step-000006"]  # no partial step-000004, no error

    worker_b.clear_scratch(key)  # committed: the checkpoints go, here and in the store
    assert not worker_b.fs.exists(worker_b.path("scratch", key))


def test_a_manifest_in_a_bucket_copies_each_asset_with_exactly_the_files_it_references(
    s3_bucket: str, shared_assets: Path, tmp_path: Path
) -> None:
    from dreamedit3d_core.config import pipeline_config
    from flows.manifest import ManifestError, read_manifest

    name = s3_bucket
    fs = fsspec.filesystem("s3")
    good = shared_assets / "good"
    for source, target in [
        ("fuze.obj", "lib/fuze/fuze.obj"),  # OBJ -> MTL -> texture: three rounds of references
        ("fuze.obj.mtl", "lib/fuze/fuze.obj.mtl"),
        ("fuze uv.jpg", "lib/fuze/fuze uv.jpg"),
        ("TestScene.gltf", "lib/scene/TestScene.gltf"),
        ("TestScene.bin", "lib/scene/TestScene.bin"),
        ("Duck.glb", "lib/scene/unused.png"),  # beside an asset, referenced by nobody: never copied
        ("nested.glb", "lib/nested.glb"),
        ("nested.glb", "outside.glb"),
    ]:
        fs.put_file(str(good / source), f"{name}/{target}")
    fs.pipe_file(f"{name}/lib/manifest.csv", b"asset,edits\nfuze/fuze.obj,a\nscene/TestScene.gltf,b\nnested.glb,c\n")
    fs.pipe_file(f"{name}/lib/bad.csv", b"asset,edits\n../outside.glb,a\ns3://x/nested.glb,b\nnone.glb,c\n")
    base = pipeline_config("tiny")
    cache = tmp_path / "cache"
    os.environ["DREAMEDIT3D_CACHE"] = str(cache)
    try:
        entries = read_manifest(f"s3://{name}/lib/manifest.csv", base)
        copies = [Path(entry.asset) for entry in entries]
        root = copies[2].parent
        assert [c.relative_to(root).as_posix() for c in copies] == ["fuze/fuze.obj", "scene/TestScene.gltf", "nested.glb"]
        assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")) == [
            "fuze/fuze uv.jpg", "fuze/fuze.obj", "fuze/fuze.obj.mtl", "manifest.csv",
            "nested.glb", "scene/TestScene.bin", "scene/TestScene.gltf",
        ]  # fmt: skip
        assert (root / "fuze" / "fuze uv.jpg").read_bytes() == (good / "fuze uv.jpg").read_bytes()

        # The same path rules as a local manifest, every bad row named.
        with pytest.raises(ManifestError) as refused:
            read_manifest(f"s3://{name}/lib/bad.csv", base)
        message = str(refused.value)
        assert "3 bad row(s)" in message and "row 1: asset '../outside.glb': escapes the manifest's folder" in message
        assert "row 2" in message and "not a URL" in message
        assert f"row 3: asset 'none.glb' not found (looked for s3://{name}/lib/none.glb)" in message
        with pytest.raises(ManifestError, match="manifest not found"):
            read_manifest(f"s3://{name}/lib/missing.csv", base)

        # A changed asset is copied again; an unchanged one is not.
        before = (root / "fuze" / "fuze.obj").stat().st_mtime_ns
        fs.put_file(str(good / "Duck.glb"), f"{name}/lib/nested.glb")
        read_manifest(f"s3://{name}/lib/manifest.csv", base)
        assert (root / "nested.glb").read_bytes() == (good / "Duck.glb").read_bytes()
        assert (root / "fuze" / "fuze.obj").stat().st_mtime_ns == before
    finally:
        os.environ.pop("DREAMEDIT3D_CACHE", None)

    # file:// names a local manifest, read in place.
    (tmp_path / "local").mkdir()
    shutil.copy(good / "nested.glb", tmp_path / "local" / "nested.glb")
    (tmp_path / "local" / "manifest.csv").write_text("asset,edits\nnested.glb,a\n")
    (entry,) = read_manifest(f"file://{tmp_path}/local/manifest.csv", base)
    assert entry.asset == str(tmp_path / "local" / "nested.glb")
