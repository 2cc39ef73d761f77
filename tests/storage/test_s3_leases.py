"""Locks across machines on s3://: separate processes (each its own cache, as on separate hosts) against a real
S3-compatible server on loopback. One computation per key; a live holder keeps its lock past the lease by
its heartbeat; a killed holder's lock lapses and a waiting writer then computes; verify removes a lapsed lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from storage import ArtifactStore

PROJECT_ROOT = Path(__file__).resolve().parents[2]
KEY = "finetune-" + "2" * 32

# One "machine": computes KEY on the store (if nobody has), holding it `hold` seconds, and logs what it did.
WRITER = textwrap.dedent(
    """
    import json, sys, time
    from storage import ArtifactStore
    root, cache, log, name, hold = sys.argv[1:6]
    store = ArtifactStore(root, cache_dir=cache)

    def fill(writer):
        with open(log, "a") as f:
            f.write(json.dumps({"name": name, "event": "start", "t": time.time()}) + "\\n")
        print("computing", flush=True)
        time.sleep(float(hold))
        writer.json("result", {"by": name})
        with open(log, "a") as f:
            f.write(json.dumps({"name": name, "event": "end", "t": time.time()}) + "\\n")

    artifact, status = store.compute(sys.argv[6], stage="finetune", fn=fill, owner={"run_id": name})
    print(status, artifact.json("result")["by"], flush=True)
    """
)


def machine(root: str, tmp_path: Path, name: str, hold: float, lease: float, key: str = KEY) -> subprocess.Popen[str]:
    env = {**os.environ, "DREAMEDIT3D_LOCK_LEASE_S": str(lease)}
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, root, str(tmp_path / f"cache-{name}"), str(tmp_path / "log.jsonl"), name, str(hold), key],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def events(tmp_path: Path) -> list[dict[str, object]]:
    path = tmp_path / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_for(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_two_machines_compute_a_key_once_and_a_live_holder_keeps_its_lock_past_the_lease(
    s3_bucket: str, tmp_path: Path
) -> None:
    root = f"s3://{s3_bucket}/store"
    # A holds the key for 3 leases: only its heartbeat keeps B from taking the lock over.
    first = machine(root, tmp_path, "a", hold=7.0, lease=2.0)
    wait_for(lambda: any(e["event"] == "start" for e in events(tmp_path)), 60, "the first machine to start computing")
    second = machine(root, tmp_path, "b", hold=0.0, lease=2.0)
    out_a, err_a = first.communicate(timeout=120)
    out_b, err_b = second.communicate(timeout=120)
    assert first.returncode == 0 and second.returncode == 0, err_a + err_b
    assert out_a.split()[-2:] == ["computed", "a"]
    assert out_b.split()[-2:] == ["cached", "a"]  # B waited and then read A's commit, computing nothing
    assert [e["event"] for e in events(tmp_path)] == ["start", "end"]
    assert "waiting" in err_b and "took over" not in err_b
    store = ArtifactStore(root)
    assert store.lock_info(KEY) is None  # given back
    assert store.verify().clean


def test_a_killed_holders_lock_lapses_and_the_waiting_machine_computes(s3_bucket: str, tmp_path: Path) -> None:
    root = f"s3://{s3_bucket}/store"
    first = machine(root, tmp_path, "a", hold=600.0, lease=3.0)
    wait_for(lambda: any(e["event"] == "start" for e in events(tmp_path)), 60, "the first machine to start computing")
    store = ArtifactStore(root)
    held = store.lock_info(KEY)
    assert held is not None and held.holder["run_id"] == "a" and not held.lapsed
    os.killpg(first.pid, signal.SIGKILL)  # a lost machine: no clean-up of any kind
    first.wait(timeout=30)

    killed = time.monotonic()
    second = machine(root, tmp_path, "b", hold=0.0, lease=3.0)
    out_b, err_b = second.communicate(timeout=120)
    assert second.returncode == 0, err_b
    assert out_b.split()[-2:] == ["computed", "b"]
    assert "took over the lapsed lock" in err_b
    assert time.monotonic() - killed >= 2.0  # not before the dead holder's lease ran out
    assert [(e["name"], e["event"]) for e in events(tmp_path)] == [("a", "start"), ("b", "start"), ("b", "end")]
    assert store.get(KEY).json("result") == {"by": "b"}
    assert store.verify().clean


def test_verify_removes_the_lock_of_a_machine_that_stopped(s3_bucket: str) -> None:
    root = f"s3://{s3_bucket}/store"
    store = ArtifactStore(root)
    leases = store.leases
    assert leases is not None
    assert leases._put(KEY, {"host": "gone", "pid": 7, "lease_s": 2.0}, IfNoneMatch="*") is not None
    assert store.verify().clean  # a live lease is nobody's problem
    wait_for(lambda: store.lock_info(KEY).lapsed, 30, "the lease to lapse")  # type: ignore[union-attr]
    report = store.verify()
    assert len(report.problems) == 1 and report.problems[0][1].startswith("lock of gone (pid 7), silent for")
    assert store.lock_info(KEY) is not None  # reported only
    assert not store.verify(repair=True).clean
    assert store.lock_info(KEY) is None and store.verify().clean
