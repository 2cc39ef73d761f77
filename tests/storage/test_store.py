"""Round trips, commits, tampering and repair on a local folder and on memory:// (see conftest.py)."""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zarr
from safetensors import safe_open

from storage import Artifact, ArtifactStore, ArtifactWriter, LedgerRecord, StoreError, artifact_key
from storage.commit import content_digest

KEY = artifact_key("render", "1", {"resolution": 16}, {})
RNG = np.random.default_rng(0)
RGBA = RNG.random((4, 16, 16, 4), dtype=np.float32)
DEPTH = RNG.random((4, 16, 16), dtype=np.float32)
C2W = np.stack([np.eye(4) + i for i in range(4)])  # (V, 4, 4)
WEIGHTS = {"embedding": RNG.standard_normal((2, 8)).astype(np.float32), "scale": np.arange(3, dtype=np.int64)}


def fill(writer: ArtifactWriter, model_dir: Path) -> None:
    writer.array("renders", "rgba", RGBA, dims=("view", "y", "x", "channel"), attrs={"color_space": "srgb"})
    writer.array("renders", "depth", DEPTH, dims=("view", "y", "x"), chunks=(2, 16, 16))
    writer.group_attrs("renders", {"elevation_deg": 15.0, "azimuths_deg": (0, 90, 180, 270)})
    writer.table("cameras", {"view": [0, 1, 2, 3], "c2w": C2W, "c2w_nested": [m.tolist() for m in C2W]})
    writer.tensors("tokens", WEIGHTS, metadata={"tokens": "<asset0>"})
    writer.file("mesh", model_dir / "source mesh.glb")
    writer.file("notes", b"raw bytes", filename="notes.txt")
    writer.directory("model", model_dir)
    writer.json("summary", {"views": 4, "path": Path("a/b"), "shape": RGBA.shape})


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "saved model"
    (folder / "unet").mkdir(parents=True)
    (folder / "unet" / "config.json").write_text('{"block_out_channels": [32, 64]}')
    (folder / "model_index.json").write_text("{}")
    (folder / "source mesh.glb").write_bytes(b"glTF" + bytes(range(256)))
    return folder


def test_every_item_kind_round_trips(store: ArtifactStore, model_dir: Path) -> None:
    with store.write(KEY, stage="render", metadata={"asset": "duck", "views": 4}) as writer:
        fill(writer, model_dir)
    written = writer.artifact
    artifact = store.get(KEY)
    assert written is not None and written.digest == artifact.digest
    assert (artifact.key, artifact.stage, artifact.metadata) == (KEY, "render", {"asset": "duck", "views": 4})
    assert artifact.created.tzinfo is not None
    assert sorted(artifact.items) == ["cameras", "mesh", "model", "notes", "renders", "summary", "tokens"]

    np.testing.assert_array_equal(artifact.array("renders", "rgba"), RGBA)
    np.testing.assert_array_equal(artifact.array("renders", "depth"), DEPTH)
    group = artifact.zarr_group("renders")
    assert group.attrs["azimuths_deg"] == [0, 90, 180, 270]
    assert group["rgba"].metadata.dimension_names == ("view", "y", "x", "channel")
    assert group["rgba"].chunks == (1, 16, 16, 4)  # one view per chunk by default
    assert group["depth"].chunks == (2, 16, 16)
    assert group["rgba"].attrs["color_space"] == "srgb"
    with pytest.raises(ValueError, match="read-only"):
        group["rgba"][0] = 0

    table = artifact.table("cameras")
    assert table.schema.field("c2w").type == pa.list_(pa.list_(pa.float64(), 4), 4)
    assert table.schema.field("c2w_nested").type == pa.list_(pa.list_(pa.float64()))
    np.testing.assert_array_equal(np.array(table["c2w"].to_pylist()), C2W)
    np.testing.assert_array_equal(np.array(table["c2w_nested"].to_pylist()), C2W)

    tensors = artifact.tensors("tokens")
    assert tensors.keys() == WEIGHTS.keys()
    for name, value in WEIGHTS.items():
        np.testing.assert_array_equal(tensors[name], value)
        assert tensors[name].dtype == value.dtype
    assert artifact.tensors_metadata("tokens") == {"tokens": "<asset0>"}
    assert artifact.json("summary") == {"views": 4, "path": "a/b", "shape": [4, 16, 16, 4]}

    # Other tools open the local copies directly.
    assert artifact.local_path("mesh").name == "mesh.glb"
    assert artifact.local_path("mesh").read_bytes() == (model_dir / "source mesh.glb").read_bytes()
    assert artifact.local_path("notes").read_bytes() == b"raw bytes"
    model = artifact.local_path("model")
    assert json.loads((model / "unet" / "config.json").read_text()) == {"block_out_channels": [32, 64]}
    assert pq.read_table(artifact.local_path("cameras")).num_rows == 4
    np.testing.assert_array_equal(zarr.open_group(artifact.local_path("renders"), mode="r")["rgba"][:], RGBA)
    with safe_open(artifact.local_path("tokens"), framework="numpy") as f:
        assert f.metadata() == {"tokens": "<asset0>"}
    uri = artifact.uri("renders")
    assert uri.startswith(store.root_uri + "/objects/") and uri.endswith(".zarr")


