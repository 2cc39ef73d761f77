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
multilayer EXR (uncompressed, 32-bit) written to the output's folder and parsed here with numpy, because
Blender 4.5 no longer fills the Viewer node's image in background renders.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import struct
import sys
import time
import traceback
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix

_EXR_BYTES = {0: 4, 1: 2, 2: 4}  # UINT, HALF, FLOAT
_EXR_DTYPES = {0: "<u4", 1: "<f2", 2: "<f4"}


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


def read_exr(path: Path) -> dict[str, np.ndarray]:
    """Channels of an uncompressed scanline OpenEXR file as (H, W) float32 arrays, row 0 at the top."""
    data = path.read_bytes()
    magic, version = struct.unpack_from("<ii", data, 0)
    if magic != 20000630 or version & 0x1A00:  # tiled (0x200), deep (0x800), multi-part (0x1000)
        raise ValueError(f"{path}: not a single-part scanline OpenEXR file")
    pos, header = 8, {}
    while data[pos] != 0:
        name_end = data.index(b"\0", pos)
        type_end = data.index(b"\0", name_end + 1)
        (size,) = struct.unpack_from("<i", data, type_end + 1)
        header[data[pos:name_end].decode()] = data[type_end + 5 : type_end + 5 + size]
        pos = type_end + 5 + size
    pos += 1
    if header["compression"] != b"\0":
        raise ValueError(f"{path}: compressed OpenEXR (write it with codec NONE)")
    channels, chlist = [], header["channels"]
    offset = 0
    while chlist[offset] != 0:
        name_end = chlist.index(b"\0", offset)
        (pixel_type,) = struct.unpack_from("<i", chlist, name_end + 1)
        channels.append((chlist[offset:name_end].decode(), pixel_type))
        offset = name_end + 1 + 16
    xmin, ymin, xmax, ymax = struct.unpack("<iiii", header["dataWindow"])
    width, height = xmax - xmin + 1, ymax - ymin + 1
    # one scanline per chunk: y, byte count, then each channel's row in channel-list order
    row = np.dtype([("y", "<i4"), ("size", "<i4")] + [(n, _EXR_DTYPES[t], (width,)) for n, t in channels])
    offsets = np.frombuffer(data, "<u8", height, pos)
    if not np.array_equal(np.diff(offsets), np.full(height - 1, row.itemsize)):
        raise ValueError(f"{path}: scanlines are not stored in order")
    table = np.frombuffer(data, row, height, int(offsets[0]))
    order = np.argsort(table["y"])
    return {name: table[name][order].astype(np.float32) for name, _ in channels}


def select_device(scene: bpy.types.Scene, device: str) -> str:
    if device != "cpu":
        preferences = bpy.context.preferences.addons["cycles"].preferences
        for backend in ("OPTIX", "CUDA", "HIP", "ONEAPI", "METAL"):
            try:
                preferences.compute_device_type = backend
            except TypeError:
                continue
            preferences.refresh_devices()
            if any(d.type == backend for d in preferences.devices):
                for d in preferences.devices:
                    d.use = d.type == backend
                scene.cycles.device = "GPU"
                return backend
        if device == "gpu":
            raise RuntimeError("device='gpu' but Cycles finds no GPU (OptiX, CUDA, HIP, oneAPI, Metal)")
    scene.cycles.device = "CPU"
    return "CPU"


def build_material(entry: dict, asset_dir: Path, with_colors: bool) -> bpy.types.Material:
    """Principled BSDF whose base colour is factor * texture(uv) * vertex colour, as glTF defines it."""
    material = bpy.data.materials.new(entry["name"] + (" (vertex colours)" if with_colors else ""))
    material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    bsdf = nodes["Principled BSDF"]
    bsdf.inputs["Metallic"].default_value = entry["metallic"]
    bsdf.inputs["Roughness"].default_value = entry["roughness"]
    factor = list(entry["base_color"][:3]) + [1.0]
    bsdf.inputs["Base Color"].default_value = factor
    colour = None  # the node socket carrying the colour so far
    if entry["texture"] is not None:
        texture = nodes.new("ShaderNodeTexImage")
        texture.image = bpy.data.images.load(str(asset_dir / entry["texture"]), check_existing=True)
        colour = texture.outputs["Color"]
    if with_colors:
        attribute = nodes.new("ShaderNodeVertexColor")
        attribute.layer_name = "Col"
        colour = _multiply(nodes, links, colour, attribute.outputs["Color"]) if colour else attribute.outputs["Color"]
    if colour is not None:
        scaled = nodes.new("ShaderNodeVectorMath")
        scaled.operation = "MULTIPLY"
        links.new(colour, scaled.inputs[0])
        scaled.inputs[1].default_value = factor[:3]
        links.new(scaled.outputs[0], bsdf.inputs["Base Color"])
    return material


