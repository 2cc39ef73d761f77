"""Several real processes on one store: a race for the same key, a SIGKILL mid-write, a shared ledger."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storage import ArtifactStore, StoreError, artifact_key

KEY = artifact_key("render", "1", {"resolution": 8}, {})

# argv: root, key, work folder, mode ("race": wait for a second process first; "hang": never finish).
CHILD = """
import datetime as dt, json, os, resource, sys, time
from pathlib import Path
import numpy as np
from storage import ArtifactStore, LedgerRecord

root, key, work, mode = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4]
store = ArtifactStore(root, cache_dir=work / "cache")

def render(writer):
    with open(work / "calls", "a") as f:
        f.write(f"{os.getpid()}\\n")
    writer.array("renders", "rgba", np.ones((4, 8, 8, 4), np.float32), dims=("view", "y", "x", "channel"))
    (work / f"writing-{os.getpid()}").touch()
    time.sleep(60 if mode == "hang" else 0.5)
    writer.json("summary", {"views": 4})

if mode == "race":
    (work / f"ready-{os.getpid()}").touch()
    while len(list(work.glob("ready-*"))) < 2:
        time.sleep(0.01)
start = dt.datetime.now(dt.UTC)
artifact, status = store.compute(key, stage="render", metadata={"asset": "duck"}, fn=render)
peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
store.ledger.append(LedgerRecord(asset_id="duck", stage="render", key=key, status=status, start=start,
                                 end=dt.datetime.now(dt.UTC), peak_rss_bytes=peak_rss))
print(json.dumps({"status": status, "digest": artifact.digest}))
"""


def spawn(tmp_path: Path, root: str, mode: str) -> subprocess.Popen[str]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return subprocess.Popen(
        [sys.executable, str(script), root, KEY, str(tmp_path), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_processes_computing_one_key_run_the_stage_once(tmp_path: Path) -> None:
    root = str(tmp_path / "store")
    children = [spawn(tmp_path, root, "race") for _ in range(2)]
    outputs = [child.communicate(timeout=120) for child in children]
    for child, (_, stderr) in zip(children, outputs, strict=True):
        assert child.returncode == 0, stderr
    results = [json.loads(stdout) for stdout, _ in outputs]

    store = ArtifactStore(root, cache_dir=tmp_path / "cache")
    assert sorted(r["status"] for r in results) == ["cached", "computed"]
    assert {r["digest"] for r in results} == {store.get(KEY).digest}
    assert len((tmp_path / "calls").read_text().splitlines()) == 1
    ledger = store.ledger.read()
    assert sorted(ledger["status"].to_pylist()) == ["cached", "computed"]
    assert set(ledger["key"].to_pylist()) == {KEY} and min(ledger["peak_rss_bytes"].to_pylist()) > 2**20
    assert store.verify().clean


@pytest.mark.parametrize(
    ("root_kind", "expected"),
    [
        (
            "local",
            [
                "files of an interrupted or failed write (never committed)",
                "lock file of a crashed writer",
                "stale lock left by a crashed process",
            ],
        ),
        ("memory", ["local staging files of an interrupted write", "lock file of a crashed writer"]),
    ],
)
def test_sigkill_mid_write_is_invisible_and_verify_repairs_it(
    tmp_path: Path, root_kind: str, expected: list[str]
) -> None:
    root = str(tmp_path / "store") if root_kind == "local" else f"memory://killed-{tmp_path.name}"
    child = spawn(tmp_path, root, "hang")
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob("writing-*")):
        assert child.poll() is None, child.communicate()[1]
        assert time.monotonic() < deadline, "the child never started writing"
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.communicate()

    store = ArtifactStore(root, cache_dir=tmp_path / "cache")
    assert not store.is_committed(KEY) and store.list() == []
    with pytest.raises(StoreError, match=KEY):
        store.get(KEY)
    assert sorted(problem for _, problem, _ in store.verify().problems) == expected

    # The dead process's locks block nobody: the kernel released them with the process.
    artifact, status = store.compute(KEY, stage="render", fn=lambda w: w.json("summary", {}), lock_timeout=5)
    assert status == "computed" and artifact.json("summary") == {}
    repaired = store.verify(repair=True)
    if root_kind == "local":  # the new write removed the dead write's files itself, under the key's lock
        assert repaired.clean, str(repaired)
    else:
        assert repaired.problems and all(action == "removed" for _, _, action in repaired.problems)
    assert store.verify().clean and store.get(KEY).digest == artifact.digest


@pytest.mark.parametrize("root_kind", ["local", "s3"])
def test_writers_killed_at_either_edge_of_a_write_leave_nothing_once_the_key_is_computed(
    tmp_path: Path, root_kind: str, request: pytest.FixtureRequest
) -> None:
    # The narrowest SIGKILL windows. At the start: the writer has taken its liveness lock (the file exists, the
    # kernel freed the flock with the process) but has not made its attempt folder yet; a CI run caught that
    # lone lock file outliving the resumed run. On a remote root its local staging folder may be there too.
    # At the end (local roots): the temporary commit record is written but not yet renamed into place.
    root = str(tmp_path / "store") if root_kind == "local" else f"s3://{request.getfixturevalue('s3_bucket')}/store"
    store = ArtifactStore(root, cache_dir=tmp_path / "cache")
    dead = store.staging_root / KEY / "20261203T000000-0123456789ab"
    dead.parent.mkdir(parents=True)
    dead.with_suffix(".lock").touch()
    if root_kind == "s3":
        (dead / "renders").mkdir(parents=True)
    else:  # and one killed while publishing: its files and a temporary commit record
        published = store.staging_root / KEY / "20261203T000001-ba9876543210"
        (published / "renders").mkdir(parents=True)
        published.with_suffix(".lock").touch()
        (tmp_path / "store" / "commits").mkdir()
        (tmp_path / "store" / "commits" / f".{KEY}.{published.name}.tmp").write_text("{")
    assert "lock file of a crashed writer" in [problem for _, problem, _ in store.verify().problems]

    artifact, status = store.compute(KEY, stage="render", fn=lambda w: w.json("summary", {}), lock_timeout=5)
    assert status == "computed" and artifact.json("summary") == {}
    assert store.verify().clean, str(store.verify())
    assert not dead.exists() and not dead.with_suffix(".lock").exists()
    if root_kind == "local":  # of the key, only the new commit's folder is left
        assert [path.name for path in (store.staging_root / KEY).iterdir()] == [artifact.attempt]