def test_absent_keys_and_wrong_items_raise_clear_errors(store: ArtifactStore) -> None:
    assert not store.is_committed(KEY)
    with pytest.raises(StoreError, match=KEY):
        store.get(KEY)
    with store.write(KEY, stage="render") as writer:
        writer.json("summary", {})
    artifact = store.get(KEY)
    with pytest.raises(StoreError, match="no item 'renders'"):
        artifact.array("renders", "rgba")
    with pytest.raises(ValueError, match="is a json, not a table"):
        artifact.table("summary")


def test_writer_rejects_bad_items(store: ArtifactStore) -> None:
    with pytest.raises(ValueError), store.write(KEY, stage="render") as writer:
        with pytest.raises(ValueError, match="invalid item name"):
            writer.json("a/b", {})
        with pytest.raises(ValueError, match="one name per axis"):
            writer.array("renders", "rgba", RGBA, dims=("view", "y", "x"))
        writer.json("summary", {})
        with pytest.raises(ValueError, match="already written"):
            writer.table("summary", {"a": [1]})
        with pytest.raises(ValueError, match="not JSON compliant"):
            writer.json("metrics", {"psnr": float("nan")})
        raise ValueError("abandon the write")
    assert not store.is_committed(KEY)


def test_exception_inside_write_leaves_nothing(store: ArtifactStore) -> None:
    with pytest.raises(RuntimeError, match="stage crashed"), store.write(KEY, stage="render") as writer:
        writer.array("renders", "rgba", RGBA, dims=("view", "y", "x", "channel"))
        raise RuntimeError("stage crashed")
    assert not store.is_committed(KEY)
    assert store.list() == []
    assert not writer.path.exists() and not writer.path.parent.exists()
    assert store.verify().clean


def test_compute_caches_and_list_filters_by_stage(store: ArtifactStore) -> None:
    calls = []

    def render(writer: ArtifactWriter) -> None:
        calls.append(1)
        writer.array("renders", "rgba", RGBA, dims=("view", "y", "x", "channel"))

    first, status = store.compute(KEY, stage="render", metadata={"n": 1}, fn=render)
    again, status_again = store.compute(KEY, stage="render", metadata={"n": 1}, fn=render)
    assert (status, status_again, len(calls)) == ("computed", "cached", 1)
    assert again.digest == first.digest
    mask_key = artifact_key("mask", "1", {}, {"renders": first.digest})
    store.compute(mask_key, stage="mask", metadata=None, fn=lambda w: w.json("components", []))
    assert [a.key for a in store.list("mask")] == [mask_key]
    assert sorted(a.key for a in store.list()) == sorted([KEY, mask_key])
    store.delete(mask_key)
    assert not store.is_committed(mask_key) and [a.key for a in store.list()] == [KEY]
    assert store.verify().clean


def test_same_content_gives_same_digest_whatever_the_key(store: ArtifactStore) -> None:
    digests = []
    for key in ("render-a", "render-b"):
        with store.write(key, stage="render", metadata={"key": key}) as writer:
            writer.array("renders", "rgba", RGBA, dims=("view", "y", "x", "channel"))
        digests.append(store.get(key).digest)
    assert digests[0] == digests[1]


def _tamper(store: ArtifactStore, key: str, change: dict) -> None:
    """Edit a commit record as a careful attacker would: with a matching digest, so only the path checks remain."""
    record = json.loads(store.fs.cat_file(store.commit_path(key))) | change
    record["digest"] = content_digest(record["files"])
    store.fs.pipe_file(store.commit_path(key), json.dumps(record).encode())


