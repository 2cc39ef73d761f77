"""Blender side of the render stage: build an ingested asset's scene once, then render every camera.

Always run in a process of its own (bpy crashes at interpreter exit), in either of two ways:

    python dreamedit3d_core/render/blender_scene.py --asset-dir DIR --cameras CAMERAS.npz \
        --config CONFIG.json --output RENDERS.npz
    blender -b --factory-startup --python dreamedit3d_core/render/blender_scene.py -- --asset-dir DIR ...

Batch mode renders many assets in one process (one Blender start-up for all): `--jobs JOBS.json` instead of
`--asset-dir` and `--output`, JOBS.json being a list of {"asset_dir": ..., "output": ...}. Each job removes
the previous asset's objects, meshes, materials and images (no memory growth) and builds its own into the
same stage (lights, camera, settings), writes its RENDERS.npz as a single run would, then prints "job N/TOTAL done" on stdout; a failing
job prints "job N/TOTAL failed: ASSET_DIR" and ends the process with exit code 1.

It uses only bpy, numpy and the standard library, so it also runs inside a standalone Blender 4.5.
Inputs: an asset folder written by `IngestedAsset.write` (scene.json, meshes.npz, textures/);
CAMERAS.npz with `cam2world` (V, 4, 4) in Blender world axes, `K` (V, 3, 3) and `image_size`;
CONFIG.json with RenderConfig's fields. Output RENDERS.npz (np.load(allow_pickle=False)): `rgba` (V, H, W, 4)
uint8 straight alpha, `rgb_background` (V, H, W, 3) uint8, `depth` (V, H, W) float32 planar (0 = background),
`normals` (V, H, W, 3) float32 world space, `part_id` (V, H, W) int32 (-1 = background), `albedo` (V, H, W, 3)
uint8 sRGB (the diffuse colour pass: the surface's colour before light; white on background), the camera Blender
actually used (`blender_cam2world`, `blender_K`) and timings.

Each view is rendered twice with Cycles on the same scene, which is built once and kept between renders
(persistent data; the frame never changes and no image is loaded after the build, both of which would make
Cycles reload the geometry): a colour render (`samples`, denoiser, 1.5 px pixel filter) and a 1-sample
render through pixel centres (0.01 px box filter) for depth, normals, part ids and albedo, so that those passes
are exactly the rays of `cameras.pixel_rays`. `passes_only` keeps only the second. Passes are read from a
multilayer EXR (uncompressed, 32-bit) written to the output's folder and parsed with numpy, because
Blender 4.5 no longer fills the Viewer node's image in background renders.

The scene is built by blender_build.py and the EXR files are read by blender_exr.py, modules of this folder that
this script imports (putting the folder on sys.path: Blender's `--python` runs a file without doing so).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix

# `python FILE` puts FILE's folder first on sys.path, `blender --python FILE` does not: the sibling modules below
# are found there either way
_FOLDER = str(Path(__file__).resolve().parent)
if _FOLDER not in sys.path:
    sys.path.insert(0, _FOLDER)

from blender_build import build_asset, build_scene, clear_asset  # noqa: E402
from blender_exr import colour_images, pass_channels, read_exr, to_srgb  # noqa: E402


def parse_args(argv: list[str]) -> argparse.Namespace:
    # under `blender ... --python script -- ARGS` our arguments follow the `--`
    argv = argv[argv.index("--") + 1 :] if "--" in argv else argv[1:]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--asset-dir", type=Path)
    parser.add_argument("--cameras", type=Path, required=True)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--jobs", type=Path, help='JSON list of {"asset_dir": ..., "output": ...}')
    args = parser.parse_args(argv)
    if args.jobs is not None:
        if args.asset_dir is not None or args.output is not None:
            parser.error("--jobs replaces --asset-dir and --output: give one or the other")
    elif args.asset_dir is None or args.output is None:
        parser.error("give --asset-dir and --output (one asset), or --jobs (many)")
    return args


def set_mode(scene: bpy.types.Scene, config: dict, passes: bool) -> None:
    cycles = scene.cycles
    cycles.samples = 1 if passes else config["samples"]
    cycles.max_bounces = 0 if passes else config["max_bounces"]  # the passes need only the first hit
    cycles.use_denoising = (not passes) and config["denoise"]
    cycles.pixel_filter_type = "BOX" if passes else "BLACKMAN_HARRIS"
    cycles.filter_width = 0.01 if passes else config["filter_width"]


def place_camera(camera: bpy.types.Object, cam2world: np.ndarray, K: np.ndarray, image_size: int) -> None:
    if abs(K[0, 0] - K[1, 1]) > 1e-6 * K[0, 0]:
        raise ValueError(f"non-square pixels (fx={K[0, 0]}, fy={K[1, 1]}) are not supported")
    camera.matrix_world = Matrix(cam2world.tolist())
    camera.data.lens = K[0, 0] * camera.data.sensor_width / image_size
    # Blender's shift is in units of the image width; it moves the window, so the principal point moves back
    camera.data.shift_x = (0.5 * image_size - K[0, 2]) / image_size
    camera.data.shift_y = (K[1, 2] - 0.5 * image_size) / image_size


def blender_camera(scene: bpy.types.Scene, camera: bpy.types.Object, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """cam2world and K as Blender will render them (from its own projection matrix)."""
    projection = np.array(camera.calc_matrix_camera(bpy.context.evaluated_depsgraph_get(), x=image_size, y=image_size))
    half = 0.5 * image_size
    K = np.array(
        [
            [projection[0, 0] * half, 0.0, half * (1.0 - projection[0, 2])],
            [0.0, projection[1, 1] * half, half * (1.0 + projection[1, 2])],
            [0.0, 0.0, 1.0],
        ]
    )
    return np.array(camera.matrix_world), K


def render_exr(scene: bpy.types.Scene, path: Path) -> dict[str, np.ndarray]:
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    return read_exr(path)


def render_scene(
    stage: tuple[bpy.types.Scene, bpy.types.Object, str],
    build_s: float,
    output: Path,
    cameras: tuple[np.ndarray, np.ndarray, int],
    config: dict,
) -> None:
    """Render the built scene from every camera and write RENDERS.npz (see above) to `output`."""
    scene, camera, device = stage
    cam2world, intrinsics, image_size = cameras
    exr_path = output.parent / f"{output.stem}.exr"
    views = len(cam2world)
    colour_s, passes_s = np.zeros(views), np.zeros(views)
    background = np.asarray(config["background"], dtype=np.float64)
    rgba = np.zeros((views, image_size, image_size, 4), np.uint8)
    rgb = np.zeros((views, image_size, image_size, 3), np.uint8)
    blender_cam2world, blender_K = np.zeros((views, 4, 4)), np.zeros((views, 3, 3))
    if not config["passes_only"]:
        set_mode(scene, config, passes=False)
        for i in range(views):
            tic = time.perf_counter()
            place_camera(camera, cam2world[i], intrinsics[i], image_size)
            rgba[i], rgb[i] = colour_images(pass_channels(render_exr(scene, exr_path), "Combined", "RGBA"), background)
            colour_s[i] = time.perf_counter() - tic
    set_mode(scene, config, passes=True)
    depth = np.zeros((views, image_size, image_size), np.float32)
    normals = np.zeros((views, image_size, image_size, 3), np.float32)
    part_id = np.full((views, image_size, image_size), -1, np.int32)
    albedo = np.full((views, image_size, image_size, 3), 255, np.uint8)
    for i in range(views):
        tic = time.perf_counter()
        place_camera(camera, cam2world[i], intrinsics[i], image_size)
        blender_cam2world[i], blender_K[i] = blender_camera(scene, camera, image_size)
        exr = render_exr(scene, exr_path)
        index = np.round(pass_channels(exr, "IndexOB", "X")[..., 0]).astype(np.int32)
        hit = index > 0
        part_id[i] = np.where(hit, index - 1, -1)
        depth[i] = np.where(hit, pass_channels(exr, "Depth", "Z")[..., 0], 0.0)
        normal = pass_channels(exr, "Normal", "XYZ")
        length = np.linalg.norm(normal, axis=-1, keepdims=True)
        normals[i] = np.where(hit[..., None] & (length > 0), normal / np.maximum(length, 1e-12), 0.0)
        surface = np.round(to_srgb(pass_channels(exr, "DiffCol", "RGB")) * 255.0).astype(np.uint8)
        albedo[i] = np.where(hit[..., None], surface, 255)
        if config["passes_only"]:
            rgba[i], rgb[i] = colour_images(pass_channels(exr, "Combined", "RGBA"), background)
        passes_s[i] = time.perf_counter() - tic
    exr_path.unlink(missing_ok=True)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    np.savez(
        output,
        rgba=rgba,
        rgb_background=rgb,
        depth=depth,
        normals=normals,
        part_id=part_id,
        albedo=albedo,
        blender_cam2world=blender_cam2world,
        blender_K=blender_K,
        build_s=np.float64(build_s),
        colour_s=colour_s,
        passes_s=passes_s,
        peak_rss_mb=np.float64(usage.ru_maxrss / 1024.0),
        cpu_s=np.float64(usage.ru_utime + usage.ru_stime),
        device=np.array(device),
    )


def main() -> None:
    args = parse_args(sys.argv)
    config = json.loads(args.config.read_text())
    with np.load(args.cameras, allow_pickle=False) as arrays:
        cameras = (arrays["cam2world"], arrays["K"], int(arrays["image_size"]))
    if args.jobs is None:
        start = time.perf_counter()
        stage = build_scene(args.asset_dir, config, cameras[2])
        render_scene(stage, time.perf_counter() - start, args.output, cameras, config)
        return
    jobs = json.loads(args.jobs.read_text())
    stage = None
    for number, job in enumerate(jobs, start=1):
        try:
            start = time.perf_counter()
            if stage is None:
                stage = build_scene(Path(job["asset_dir"]), config, cameras[2])
            else:  # swap the asset only: a factory reset and a new stage would cost more than the renders
                clear_asset(stage[0])
                build_asset(stage[0], Path(job["asset_dir"]))
            render_scene(stage, time.perf_counter() - start, Path(job["output"]), cameras, config)
        except Exception:
            print(f"job {number}/{len(jobs)} failed: {job['asset_dir']}", flush=True)
            raise
        print(f"job {number}/{len(jobs)} done", flush=True)


if __name__ == "__main__":
    try:
        main()
    except BaseException:  # report, then leave without running bpy's crashing exit handlers
        traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