def _multiply(nodes, links, a: bpy.types.NodeSocket, b: bpy.types.NodeSocket) -> bpy.types.NodeSocket:
    node = nodes.new("ShaderNodeVectorMath")
    node.operation = "MULTIPLY"
    links.new(a, node.inputs[0])
    links.new(b, node.inputs[1])
    return node.outputs[0]


def build_part(entry: dict, arrays: np.lib.npyio.NpzFile, materials: list[bpy.types.Material]) -> bpy.types.Object:
    key = entry["key"]
    vertices = arrays[f"{key}_vertices"].astype(np.float32)
    faces = arrays[f"{key}_faces"].astype(np.int32)
    face_materials = arrays[f"{key}_face_materials"]
    mesh = bpy.data.meshes.new(entry["name"])
    mesh.vertices.add(len(vertices))
    mesh.vertices.foreach_set("co", vertices.reshape(-1))  # (N, 3) -> (3N,)
    mesh.loops.add(faces.size)
    mesh.loops.foreach_set("vertex_index", faces.reshape(-1))  # (F, 3) -> (3F,)
    mesh.polygons.add(len(faces))
    mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    if entry["has_uvs"]:
        uvs = arrays[f"{key}_uvs"].astype(np.float32)[faces.reshape(-1)]  # per corner: (3F, 2)
        mesh.uv_layers.new(name="UVMap").data.foreach_set("uv", uvs.reshape(-1))  # (3F, 2) -> (6F,)
    if entry["has_colors"]:
        attribute = mesh.color_attributes.new("Col", "BYTE_COLOR", "POINT")
        colors = arrays[f"{key}_colors"].astype(np.float32) / 255.0  # (N, 4) sRGB
        attribute.data.foreach_set("color_srgb", colors.reshape(-1))  # (N, 4) -> (4N,)
    used = np.unique(face_materials)
    for material_id in used:
        mesh.materials.append(materials[int(material_id)])
    mesh.polygons.foreach_set("material_index", np.searchsorted(used, face_materials).astype(np.int32))
    mesh.polygons.foreach_set("use_smooth", np.ones(len(faces), dtype=bool))
    mesh.update()
    mesh.set_sharp_from_angle(angle=math.radians(30.0))  # smooth curved surfaces, keep hard edges hard
    obj = bpy.data.objects.new(entry["name"], mesh)
    obj.pass_index = entry["part_id"] + 1  # the object-index pass: 0 is background
    return obj


def build_scene(asset_dir: Path, config: dict, image_size: int) -> tuple[bpy.types.Scene, bpy.types.Object, str]:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    build_asset(scene, asset_dir)
    camera, device = build_stage(scene, config, image_size)
    return scene, camera, device


def build_asset(scene: bpy.types.Scene, asset_dir: Path) -> None:
    """The asset's parts (mesh objects) and their materials, linked into the scene."""
    description = json.loads((asset_dir / "scene.json").read_text())
    with np.load(asset_dir / "meshes.npz", allow_pickle=False) as arrays:
        variants: dict[tuple[int, bool], bpy.types.Material] = {}
        for entry in description["parts"]:
            with_colors = bool(entry["has_colors"])
            ids = np.unique(arrays[f"{entry['key']}_face_materials"])
            for i in ids:
                if (int(i), with_colors) not in variants:
                    variants[(int(i), with_colors)] = build_material(
                        description["materials"][int(i)], asset_dir, with_colors
                    )
            materials = {int(i): variants[(int(i), with_colors)] for i in ids}
            palette = [materials.get(i) for i in range(len(description["materials"]))]
            scene.collection.objects.link(build_part(entry, arrays, palette))


def clear_asset(scene: bpy.types.Scene) -> None:
    """Remove what build_asset made (objects, meshes, materials, images); light, camera and settings stay."""
    for obj in [o for o in scene.objects if o.type == "MESH"]:
        bpy.data.objects.remove(obj)
    for collection in (bpy.data.meshes, bpy.data.materials, bpy.data.images):
        for block in list(collection):
            collection.remove(block)


