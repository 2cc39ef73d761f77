"""The scene script's building of the scene in Blender: the asset's parts and their glTF-style materials, and the
stage around them (world and key light, camera, Cycles settings and device).

Part of the scene script (blender_scene.py imports it from its own folder): bpy, numpy and the standard library
only, so it also runs inside a standalone Blender 4.5.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import bpy
import numpy as np


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
