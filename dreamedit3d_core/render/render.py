"""The render stage: run the Blender scene script in a subprocess and return its arrays as Renders."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dreamedit3d_core.geometry.cameras import CameraSet
from dreamedit3d_core.ingest import IngestConfig, ingest_asset
from dreamedit3d_core.render.config import RenderConfig
from dreamedit3d_core.render.renders import Renders

SCENE_SCRIPT = Path(__file__).with_name("blender_scene.py")
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
    if config.blender_executable:
        return [config.blender_executable, "-b", "--factory-startup", "--python", str(SCENE_SCRIPT), "--", *arguments]
    return [sys.executable, str(SCENE_SCRIPT), *arguments]


def render_views(asset_dir: Path, cameras: CameraSet, config: RenderConfig) -> Renders:
    """Render an ingested asset folder (IngestedAsset.write) from every camera of `cameras`."""
    asset_dir = Path(asset_dir).resolve()
    _check_inputs(asset_dir, cameras, config)
    with tempfile.TemporaryDirectory(prefix="dreamedit3d-render-") as tmp:
        work = Path(tmp)
        cameras_file = work / "cameras.npz"
        np.savez(cameras_file, cam2world=cameras.cam2world, K=cameras.K, image_size=np.int64(cameras.image_size))
        (work / "config.json").write_text(config.model_dump_json())
        output = work / "renders.npz"
        command = scene_command(asset_dir, cameras_file, work / "config.json", output, config)
        start = time.perf_counter()
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=config.timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise RenderError(f"Blender did not finish rendering {asset_dir} within {config.timeout_s} s") from None
        wall_s = time.perf_counter() - start
        if result.returncode != 0 or not output.is_file():
            log = (result.stdout + result.stderr)[-3000:]
            raise RenderError(f"Blender failed on {asset_dir} (exit code {result.returncode}):\n{log}")
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
        stats=stats,
    )


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