ETC = {"sha256": "0" * 64, "size": 1}


@pytest.mark.parametrize(
    "change",
    [
        {"attempt": ".."},
        {"items": {"mesh": {"kind": "file", "path": "../../../etc"}}},
        {"files": [{"path": "model/../../../../../etc/passwd"} | ETC]},
        {"files": [{"path": "model//etc/passwd"} | ETC]},
        {"files": [{"path": "mesh.glb/../../../../etc/passwd"} | ETC]},
        {"files": [{"path": "/etc/passwd"} | ETC]},
        {"key": "render-other"},
    ],
)
def test_tampered_commit_record_raises_store_error(store: ArtifactStore, change: dict) -> None:
    with store.write(KEY, stage="render") as writer:
        writer.file("mesh", b"glb", filename="mesh.glb")
        (writer.new_directory("model") / "config.json").write_text("{}")
    _tamper(store, KEY, change)
    with pytest.raises(StoreError, match=f"commit record of artifact '{KEY}' is invalid"):
        store.get(KEY)
    report = store.verify(repair=True)
    assert [p[0] for p in report.problems][:1] == [KEY]
    assert not store.is_committed(KEY) and store.verify().clean


def test_verify_flags_a_corrupted_file_and_repair_lets_it_recompute(store: ArtifactStore) -> None:
    with store.write(KEY, stage="render") as writer:
        writer.array("renders", "rgba", RGBA, dims=("view", "y", "x", "channel"))
        writer.file("mesh", b"glb", filename="mesh.glb")
    artifact = store.get(KEY)
    store.fs.pipe_file(artifact.uri("mesh"), b"GLB")  # same size, other bytes
    report = store.verify()
    problem = "file mesh.glb does not match its digest in the commit record"
    assert report.problems == [(KEY, problem, report.problems[0][2])]
    assert "repair=True" in str(report) and store.is_committed(KEY)
    assert "removed" in store.verify(repair=True).problems[0][2]
    assert not store.is_committed(KEY) and store.verify().clean
    _, status = store.compute(KEY, stage="render", metadata=None, fn=lambda w: w.file("mesh", b"glb", "mesh.glb"))
    assert status == "computed"


def test_verify_reports_missing_files_and_superseded_writes(store: ArtifactStore) -> None:
    for content in (b"first", b"second"):
        with store.write(KEY, stage="render") as writer:
            writer.file("mesh", content, filename="mesh.glb")
    assert store.get(KEY).local_path("mesh").read_bytes() == b"second"  # the last commit wins
    report = store.verify()
    assert [p[1] for p in report.problems] == ["files of an older write, replaced by a newer commit"]
    store.verify(repair=True)
    store.fs.rm_file(store.get(KEY).uri("mesh"))
    assert store.verify().problems[0][:2] == (KEY, "file mesh.glb is missing")


def test_scratch_survives_until_cleared(store: ArtifactStore) -> None:
    scratch = store.scratch_dir(KEY)
    (scratch / "step_200.safetensors").write_bytes(b"checkpoint")
    assert store.scratch_dir(KEY) == scratch and (scratch / "step_200.safetensors").exists()
    with store.write(KEY, stage="finetune") as writer:
        writer.json("summary", {})
    assert [p[1] for p in store.verify().problems] == ["scratch folder of an artifact that is committed"]
    store.clear_scratch(KEY)
    assert not scratch.exists() and store.verify().clean


def test_ledger_round_trip(store: ArtifactStore) -> None:
    assert store.ledger.read().num_rows == 0 and store.ledger.read().schema.names[:3] == ["asset_id", "stage", "key"]
    start = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    store.ledger.append(
        LedgerRecord(
            asset_id="duck",
            stage="render",
            key=KEY,
            status="failed",
            start=start,
            end=start + dt.timedelta(seconds=2.5),
            peak_rss_bytes=2**30,
            error="Blender crashed",
        )
    )
    rows = store.ledger.read().to_pylist()
    assert len(rows) == 1
    assert rows[0]["seconds"] == 2.5 and rows[0]["peak_gpu_bytes"] is None and rows[0]["error"] == "Blender crashed"
    assert rows[0]["start"] == start
    with pytest.raises(ValueError, match="timezone-aware"):
        LedgerRecord(
            asset_id="a",
            stage="s",
            key="k",
            status="cached",
            start=dt.datetime(2026, 1, 1),
            end=dt.datetime(2026, 1, 1),
            peak_rss_bytes=0,
        )
    with pytest.raises(ValueError, match="status must be one of"):
        LedgerRecord(asset_id="a", stage="s", key="k", status="done", start=start, end=start, peak_rss_bytes=0)


