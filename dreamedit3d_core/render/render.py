"""The render stage: run the Blender scene script in a subprocess and return its arrays as Renders."""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from dreamedit3d_core.geometry.cameras import CameraSet
from dreamedit3d_core.ingest import IngestConfig, ingest_asset
from dreamedit3d_core.render.config import RenderConfig
from dreamedit3d_core.render.renders import Renders

SCENE_SCRIPT = Path(__file__).with_name("blender_scene.py")
# the modules the scene script imports from its own folder (plain imports, the folder on sys.path), named here as
# files so that the render stage's code version (tasks/code_versions.py) covers them as it covers the script
SCENE_MODULES = tuple(Path(__file__).with_name(name) for name in ("blender_build.py", "blender_exr.py"))
# the camera Blender reports must reproduce the CameraSet to this precision
_CAM2WORLD_TOLERANCE = 1e-5
_K_TOLERANCE_PX = 1e-3


class RenderError(RuntimeError):
    """Blender failed, or did not render with the cameras it was given."""


def _check_inputs(asset_dir: Path, cameras: CameraSet, config: RenderConfig) -> None:
    for name in ("scene.json", "meshes.npz"):
        if not (asset_dir / name).is_file():
            raise ValueError(f"{asset_dir}: not an ingested asset folder (no {name})")
    if cameras.image_size != config.image_size:
        raise ValueError(f"cameras are for {cameras.image_size} px but config.image_size is {config.image_size}")
    if cameras.cam2world.shape != (cameras.num_views, 4, 4) or cameras.K.shape != (cameras.num_views, 3, 3):
        raise ValueError(
            f"cameras need cam2world (V, 4, 4) and K (V, 3, 3), got {cameras.cam2world.shape}, {cameras.K.shape}"
        )
    if not np.allclose(cameras.K[:, 0, 0], cameras.K[:, 1, 1], rtol=1e-6):
        raise ValueError("cameras must have square pixels (fx == fy)")


def scene_command(
    asset_dir: Path, cameras_file: Path, config_file: Path, output: Path, config: RenderConfig
) -> list[str]:
    """The command line that runs the scene script: this Python's bpy, or a standalone Blender."""
    arguments = ["--asset-dir", str(asset_dir), "--cameras", str(cameras_file), "--config", str(config_file)]
    arguments += ["--output", str(output)]
    return _script_command(arguments, config)


def batch_command(jobs_file: Path, cameras_file: Path, config_file: Path, config: RenderConfig) -> list[str]:
    """The command line that runs the scene script on every job of JOBS.json in one process."""
    arguments = ["--jobs", str(jobs_file), "--cameras", str(cameras_file), "--config", str(config_file)]
    return _script_command(arguments, config)


def _script_command(arguments: list[str], config: RenderConfig) -> list[str]:
    if config.blender_executable:
        return [config.blender_executable, "-b", "--factory-startup", "--python", str(SCENE_SCRIPT), "--", *arguments]
    return [sys.executable, str(SCENE_SCRIPT), *arguments]


def _blender_env(work: Path) -> dict[str, str]:
    """The environment of a Blender process: its session temp folder (named `blender_` and a random suffix)
    inside `work`, which we remove, because the scene script leaves with os._exit, skipping Blender's own
    clean-up of it."""
    return {**os.environ, "TMPDIR": str(work), "TEMP": str(work), "TMP": str(work)}


def _write_inputs(work: Path, cameras: CameraSet, config: RenderConfig) -> tuple[Path, Path]:
    cameras_file = work / "cameras.npz"
    np.savez(cameras_file, cam2world=cameras.cam2world, K=cameras.K, image_size=np.int64(cameras.image_size))
    (work / "config.json").write_text(config.model_dump_json())
    return cameras_file, work / "config.json"


def _load_renders(output: Path, cameras: CameraSet, wall_s: float) -> Renders:
    """Read the scene script's RENDERS.npz; check that Blender used the cameras it was given."""
    with np.load(output, allow_pickle=False) as arrays:
        out = {key: arrays[key] for key in arrays.files}
    if np.abs(out["blender_cam2world"] - cameras.cam2world).max() > _CAM2WORLD_TOLERANCE or (
        np.abs(out["blender_K"] - cameras.K).max() > _K_TOLERANCE_PX
    ):
        raise RenderError(
            "Blender's camera differs from the CameraSet: "
            f"cam2world error {np.abs(out['blender_cam2world'] - cameras.cam2world).max():.2e}, "
            f"K error {np.abs(out['blender_K'] - cameras.K).max():.2e} px"
        )
    views = cameras.num_views
    stats = {
        "wall_s": wall_s,
        "build_s": float(out["build_s"]),
        "colour_s_per_view": float(out["colour_s"].sum() / views),
        "passes_s_per_view": float(out["passes_s"].sum() / views),
        "peak_rss_mb": float(out["peak_rss_mb"]),
        "cpu_s": float(out["cpu_s"]),  # CPU time of the Blender process, all threads
        "gpu": float(str(out["device"]) != "CPU"),
    }
    return Renders(
        rgba=out["rgba"],
        rgb_white=out["rgb_background"],
        depth=out["depth"],
        normals=out["normals"],
        part_id=out["part_id"],
        albedo=out["albedo"],
        stats=stats,
    )