def build_stage(scene: bpy.types.Scene, config: dict, image_size: int) -> tuple[bpy.types.Object, str]:
    """World light, key light, camera and render settings: everything but the asset."""
    world = bpy.data.worlds.new("uniform")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (1.0, 1.0, 1.0, 1.0)
    world.node_tree.nodes["Background"].inputs["Strength"].default_value = config["ambient_strength"]
    scene.world = world
    sun = bpy.data.objects.new("key", bpy.data.lights.new("key", "SUN"))
    sun.data.energy = config["key_light_strength"]
    sun.data.angle = math.radians(45.0)  # soft shadows
    sun.rotation_euler = (math.radians(20.0), 0.0, math.radians(30.0))  # from above, slightly tilted
    scene.collection.objects.link(sun)

    camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    camera.data.sensor_fit = "HORIZONTAL"
    camera.data.sensor_width = 36.0
    camera.data.clip_start = 0.01
    camera.data.clip_end = 1000.0
    scene.collection.objects.link(camera)
    scene.camera = camera

    render = scene.render
    render.engine = "CYCLES"
    render.resolution_x = render.resolution_y = image_size
    render.resolution_percentage = 100
    render.pixel_aspect_x = render.pixel_aspect_y = 1.0
    render.film_transparent = True
    render.use_persistent_data = True
    render.use_compositing = False
    render.use_sequencer = False
    if config["threads"] > 0:
        render.threads_mode = "FIXED"
        render.threads = config["threads"]
    settings = render.image_settings
    settings.file_format = "OPEN_EXR_MULTILAYER"
    settings.exr_codec = "NONE"
    settings.color_depth = "32"
    scene.view_settings.view_transform = "Standard"
    cycles = scene.cycles
    cycles.use_adaptive_sampling = False
    cycles.seed = 0
    cycles.diffuse_bounces = cycles.glossy_bounces = min(config["max_bounces"], 4)
    cycles.transparent_max_bounces = 8
    cycles.denoiser = "OPENIMAGEDENOISE"
    cycles.denoising_prefilter = config["denoise_prefilter"]
    view_layer = scene.view_layers[0]
    view_layer.use_pass_z = view_layer.use_pass_normal = view_layer.use_pass_object_index = True
    view_layer.use_pass_diffuse_color = True  # the surface's own colour (albedo), before any light
    view_layer.pass_alpha_threshold = 0.0  # data passes from the first surface hit, whatever its alpha
    device = select_device(scene, config["device"])
    return camera, device


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


def _channels(exr: dict[str, np.ndarray], layer: str, names: str) -> np.ndarray:
    found = [k for k in exr if k.endswith(f".{layer}.{names[0]}")]
    if not found:
        raise KeyError(f"pass {layer!r} missing from the render (channels: {sorted(exr)})")
    prefix = found[0][: -len(names[0])]
    return np.stack([exr[prefix + c] for c in names], axis=-1)  # (H, W, C)


def _srgb(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(linear, 1.0 / 2.4) - 0.055)


def _linear(srgb: np.ndarray) -> np.ndarray:
    return np.where(srgb <= 0.04045, srgb / 12.92, np.power((srgb + 0.055) / 1.055, 2.4))


def colour_images(combined: np.ndarray, background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Premultiplied linear RGBA (H, W, 4) -> straight-alpha sRGB uint8 RGBA and RGB over `background`."""
    alpha = np.clip(combined[..., 3:], 0.0, 1.0)
    straight = np.where(alpha > 0, combined[..., :3] / np.maximum(alpha, 1e-6), 0.0)
    over = combined[..., :3] + (1.0 - alpha) * _linear(background)
    rgba = np.concatenate([_srgb(straight), alpha], axis=-1)
    return (np.round(rgba * 255.0).astype(np.uint8), np.round(_srgb(over) * 255.0).astype(np.uint8))


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
            rgba[i], rgb[i] = colour_images(_channels(render_exr(scene, exr_path), "Combined", "RGBA"), background)
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
        index = np.round(_channels(exr, "IndexOB", "X")[..., 0]).astype(np.int32)
        hit = index > 0
        part_id[i] = np.where(hit, index - 1, -1)
        depth[i] = np.where(hit, _channels(exr, "Depth", "Z")[..., 0], 0.0)
        normal = _channels(exr, "Normal", "XYZ")
        length = np.linalg.norm(normal, axis=-1, keepdims=True)
        normals[i] = np.where(hit[..., None] & (length > 0), normal / np.maximum(length, 1e-12), 0.0)
        surface = np.round(_srgb(_channels(exr, "DiffCol", "RGB")) * 255.0).astype(np.uint8)
        albedo[i] = np.where(hit[..., None], surface, 255)
        if config["passes_only"]:
            rgba[i], rgb[i] = colour_images(_channels(exr, "Combined", "RGBA"), background)
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