def test_the_ledger_compacts_its_small_files_and_keeps_every_row(
    store: ArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import storage.ledger

    monkeypatch.setattr(storage.ledger, "COMPACT_AFTER", 10)
    start = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)

    def record(i: int) -> LedgerRecord:
        moment = start + dt.timedelta(seconds=i)
        return LedgerRecord(asset_id=f"a{i}", stage="render", key=KEY, status="computed", start=moment,
                            end=moment + dt.timedelta(seconds=1), peak_rss_bytes=i)  # fmt: skip

    for i in range(10):
        store.ledger.append(record(i))
    assert len(store.ledger.parts()) == 10
    store.ledger.append(record(10))  # the eleventh file compacts all of them into one
    assert len(store.ledger.parts()) == 1
    rows = store.ledger.read().to_pylist()
    assert [row["asset_id"] for row in rows] == [f"a{i}" for i in range(11)]
    # a reader between writing the compacted file and removing the small ones sees each row once
    store.ledger.append(record(11))
    parts = store.ledger.parts()
    store.ledger._write("part-copy.parquet", store.ledger._read(parts))  # as if compact stopped half-way
    assert store.ledger.read().num_rows == 12
    assert store.ledger.compact() == 3 and store.ledger.read().num_rows == 12


def test_root_uri_reopens_the_same_store(store: ArtifactStore, tmp_path: Path) -> None:
    with store.write(KEY, stage="render") as writer:
        writer.json("summary", {"views": 4})
    reopened = ArtifactStore(store.root_uri, cache_dir=tmp_path / "other cache")
    assert reopened.root_uri == store.root_uri
    assert reopened.get(KEY).json("summary") == {"views": 4}


def _to_legacy_layout(store: ArtifactStore) -> None:
    """Give the store the layout of versions that kept commit records in manifests/."""
    store.fs.mv(store.path("commits"), store.path("manifests"), recursive=True)
    assert not store.fs.exists(store.path("commits")) and store.list() == []


def _item_bytes(artifact: Artifact, item: str) -> dict[str, bytes]:
    """Every file of an item by its path inside the item (remote roots: a digest-checked download)."""
    path = artifact.local_path(item)
    if path.is_file():
        return {path.name: path.read_bytes()}
    return {f.relative_to(path).as_posix(): f.read_bytes() for f in sorted(path.rglob("*")) if f.is_file()}


def test_a_store_of_an_older_version_reopens_with_every_artifact(
    store: ArtifactStore, model_dir: Path, tmp_path: Path
) -> None:
    with store.write(KEY, stage="render", metadata={"asset": "duck"}) as writer:
        fill(writer, model_dir)
    mask_key = artifact_key("mask", "1", {}, {"renders": store.get(KEY).digest})
    store.compute(mask_key, stage="mask", fn=lambda w: w.json("components", [3, 1]))
    records = {a.key: a.record for a in store.list()}
    contents = {(a.key, item): _item_bytes(a, item) for a in store.list() for item in a.items}
    assert len(records) == 2 and len(contents) == 8
    _to_legacy_layout(store)

    reopened = ArtifactStore(store.root_uri, cache_dir=tmp_path / "other cache")
    reopened.upgrade_layout()  # what the first ArtifactStore of this root in a new process does
    assert not reopened.fs.exists(reopened.path("manifests"))
    assert sorted(reopened.fs.ls(reopened.path("commits"), detail=False)) == sorted(map(reopened.commit_path, records))
    assert {a.key: a.record for a in reopened.list()} == records
    for (key, item), files in contents.items():
        assert _item_bytes(reopened.get(key), item) == files, (key, item)
    np.testing.assert_array_equal(reopened.get(KEY).array("renders", "rgba"), RGBA)
    assert reopened.get(mask_key).json("components") == [3, 1]
    assert reopened.verify().clean
    _, status = reopened.compute(mask_key, stage="mask", fn=lambda w: w.json("components", []))
    assert status == "cached"


