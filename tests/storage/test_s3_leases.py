"""Locks across machines on s3://: separate processes (each its own cache, as on separate hosts) against a real
S3-compatible server on loopback. One computation per key; a live holder keeps its lock past the lease by
its heartbeat; a killed holder's lock lapses and a waiting writer then computes; verify removes a lapsed lock.
A holder whose renewals fail retries them, and loses its lock (refusing to publish) only once it lapses or was
taken over; a refused conditional write is told by its status code."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from s3fs.errors import translate_boto_error

from storage import ArtifactStore
from storage.lease_record import LeaseLost
from storage.leases import S3Leases, _condition_failed
from tests.helpers import PROJECT_ROOT

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


# -- a holder's heartbeat against an unreliable store (in this process, lease 2 s) ------------------------------

LEASE_S = 2.0


def unreachable(real_put, fail: int | None = None, write_first: bool = False):  # type: ignore[no-untyped-def]
    """A stand-in for `S3Leases._put` whose renewals (If-Match) fail like a dropped network: all of them, or the
    first `fail`; `write_first`: each failing renewal reaches the store and only its answer is lost."""
    tries: list[float] = []

    def put(self, key, holder, **condition):  # type: ignore[no-untyped-def]
        if "IfMatch" in condition and (fail is None or len(tries) < fail):
            tries.append(time.monotonic())
            if write_first:
                real_put(self, key, holder, **condition)
            raise EndpointConnectionError(endpoint_url="http://store.invalid")
        return real_put(self, key, holder, **condition)

    return put, tries


def test_a_heartbeat_that_cannot_reach_the_store_retries_then_loses_the_lease_and_refuses_to_publish(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    leases = ArtifactStore(f"s3://{s3_bucket}/store").leases
    assert leases is not None
    put, tries = unreachable(S3Leases._put)
    with pytest.raises(LeaseLost, match=f"lost the lock of '{KEY}' while holding it: could not renew it"):
        with leases.hold(KEY, lease_s=LEASE_S) as lease:
            held = time.monotonic()
            monkeypatch.setattr(S3Leases, "_put", put)
            leases.check(KEY)  # still ours: nothing has failed yet
            wait_for(lambda: len(tries) >= 2, 10, "a retry after the first failed renewal")
            assert not lease.lost  # failures within the lease are retried, not fatal
            with pytest.raises(LeaseLost, match="was not renewed for .* may lapse before a publish completes"):
                wait_for(lambda: time.monotonic() - held > LEASE_S * 0.8, 10, "most of the lease to pass")
                lease.check()  # too little of the lease left to publish on
            wait_for(lambda: lease.lost, 10, "the lease to be lost")
            assert time.monotonic() - held > LEASE_S * 0.75  # not before the lease ran out
            with pytest.raises(LeaseLost, match=f"lost the lock of '{KEY}': could not renew it .* not publishing"):
                leases.check(KEY)  # the guard a publish calls
            wait_for(lambda: "warning: lost the lock" in capsys.readouterr().err, 10, "the heartbeat's warning")
            # It kept retrying until the lease was gone, waiting lease/32, lease/16, then at most lease/8.
            gaps = [b - a for a, b in zip(tries, tries[1:], strict=False)]
            assert len(tries) >= 6
            assert all(gap >= LEASE_S * f * 0.9 for gap, f in zip(gaps, (1 / 32, 1 / 16, 1 / 8), strict=False))
    monkeypatch.undo()
    assert leases.info(KEY) is None  # our lapsed record given back: nobody had taken it over


def test_a_renewal_that_fails_once_keeps_the_lease(s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    leases = ArtifactStore(f"s3://{s3_bucket}/store").leases
    assert leases is not None
    put, tries = unreachable(S3Leases._put, fail=1)
    monkeypatch.setattr(S3Leases, "_put", put)
    with leases.hold(KEY, lease_s=LEASE_S) as lease:
        time.sleep(LEASE_S * 1.5)  # the failure came at the first beat; the retry and later beats succeeded
        assert len(tries) == 1 and not lease.lost
        lease.check()
        current = leases.info(KEY)
        assert current is not None and current.holder["holder"] == lease.holder["holder"] and not current.lapsed
    assert leases.info(KEY) is None  # given back


def test_a_renewal_whose_answer_was_lost_keeps_the_lease(s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The store wrote the renewal, but the connection dropped before its answer: the retry's If-Match then names
    # an ETag the store no longer has. The record is still ours, so the lease is kept.
    leases = ArtifactStore(f"s3://{s3_bucket}/store").leases
    assert leases is not None
    put, tries = unreachable(S3Leases._put, fail=1, write_first=True)
    monkeypatch.setattr(S3Leases, "_put", put)
    with leases.hold(KEY, lease_s=LEASE_S) as lease:
        time.sleep(LEASE_S * 1.5)
        assert len(tries) == 1 and not lease.lost
        lease.check()
    assert leases.info(KEY) is None


def test_a_holder_whose_lease_was_taken_over_loses_it_at_once_and_leaves_the_new_holders(
    s3_bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    leases = ArtifactStore(f"s3://{s3_bucket}/store").leases
    assert leases is not None
    with pytest.raises(LeaseLost, match="another machine took it over"):
        with leases.hold(KEY, lease_s=LEASE_S) as lease:
            taken = time.monotonic()
            assert leases._put(KEY, {"holder": "other", "host": "elsewhere", "lease_s": LEASE_S}) is not None
            wait_for(lambda: lease.lost, 10, "the refused renewal")
            assert time.monotonic() - taken < LEASE_S  # at the next beat, not after a lease of retries
            with pytest.raises(LeaseLost, match="not publishing"):
                lease.check()
    current = leases.info(KEY)
    assert current is not None and current.holder["holder"] == "other"  # the new holder's lease stays
    assert "could not renew" not in capsys.readouterr().err  # a refusal is not retried


def test_check_asks_the_store_whether_the_lease_is_still_ours(s3_bucket: str) -> None:
    leases = ArtifactStore(f"s3://{s3_bucket}/store").leases
    assert leases is not None
    leases.check(KEY)  # this thread holds no lease of KEY: nothing to check
    with pytest.raises(LeaseLost, match="it was removed"):
        with leases.hold(KEY, lease_s=60.0) as lease:  # the heartbeat will not beat during this test
            assert lease.etag is not None and leases.remove(KEY, lease.etag)  # e.g. `verify --repair` elsewhere
            with pytest.raises(LeaseLost, match=f"lost the lock of '{KEY}': it was removed; not publishing"):
                leases.check(KEY)
    assert leases.info(KEY) is None


def client_error(status: int, code: str, message: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject"
    )


def test_a_failed_condition_is_read_from_the_status_code_never_from_the_message() -> None:
    refused = client_error(412, "PreconditionFailed", "At least one of the preconditions you specified did not hold")
    conflict = client_error(409, "ConditionalRequestConflict", "A conflicting conditional operation is in progress")
    assert _condition_failed(refused) and _condition_failed(conflict)
    assert _condition_failed(translate_boto_error(refused)) and _condition_failed(translate_boto_error(conflict))
    assert isinstance(translate_boto_error(refused), OSError)  # what s3fs raises: the ClientError is its cause
    assert _condition_failed(client_error(412, "", ""))  # a bodiless answer still has its status

    busy = client_error(500, "InternalError", "We encountered an internal error (request 4120409). Please retry.")
    assert not _condition_failed(busy) and not _condition_failed(translate_boto_error(busy))
    assert not _condition_failed(OSError(5, "PUT bucket/locks/run-412.lease failed: 409 bytes sent"))
    assert not _condition_failed(EndpointConnectionError(endpoint_url="http://10.0.4.12:4090"))
    assert not _condition_failed(FileNotFoundError("locks/finetune-412.lease"))


def test_a_real_refused_condition_reads_as_one(s3_bucket: str) -> None:
    leases = ArtifactStore(f"s3://{s3_bucket}/store").leases
    assert leases is not None
    assert leases._put(KEY, {"holder": "a"}, IfNoneMatch="*") is not None
    assert leases._put(KEY, {"holder": "b"}, IfNoneMatch="*") is None  # exists
    assert leases._put(KEY, {"holder": "b"}, IfMatch='"0412"') is None  # another ETag: 412 from the store
    assert not leases.remove(KEY, '"0412"')
    assert leases.info(KEY).holder == {"holder": "a"}  # type: ignore[union-attr]