def render_views(asset_dir: Path, cameras: CameraSet, config: RenderConfig) -> Renders:
    """Render an ingested asset folder (IngestedAsset.write) from every camera of `cameras`."""
    asset_dir = Path(asset_dir).resolve()
    _check_inputs(asset_dir, cameras, config)
    with tempfile.TemporaryDirectory(prefix="dreamedit3d-render-") as tmp:
        work = Path(tmp)
        cameras_file, config_file = _write_inputs(work, cameras, config)
        output = work / "renders.npz"
        command = scene_command(asset_dir, cameras_file, config_file, output, config)
        start = time.perf_counter()
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=config.timeout_s, check=False, env=_blender_env(work)
            )
        except subprocess.TimeoutExpired:
            raise RenderError(f"Blender did not finish rendering {asset_dir} within {config.timeout_s} s") from None
        wall_s = time.perf_counter() - start
        if result.returncode != 0 or not output.is_file():
            log = (result.stdout + result.stderr)[-3000:]
            raise RenderError(f"Blender failed on {asset_dir} (exit code {result.returncode}):\n{log}")
        return _load_renders(output, cameras, wall_s)


def render_mesh_file(
    path: Path, cameras: CameraSet, config: RenderConfig, ingest_config: IngestConfig | None = None
) -> Renders:
    """Render a mesh file (e.g. a reconstructed GLB) as it is: by default its coordinates are kept (no
    normalisation; glTF's +Y up is turned to +Z up), so a GLB written in the normalised frame renders in
    place. Part ids follow the file's parts (ingest order)."""
    asset = ingest_asset(path, ingest_config or IngestConfig(normalize=False))
    with tempfile.TemporaryDirectory(prefix="dreamedit3d-mesh-") as tmp:
        asset_dir = asset.write(Path(tmp) / "asset")
        return render_views(asset_dir, cameras, config)


# not anchored at the start: Blender's own (C-buffered) output may flush a partial line just before ours
_JOB_DONE = re.compile(r"job (\d+)/(\d+) done$")


def render_many(
    asset_dirs: Sequence[Path],
    cameras: CameraSet,
    config: RenderConfig,
    progress: Callable[[int, int], None] | None = None,
    chunk_size: int = 200,
) -> Iterator[Renders]:
    """Render many ingested asset folders, one Blender process per `chunk_size` of them, and yield their
    Renders in order as each is done; `progress(done, total)` is called after each. The renders equal
    `render_views`' (each asset is rendered in a fresh empty scene); `stats["wall_s"]` is the time from the
    previous asset's end to this one's. Raises RenderError naming the first asset that failed (the ones
    before it have been yielded), or when one asset takes longer than `config.timeout_s`."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    folders = [Path(folder).resolve() for folder in asset_dirs]
    for folder in folders:  # refuse bad input before starting anything
        _check_inputs(folder, cameras, config)
    for first in range(0, len(folders), chunk_size):
        chunk = folders[first : first + chunk_size]
        for index, renders in enumerate(_render_chunk(chunk, cameras, config)):
            if progress is not None:
                progress(first + index + 1, len(folders))
            yield renders


def _render_chunk(folders: list[Path], cameras: CameraSet, config: RenderConfig) -> Iterator[Renders]:
    with tempfile.TemporaryDirectory(prefix="dreamedit3d-render-many-") as tmp:
        work = Path(tmp)
        cameras_file, config_file = _write_inputs(work, cameras, config)
        outputs = [work / f"renders_{i:05d}.npz" for i in range(len(folders))]
        jobs = [{"asset_dir": str(f), "output": str(o)} for f, o in zip(folders, outputs, strict=True)]
        (work / "jobs.json").write_text(json.dumps(jobs))
        log_tail: collections.deque[str] = collections.deque(maxlen=60)
        with (work / "stderr.txt").open("w+") as stderr:
            process = subprocess.Popen(
                batch_command(work / "jobs.json", cameras_file, config_file, config),
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env=_blender_env(work),
            )
            try:
                done, tic = 0, time.perf_counter()
                while done < len(folders):
                    # the clock runs only while waiting for Blender, not while the caller holds a result
                    watchdog = threading.Timer(config.timeout_s, process.kill)
                    watchdog.start()
                    try:
                        line = process.stdout.readline()
                    finally:
                        watchdog.cancel()
                    if not line:
                        break
                    log_tail.append(line)
                    match = _JOB_DONE.search(line.strip())
                    if match is None:
                        continue
                    if int(match.group(1)) != done + 1 or not outputs[done].is_file():
                        raise RenderError(f"Blender's batch lost track at {folders[done]}: {line.strip()!r}")
                    renders = _load_renders(outputs[done], cameras, time.perf_counter() - tic)
                    outputs[done].unlink()
                    done += 1
                    yield renders
                    tic = time.perf_counter()
                code = process.wait()
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
            if done < len(folders):
                stderr.seek(0)
                log = ("".join(log_tail) + stderr.read())[-3000:]
                raise RenderError(
                    f"Blender failed on {folders[done]} (exit code {code}, asset {done + 1} of {len(folders)} "
                    f"in its batch; killed if it took over {config.timeout_s} s):\n{log}"
                )