def test_a_process_checks_a_stores_layout_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from storage import store as store_module

    checked: list[str] = []
    upgrade = store_module.upgrade_layout
    monkeypatch.setattr(store_module, "upgrade_layout", lambda fs, root, *rest: checked.append(root) or upgrade(fs, root, *rest))
    monkeypatch.setattr(store_module, "_LAYOUT_CURRENT", set())
    for _ in range(5):
        ArtifactStore(tmp_path / "one")
    ArtifactStore(tmp_path / "two")
    assert [Path(uri).name for uri in checked] == ["one", "two"]


def test_an_interrupted_move_of_an_older_store_is_finished_on_the_next_open(
    store: ArtifactStore, tmp_path: Path
) -> None:
    keys = ["render-0", "render-1", "render-2"]
    for key in keys:
        with store.write(key, stage="render") as writer:
            writer.json("summary", {"key": key, "version": 1})
    first_attempt = store.get("render-0").attempt
    _to_legacy_layout(store)
    temp_name = ".render-3.20260101T000000-0.tmp"
    store.fs.pipe_file(store.path("manifests", temp_name), b"{")  # an older version's commit cut short
    # The move was cut short after copying one record; then a new version committed render-0 again.
    store.fs.makedirs(store.path("commits"), exist_ok=True)
    store.fs.copy(store.path("manifests", "render-1.json"), store.commit_path("render-1"))
    with store.write("render-0", stage="render") as writer:
        writer.json("summary", {"key": "render-0", "version": 2})

    reopened = ArtifactStore(store.root_uri, cache_dir=tmp_path / "other cache")
    reopened.upgrade_layout()  # what the first ArtifactStore of this root in a new process does
    assert not reopened.fs.exists(reopened.path("manifests"))
    assert [a.key for a in reopened.list()] == keys
    assert [a.json("summary")["version"] for a in reopened.list()] == [2, 1, 1]  # commits/ holds the newer record
    report = reopened.verify()
    assert {(where, problem) for where, problem, _ in report.problems} == {
        (f"objects/render-0/{first_attempt}", "files of an older write, replaced by a newer commit"),
        (reopened.path("commits", temp_name), "temporary commit record of an interrupted commit"),
    }
    reopened.verify(repair=True)
    assert reopened.verify().clean and [a.key for a in reopened.list()] == keys

def test_lock_excludes_a_second_holder_until_released(store: ArtifactStore) -> None:
    outcome: list[str] = []

    def contender() -> None:
        try:
            with store.lock(KEY, timeout=0.2):
                outcome.append("acquired")
        except TimeoutError as error:
            outcome.append(str(error))

    with store.lock(KEY):
        thread = threading.Thread(target=contender)
        thread.start()
        thread.join()
    contender()
    assert len(outcome) == 2 and KEY in outcome[0] and outcome[1] == "acquired"


def test_prune_says_what_would_go_then_removes_dead_writes_and_long_unused_artifacts(tmp_path: Path) -> None:
    from storage.prune import prune_store

    store = ArtifactStore(str(tmp_path / "store"))
    now = dt.datetime.now(dt.UTC)
    keys = [artifact_key("render", "1", {"n": n}, {}) for n in range(2)]
    for key in keys:
        with store.write(key, stage="render") as writer:
            writer.file("notes", b"x" * 1000, filename="notes.txt")
    dead = tmp_path / "store" / "objects" / keys[0] / "20260101T000000-deadbeef0000"
    dead.mkdir(parents=True)
    (dead / "partial.bin").write_bytes(b"y" * 500)  # a write killed before its commit
    later = now + dt.timedelta(days=35)  # keys[0] was used again then (found cached), keys[1] never
    store.ledger.append(LedgerRecord(asset_id="a", stage="render", key=keys[0], status="cached", start=later,
                                     end=later, peak_rss_bytes=0))  # fmt: skip

    looked = prune_store(store, unused_days=30, now=now + dt.timedelta(days=40))
    assert {(c.what, c.size_bytes) for c in looked.candidates} == {
        (f"objects/{keys[0]}/{dead.name}", 500), (keys[1], 1000)
    }  # fmt: skip
    assert "would remove" in str(looked) and dead.exists() and store.is_committed(keys[1])  # a dry run by default

    done = prune_store(store, unused_days=30, now=now + dt.timedelta(days=40), apply=True)
    assert done.size_bytes == 1500 and not dead.exists()
    assert store.is_committed(keys[0]) and not store.is_committed(keys[1])
    assert store.verify().clean
    assert prune_store(store, unused_days=30, now=now + dt.timedelta(days=40)).candidates == []
