"""A real Prefect server, the `cpu` and `gpu` work pools, the deployments of prefect.yaml and one worker per pool.

What a production set-up does, on one machine: `prefect server start`, `prefect work-pool create`,
`prefect deploy --all`, `prefect worker start`. The batch runs as the `edit-library` deployment on the cpu
worker; its GPU stages run as runs of the `run-stage/gpu` deployment on the gpu worker (one run at a time). Then a worker
is killed with SIGKILL in the middle of a GPU stage, and the batch is run again: it resumes.

Every process started here is stopped here, by process group, also when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest
import yaml

from storage import ArtifactStore
from tasks.catalog import EDIT
from tests.helpers import CLI, FAST, FAST_CONFIG, PROJECT_ROOT

pytestmark = [pytest.mark.server, pytest.mark.slow]

PREFECT = str(Path(sys.executable).parent / "prefect")
# The stage the fault test kills a worker in, and settings that make it last long enough to be caught
# after its first in-stage checkpoint.
GPU_STAGES = tuple(stage.name for stage in EDIT.stages if stage.pool == "gpu")
KILLED_STAGE = "finetune"
SLOW_STAGE = {"finetune": {"steps": 6, "checkpoint_every": 1, "probe": {"timesteps": [500]}}}
T = TypeVar("T")


def poll(read: Callable[[], T], done: Callable[[T], bool], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last seen: {value!r}"[:3000])
        time.sleep(0.5)


def kill_tree(process: subprocess.Popen[bytes], sig: int) -> None:
    """Signal the process group of `process` and of each of its descendants.

    A process worker starts every flow run in a session of its own, so the worker's group alone would
    leave its flow runs running.
    """
    try:
        family = [process.pid, *(child.pid for child in psutil.Process(process.pid).children(recursive=True))]
    except psutil.NoSuchProcess:
        family = [process.pid]
    groups = set()
    for pid in family:
        with contextlib.suppress(ProcessLookupError):
            groups.add(os.getpgid(pid))
    groups.discard(os.getpgrp())  # never the test run's own group
    for group in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, sig)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Deployment:
    """One Prefect server with pools, deployments and workers; every process it started, to stop them all."""

    url: str
    env: dict[str, str]
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, command: list[str], **env: str) -> subprocess.Popen[bytes]:
        """Start a process in its own group; stderr goes to `<name>.log`, stdout to `<name>.out`."""
        process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env={**self.env, **env},
            stdout=(self.logs / f"{name}.out").open("ab"),
            stderr=(self.logs / f"{name}.log").open("ab"),
            start_new_session=True,  # its own process group: stopping it stops the flow runs it started
        )
        self.processes[name] = process
        return process

    def stop(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal the process and everything it started, then reap it (SIGKILL after 30 s)."""
        process = self.processes.pop(name)
        kill_tree(process, sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            kill_tree(process, signal.SIGKILL)
            process.wait(timeout=30)

    def stop_all(self) -> None:
        for name in reversed(list(self.processes)):  # workers and batches first, the server last
            self.stop(name, signal.SIGTERM if name == "server" else signal.SIGKILL)

    def log(self, name: str) -> str:
        """The end of what a process wrote, for failure messages."""
        paths = [self.logs / f"{name}.{suffix}" for suffix in ("out", "log")]
        return "\n".join(path.read_text(errors="replace")[-3000:] for path in paths if path.exists())

    def prefect(self, *args: str) -> str:
        result = subprocess.run(
            [PREFECT, *args], cwd=PROJECT_ROOT, env=self.env, capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, (
            f"prefect {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
        return result.stdout

    def client(self) -> Any:
        from prefect.client.orchestration import SyncPrefectClient

        return SyncPrefectClient(self.url)

    def start_worker(self, pool: str, label: str | None = None, **env: str) -> None:
        """A worker on `pool`, named `<label>-worker` (label: the pool's name unless given), with extra `env`."""
        label = label or pool
        # --limit 1 on the gpu pool: one flow run at a time per worker, i.e. per GPU.
        limit = ["--limit", "1"] if pool == "gpu" else []
        self.start(
            f"worker-{label}",
            [PREFECT, "worker", "start", "--pool", pool, "--name", f"{label}-worker", *limit],
            DREAMEDIT3D_WORKER=label,
            **env,
        )
        with self.client() as client:
            poll(
                lambda: [w.name for w in client.read_workers_for_work_pool(pool) if w.status.value == "ONLINE"],
                lambda online: f"{label}-worker" in online,
                180,
                f"the {label} worker to come online ({self.log(f'worker-{label}')})",
            )


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """`prefect server start` on a free port with its own PREFECT_HOME, both pools, every deployment, two workers."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {name: value for name, value in os.environ.items() if not name.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_API_URL=url,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT="false",
        PREFECT_WORKER_QUERY_SECONDS="1",  # workers look for new runs every second, not every 10
        PREFECT_WORKER_PREFETCH_SECONDS="1",
        PREFECT_LOGGING_LEVEL="INFO",
    )
    server = Deployment(url=url, env=env, logs=home)
    try:
        server.start("server", [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)])

        def healthy() -> bool:
            assert server.processes["server"].poll() is None, f"the server exited:\n{server.log('server')}"
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                    return response.status == 200
            except OSError:
                return False

        poll(healthy, bool, 240, "the Prefect server to answer /api/health")
        for pool in ("cpu", "gpu"):
            server.prefect("work-pool", "create", pool, "--type", "process")
        server.prefect("--no-prompt", "deploy", "--all")
        for pool in ("cpu", "gpu"):
            server.start_worker(pool)
        yield server
    finally:
        server.stop_all()


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, shared_assets: Path, chair: Path) -> Path:
    folder = tmp_path_factory.mktemp("library")
    (folder / "chair.glb").write_bytes(chair.read_bytes())
    (folder / "nested.glb").write_bytes((shared_assets / "good" / "nested.glb").read_bytes())
    (folder / "manifest.yaml").write_text(
        yaml.safe_dump(
            [
                {"asset": "chair.glb", "edits": ["a photo of <asset0> in gold"]},
                {"asset": "nested.glb", "edits": ["a photo of <asset0> in blue"]},
            ]
        )
    )
    (folder / "chair.yaml").write_text(
        yaml.safe_dump([{"asset": "chair.glb", "edits": ["a photo of <asset0> in gold"]}])
    )
    return folder


def wait_for_flow_run(client: Any, flow_run_id: Any, timeout: float) -> Any:
    return poll(
        lambda: client.read_flow_run(flow_run_id),
        lambda run: run.state is not None and run.state.is_final(),
        timeout,
        f"flow run {flow_run_id} to finish",
    )


def flow_run_logs(client: Any, flow_run_id: Any) -> str:
    from prefect.client.schemas.filters import LogFilter

    return "\n".join(log.message for log in client.read_logs(log_filter=LogFilter(flow_run_id={"any_": [flow_run_id]})))


def test_a_distributed_batch_runs_cpu_stages_on_the_cpu_pool_and_gpu_stages_on_the_gpu_pool(
    deployment: Deployment, library: Path, tmp_path: Path
) -> None:
    store = str(tmp_path / "store")
    with deployment.client() as client:
        batch = client.read_deployment_by_name("edit-library/edit-library")
        (nightly,) = batch.schedules
        assert nightly.schedule.cron == "0 2 * * *" and not nightly.active  # on once a manifest is set
        assert batch.work_pool_name == "cpu"
        assert GPU_STAGES == ("invert", "finetune", "sample")
        assert client.read_deployment_by_name("run-stage/gpu").work_pool_name == "gpu"
        parameters = {
            "manifest": str(library / "manifest.yaml"),
            "store": store,
            "preset": "tiny",
            "overrides": FAST,
            "max_concurrency": 2,
            "distributed": True,
        }
        run = client.create_flow_run_from_deployment(batch.id, parameters=parameters)
        run = wait_for_flow_run(client, run.id, 1500)
        assert run.state.is_completed(), (
            f"{run.state}\ncpu worker:\n{deployment.log('worker-cpu')}\ngpu worker:\n{deployment.log('worker-gpu')}"
        )
        assert run.work_pool_name == "cpu"
        assert "worker cpu" in poll(
            lambda: flow_run_logs(client, run.id), lambda text: "worker cpu" in text, 60, "logs"
        )

        rows = ArtifactStore(store).ledger.read().to_pylist()
        assert {row["status"] for row in rows} == {"computed"}
        assert set(Counter(row["key"] for row in rows).values()) == {1}
        assert {row["asset_id"].split("-")[0] for row in rows} == {"chair", "nested"}
        gpu_runs = []
        for row in rows:
            stage_run = client.read_flow_run(row["run_id"])
            if row["stage"] in GPU_STAGES:
                # A GPU stage ran as a run of the gpu deployment, named after the stage, picked up by the gpu worker ...
                assert stage_run.work_pool_name == "gpu", row
                assert client.read_deployment(stage_run.deployment_id).name == "gpu"
                assert stage_run.name == row["stage"]
                logs = poll(partial(flow_run_logs, client, stage_run.id), lambda t: "worker gpu" in t, 60, "logs")
                assert f"stage {row['stage']} on host" in logs
                gpu_runs.append(stage_run)
                # ... started from the asset's edit-asset run, itself a subflow of the batch.
                caller = client.read_flow_run(client.read_task_run(stage_run.parent_task_run_id).flow_run_id)
            else:
                # A CPU stage ran inside the asset's edit-asset run, in the batch's process on the cpu worker.
                assert stage_run.deployment_id is None and stage_run.work_pool_name is None
                caller = stage_run
            assert client.read_flow(caller.flow_id).name == "edit-asset", row
            assert client.read_task_run(caller.parent_task_run_id).flow_run_id == run.id, row
        assert len(gpu_runs) == 6  # invert, finetune, sample for each of the two assets
        # One GPU run at a time (the gpu worker's limit), although two assets ran at once.
        spans = sorted((r.start_time, r.end_time) for r in gpu_runs)
        assert all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:], strict=False))
    assert ArtifactStore(store).verify().clean

    # Local mode, same store: the same keys, so every stage is reused, nothing computed again.
    local = subprocess.run(
        [
            *CLI,
            "batch",
            str(library / "manifest.yaml"),
            "--store",
            store,
            "--config",
            str(FAST_CONFIG),
            "--json",
        ],
        cwd=PROJECT_ROOT,
        env=deployment.env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert local.returncode == 0, local.stderr
    assert {s["status"] for a in json.loads(local.stdout)["assets"] for s in a["stages"]} == {"cached"}
    assert len(ArtifactStore(store).ledger.read().to_pylist()) == 2 * len(rows)


def _fast_yaml(folder: Path, extra: dict[str, Any] | None = None) -> Path:
    path = folder / "fast.yaml"
    path.write_text(yaml.safe_dump({**FAST, **(extra or {})}))
    return path


@pytest.mark.parametrize("stage", [KILLED_STAGE])
def test_a_worker_killed_in_a_gpu_stage_fails_that_asset_and_the_rerun_resumes(
    deployment: Deployment, library: Path, tmp_path: Path, stage: str
) -> None:
    from prefect.client.schemas.filters import FlowRunFilter
    from prefect.states import Crashed

    store = tmp_path / "store"
    config = _fast_yaml(tmp_path, SLOW_STAGE)
    command = [*CLI, "batch", str(library / "chair.yaml"), "--store", str(store), "--config", str(config)]
    # One run per GPU stage: a crashed run is not started again (DREAMEDIT3D_REMOTE_ATTEMPTS, 3 by default).
    batch = deployment.start("batch-1", [*command, "--distributed", "--json"], DREAMEDIT3D_REMOTE_ATTEMPTS="1")
    with deployment.client() as client:
        # Wait for the stage's first in-stage checkpoint, then kill the gpu worker and its flow run.
        def checkpointed() -> bool:
            assert batch.poll() is None, f"the batch ended early:\n{deployment.log('batch-1')}"
            # a whole checkpoint: files of one still being written sit in a hidden .tmp-step-* folder
            return any((store / "scratch").glob(f"{stage}-*/step-*/state.json"))

        poll(checkpointed, bool, 900, f"a checkpoint of {stage} ({deployment.log('worker-gpu')})")
        deployment.stop("worker-gpu", signal.SIGKILL)  # the worker and the flow run it started: a lost machine
        assert not ArtifactStore(str(store)).list(stage=stage)

        # What Prefect's zombie detection (an automation on missing heartbeats) does: the lost run is Crashed.
        stage_deployment = client.read_deployment_by_name("run-stage/gpu")
        (lost,) = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                state={"type": {"any_": ["RUNNING"]}}, deployment_id={"any_": [stage_deployment.id]}
            )
        )
        client.set_flow_run_state(lost.id, Crashed(message="the gpu worker was lost"), force=True)
        batch.wait(timeout=300)
        deployment.processes.pop("batch-1")
        assert batch.returncode == 1, deployment.log("batch-1")
        payload = json.loads((deployment.logs / "batch-1.out").read_text())
        (asset,) = payload["assets"]
        assert asset["status"] == "failed"
        assert (
            f"stage '{stage}'" in asset["error"] and "Crashed" in asset["error"] and "worker was lost" in asset["error"]
        )

    deployment.start_worker("gpu")
    rerun = subprocess.run(
        [*command, "--distributed", "--json"],
        cwd=PROJECT_ROOT,
        env=deployment.env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert rerun.returncode == 0, rerun.stderr
    (asset,) = json.loads(rerun.stdout)["assets"]
    statuses = {s["stage"]: s["status"] for s in asset["stages"]}
    assert statuses[stage] == "computed"
    assert all(statuses[s] == "cached" for s in ("ingest", "render", "mask"))
    rows = ArtifactStore(str(store)).ledger.read().to_pylist()
    assert set(Counter(row["key"] for row in rows if row["status"] == "computed").values()) == {1}
    (resumed,) = [row for row in rows if row["stage"] == stage and row["status"] == "computed"]
    if stage == "finetune":  # in-stage checkpoints: the rerun went on from where the killed worker was
        assert json.loads(resumed["details"])["resumed_from_step"] > 0
    assert ArtifactStore(str(store)).verify().clean


def test_two_gpu_workers_share_an_s3_store_and_a_batch_survives_losing_one_in_the_middle_of_finetune(
    deployment: Deployment, s3_bucket: str, chair: Path, shared_assets: Path, tmp_path: Path
) -> None:
    """What issue 20's "Done when" asks: a loopback S3 server, the Prefect server, two gpu workers as separate
    processes with separate local caches, a 3-asset batch whose manifest and assets are in the bucket. One
    worker is killed (SIGKILL, worker and flow run) once its finetune has a checkpoint in the store. The
    batch waits for nobody: the lost worker's lock lapses, its run is marked Crashed and started again, the
    other worker takes the lock over and resumes phase 2 from the checkpoint. Every key is computed once."""
    import fsspec

    name = s3_bucket
    fs = fsspec.filesystem("s3")
    for source, target in [
        (chair, "lib/chair/chair.glb"),
        (shared_assets / "good" / "nested.glb", "lib/nested.glb"),
        (shared_assets / "good" / "two_objects.obj", "lib/two_objects.obj"),
    ]:
        fs.put_file(str(source), f"{name}/{target}")
    edits = ["a photo of <asset0> in gold", "a photo of <asset0> in blue", "a photo of <asset1> in red"]
    rows = "\n".join(f"{asset},{edit}" for asset, edit in zip(["chair/chair.glb", "nested.glb", "two_objects.obj"], edits, strict=True))
    fs.pipe_file(f"{name}/lib/manifest.csv", f"asset,edits\n{rows}\n".encode())
    root = f"s3://{name}/store"

    # The module's gpu worker makes way for two "machines": each its own cache, the same bucket and server.
    deployment.stop("worker-gpu", signal.SIGTERM)
    s3 = {key: os.environ[key] for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    timing = {"DREAMEDIT3D_LOCK_LEASE_S": "6", "DREAMEDIT3D_CHECKPOINT_SYNC_S": "1"}
    for label in ("gpu-a", "gpu-b"):
        deployment.start_worker("gpu", label, DREAMEDIT3D_CACHE=str(tmp_path / label), **s3, **timing)
    config = _fast_yaml(tmp_path, SLOW_STAGE)
    command = [*CLI, "batch", f"s3://{name}/lib/manifest.csv", "--store", root, "--config", str(config)]
    batch = deployment.start(
        "batch-s3", [*command, "--distributed", "--max-concurrency", "3", "--json"],
        DREAMEDIT3D_CACHE=str(tmp_path / "flows"), **s3, **timing,
    )  # fmt: skip
    try:
        # Wait for a finetune checkpoint in the store, and kill the machine whose run holds that finetune's lock.
        def checkpoint() -> str | None:
            assert batch.poll() is None, f"the batch ended early:\n{deployment.log('batch-s3')}"
            done = fs.glob(f"{name}/store/scratch/finetune-*/step-*.done", refresh=True)
            return done[0].split("/")[3] if done else None

        key = poll(checkpoint, bool, 900, "a finetune checkpoint in the store")
        holder = ArtifactStore(root).lock_info(key)
        assert holder is not None and not holder.lapsed
        lost = next(
            label
            for label in ("gpu-a", "gpu-b")
            if holder.holder["pid"] in {p.pid for p in psutil.Process(deployment.processes[f"worker-{label}"].pid).children(recursive=True)}
        )
        survivor = "gpu-b" if lost == "gpu-a" else "gpu-a"
        deployment.stop(f"worker-{lost}", signal.SIGKILL)
        assert (tmp_path / lost).is_dir()  # it had started phase 2 in its own cache

        batch.wait(timeout=900)
        assert batch.returncode == 0, deployment.log("batch-s3") + deployment.log(f"worker-{survivor}")
    finally:
        if "batch-s3" in deployment.processes:
            deployment.stop("batch-s3")
    payload = json.loads((deployment.logs / "batch-s3.out").read_text())
    assert [asset["status"] for asset in payload["assets"]] == ["completed"] * 3
    said = (deployment.logs / "batch-s3.log").read_text()
    assert "finetune: run finetune crashed (Crashed: its worker was lost" in said and "starting it again (run 2 of 3)" in said

    store = ArtifactStore(root)
    rows = store.ledger.read().to_pylist()
    computed = [row for row in rows if row["status"] == "computed"]
    assert set(Counter(row["key"] for row in computed).values()) == {1}  # every key computed once
    assert len({row["asset_id"] for row in computed}) == 3
    (resumed,) = [row for row in computed if row["key"] == key]
    assert json.loads(resumed["details"])["resumed_from_step"] > 0  # phase 2 went on from the lost one's checkpoint
    with deployment.client() as client:
        runs = client.read_flow_runs()
        stage_runs = [run for run in runs if run.name == "finetune" and run.parameters.get("call", {}).get("store") == root]
        assert sorted(run.state.type.value for run in stage_runs).count("CRASHED") == 1
        (crashed,) = [run for run in stage_runs if run.state.is_crashed()]
        assert "its worker was lost" in (crashed.state.message or "")
        assert f"worker {survivor}" in poll(partial(flow_run_logs, client, resumed["run_id"]), lambda t: "worker" in t, 60, "logs")
    assert store.lock_info(key) is None
    assert store.verify().clean
