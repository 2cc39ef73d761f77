"""The files in the ingest cache key are exactly the files the reader opens, and none lies outside the asset.

Two independent observers watch `ingest_asset`: its `opened` recorder (what went through the resolver) and a
Python audit hook that sees every file the process opens. Both must equal `source_files`.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from dreamedit3d_core.ingest import AssetError, ingest_asset, make_example_asset
from dreamedit3d_core.ingest.source_files import source_files
from dreamedit3d_core.ingest.reference_resolver import SourceFile

_WATCHES: list[list[str]] = []


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _WATCHES and isinstance(args[0], str | bytes | os.PathLike):
        _WATCHES[-1].append(os.path.abspath(os.fsdecode(args[0])))


sys.addaudithook(_audit)  # audit hooks cannot be removed; it records only inside `_files_opened_in`


@contextmanager
def _files_opened_in(folder: Path) -> Iterator[list[str]]:
    """Every file under `folder` that the process opens inside the block (as absolute path strings)."""
    seen: list[str] = []
    _WATCHES.append(seen)
    inside: list[str] = []
    try:
        yield inside
    finally:
        _WATCHES.pop()
        inside.extend(p for p in seen if Path(p).is_relative_to(folder.absolute()))


def _relatives(paths: list[str], asset_folder: Path) -> set[str]:
    return {Path(p).relative_to(asset_folder.absolute()).as_posix() for p in paths}


def _assert_key_is_what_ingest_opens(path: Path, tree: Path | None = None) -> list[str]:
    """source_files(path) == files ingest_asset opened (recorder and audit hook); returns the relative names."""
    listed = source_files(path)
    relatives = [f.relative for f in listed]
    assert relatives[0] == path.name and path.name not in relatives[1:]
    assert relatives[1:] == sorted(set(relatives[1:])), relatives
    assert all(f.path == path.parent / f.relative and f.path.is_file() for f in listed)
    recorded: list[SourceFile] = []
    with _files_opened_in(tree or path.parent) as seen:
        ingest_asset(path, opened=recorded)
    assert recorded[0].relative == path.name
    assert {f.relative for f in recorded} == set(relatives)
    assert _relatives(seen, path.parent) == set(relatives)  # also fails if a file outside path.parent was opened
    return relatives


def _png(path: Path, colour: tuple[int, int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), colour).save(path)
    return path


def _quad_obj(libraries: str, materials: list[str]) -> str:
    """An OBJ with one textured quad per material, side by side."""
    lines = [f"mtllib {libraries}", "vt 0 0", "vt 1 0", "vt 1 1", "vt 0 1"]
    for k, material in enumerate(materials):
        lines += [f"v {k} 0 0", f"v {k + 1} 0 0", f"v {k + 1} 1 0", f"v {k} 1 0", f"o quad{k}", f"usemtl {material}"]
        lines.append(f"f {4 * k + 1}/1 {4 * k + 2}/2 {4 * k + 3}/3 {4 * k + 4}/4")
    return "\n".join(lines) + "\n"


def _texture_colours(asset: object) -> dict[str, tuple[int, ...]]:
    return {m.name: tuple(int(c) for c in m.texture[0, 0][:3]) for m in asset.materials if m.texture is not None}


def _split_glb(data: bytes) -> tuple[dict, bytes]:
    (json_length,) = struct.unpack_from("<I", data, 12)
    (bin_length,) = struct.unpack_from("<I", data, 20 + json_length)
    start = 20 + json_length + 8
    return json.loads(data[20 : 20 + json_length]), data[start : start + bin_length]


def _join_glb(document: dict, binary: bytes) -> bytes:
    text = json.dumps(document).encode()
    text += b" " * (-len(text) % 4)
    total = 12 + 8 + len(text) + 8 + len(binary)
    chunks = struct.pack("<I4s", len(text), b"JSON") + text + struct.pack("<I4s", len(binary), b"BIN\0") + binary
    return struct.pack("<4sII", b"glTF", 2, total) + chunks


def _chair_with_image(tmp_path: Path, image_uri: str) -> tuple[dict, bytes]:
    """The example chair's glTF document, its seat textured from `image_uri`, and its binary buffer."""
    document, binary = _split_glb(make_example_asset(tmp_path / "build" / "chair.glb").read_bytes())
    document.update(images=[{"uri": image_uri}], textures=[{"source": 0}])
    document["materials"][0]["pbrMetallicRoughness"]["baseColorTexture"] = {"index": 0}
    return document, binary


def _digests(path: Path) -> dict[str, str]:
    return {f.relative: hashlib.sha256(f.path.read_bytes()).hexdigest() for f in source_files(path)}


def test_every_good_asset_lists_exactly_the_files_ingest_opens(shared_assets: Path) -> None:
    good = shared_assets / "good"
    mains = sorted(p for p in good.iterdir() if p.suffix.lower() in (".glb", ".gltf", ".obj", ".ply", ".stl"))
    assert {".glb", ".gltf", ".obj"} <= {p.suffix.lower() for p in mains}
    listed = {p.name: _assert_key_is_what_ingest_opens(p) for p in mains}
    assert listed["fuze.obj"] == ["fuze.obj", "fuze uv.jpg", "fuze.obj.mtl"]  # `mtllib ./fuze.obj.mtl`
    assert listed["TestScene.gltf"] == ["TestScene.gltf", "TestScene.bin"]
    assert listed["Duck.glb"] == ["Duck.glb"]


def test_source_files_reads_only_the_files_that_hold_references(shared_assets: Path) -> None:
    good = shared_assets / "good"
    for name, read in [("fuze.obj", {"fuze.obj", "fuze.obj.mtl"}), ("TestScene.gltf", {"TestScene.gltf"})]:
        with _files_opened_in(good) as seen:
            source_files(good / name)
        assert _relatives(seen, good) == read  # no texture or buffer is opened to list it


def test_obj_with_two_libraries_on_one_line_and_a_library_name_with_a_space(tmp_path: Path) -> None:
    _png(tmp_path / "wood.png", (200, 120, 40))
    (tmp_path / "a.mtl").write_text("newmtl red\nKd 1 0 0\n")
    (tmp_path / "b.mtl").write_text("newmtl wood\nmap_Kd wood.png\n")
    (tmp_path / "two.obj").write_text(_quad_obj("a.mtl b.mtl", ["red", "wood"]))
    assert _assert_key_is_what_ingest_opens(tmp_path / "two.obj") == ["two.obj", "a.mtl", "b.mtl", "wood.png"]
    asset = ingest_asset(tmp_path / "two.obj")
    assert [m.name for m in asset.materials] == ["red", "wood"] and asset.warnings == []
    assert _texture_colours(asset) == {"wood": (200, 120, 40)}

    (tmp_path / "my materials.mtl").write_text("newmtl wood\nmap_Kd ./wood.png\n")
    (tmp_path / "spaced.obj").write_text(_quad_obj("my materials.mtl", ["wood"]))
    assert _assert_key_is_what_ingest_opens(tmp_path / "spaced.obj") == ["spaced.obj", "my materials.mtl", "wood.png"]


def test_texture_after_map_options_found_by_its_base_name(tmp_path: Path) -> None:
    # written on another machine: options, a backslash path, and the image lies beside the MTL instead
    (tmp_path / "mats").mkdir()
    (tmp_path / "mats" / "chair.mtl").write_text(
        "map_Kd ignored.png\n"  # before any newmtl: the reader ignores it, so it is not a source
        "newmtl wood\nKd 1 1 1\nmap_Kd -s 1 1 1 -bm 0.5 textures\\wood grain.png\n"
    )
    _png(tmp_path / "mats" / "wood grain.png", (90, 60, 30))
    _png(tmp_path / "mats" / "ignored.png", (0, 0, 0))
    (tmp_path / "chair.obj").write_text(_quad_obj("mats\\chair.mtl", ["wood"]))
    relatives = _assert_key_is_what_ingest_opens(tmp_path / "chair.obj")
    assert relatives == ["chair.obj", "mats/chair.mtl", "mats/wood grain.png"]
    assert _texture_colours(ingest_asset(tmp_path / "chair.obj")) == {"wood": (90, 60, 30)}


def test_paths_of_the_exporting_machine_are_found_by_base_name_inside_the_folder(tmp_path: Path) -> None:
    # exporters write absolute paths of the machine they ran on: only the folder's own file of that name is used
    asset = tmp_path / "asset"
    _png(asset / "wood.png", (10, 200, 30))
    _png(tmp_path / "wood.png", (255, 0, 0))  # outside the asset's folder: never opened
    (asset / "chair.mtl").write_text(
        "newmtl wood\nmap_Kd C:\\Users\\artist\\textures\\wood.png\n"
        "newmtl plank\nmap_Kd ../wood.png\n"
    )
    (asset / "chair.obj").write_text(_quad_obj("chair.mtl", ["wood", "plank"]))
    assert _assert_key_is_what_ingest_opens(asset / "chair.obj", tree=tmp_path) == ["chair.obj", "chair.mtl", "wood.png"]
    assert _texture_colours(ingest_asset(asset / "chair.obj")) == {"wood": (10, 200, 30), "plank": (10, 200, 30)}


def test_textures_with_one_base_name_in_two_folders_are_distinct_sources(tmp_path: Path) -> None:
    _png(tmp_path / "a" / "tex.png", (255, 0, 0))
    _png(tmp_path / "b" / "tex.png", (0, 0, 255))
    (tmp_path / "both.mtl").write_text("newmtl first\nmap_Kd a/tex.png\nnewmtl second\nmap_Kd b/tex.png\n")
    (tmp_path / "both.obj").write_text(_quad_obj("both.mtl", ["first", "second"]))
    (tmp_path / "one.mtl").write_text("newmtl second\nmap_Kd b\\tex.png\n")
    (tmp_path / "one.obj").write_text(_quad_obj("one.mtl", ["second"]))
    assert _assert_key_is_what_ingest_opens(tmp_path / "both.obj") == ["both.obj", "a/tex.png", "b/tex.png", "both.mtl"]
    assert _assert_key_is_what_ingest_opens(tmp_path / "one.obj") == ["one.obj", "b/tex.png", "one.mtl"]
    assert _texture_colours(ingest_asset(tmp_path / "both.obj")) == {"first": (255, 0, 0), "second": (0, 0, 255)}
    digests = _digests(tmp_path / "both.obj")
    assert digests["a/tex.png"] != digests["b/tex.png"]


def test_gltf_with_external_buffer_and_percent_encoded_image_in_subfolders(tmp_path: Path) -> None:
    document, binary = _chair_with_image(tmp_path, "textures/wood%20grain%231.png")
    document["buffers"][0]["uri"] = "data%20files/chair.bin"
    (tmp_path / "data files").mkdir()
    (tmp_path / "data files" / "chair.bin").write_bytes(binary)
    _png(tmp_path / "textures" / "wood grain#1.png", (10, 20, 30))
    (tmp_path / "chair.gltf").write_text(json.dumps(document))
    relatives = _assert_key_is_what_ingest_opens(tmp_path / "chair.gltf")
    assert relatives == ["chair.gltf", "data files/chair.bin", "textures/wood grain#1.png"]
    asset = ingest_asset(tmp_path / "chair.gltf")
    assert [p.name for p in asset.parts][0] == "seat" and asset.warnings == []


def test_glb_with_an_external_image(tmp_path: Path) -> None:
    document, binary = _chair_with_image(tmp_path, "textures/wood%20grain.png")
    _png(tmp_path / "textures" / "wood grain.png", (10, 20, 30))
    (tmp_path / "chair.glb").write_bytes(_join_glb(document, binary))
    assert _assert_key_is_what_ingest_opens(tmp_path / "chair.glb") == ["chair.glb", "textures/wood grain.png"]
    (tmp_path / "textures" / "wood grain.png").unlink()  # a missing image is a warning, and no source
    assert _assert_key_is_what_ingest_opens(tmp_path / "chair.glb") == ["chair.glb"]
    assert any("'textures/wood%20grain.png' not found" in w for w in ingest_asset(tmp_path / "chair.glb").warnings)


def test_ply_and_stl_are_their_own_only_source(tmp_path: Path) -> None:
    box = trimesh.creation.box()
    (tmp_path / "box.ply").write_bytes(box.export(file_type="ply"))
    (tmp_path / "box.stl").write_bytes(box.export(file_type="stl"))
    assert _assert_key_is_what_ingest_opens(tmp_path / "box.ply") == ["box.ply"]
    assert _assert_key_is_what_ingest_opens(tmp_path / "box.stl") == ["box.stl"]


def test_broken_files_list_only_what_exists_and_never_raise(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes()
    files = {"noise.glb": noise, "noise.obj": noise, "empty.obj": b"", "bad.gltf": b"{not json"}
    files["lost.gltf"] = json.dumps({"asset": {"version": "2.0"}, "buffers": [{"uri": "lost.bin", "byteLength": 4}]})
    for name, content in files.items():
        (tmp_path / name).write_bytes(content.encode() if isinstance(content, str) else content)
        assert [f.relative for f in source_files(tmp_path / name)] == [name]
        with pytest.raises(AssetError):
            ingest_asset(tmp_path / name)
    (tmp_path / "odd.mtl").write_text("newmtl odd\nmap_Kd missing.png\n")
    (tmp_path / "odd.obj").write_text(_quad_obj("odd.mtl missing.mtl", ["odd"]))
    assert _assert_key_is_what_ingest_opens(tmp_path / "odd.obj") == ["odd.obj", "odd.mtl"]


def _escaping_assets(root: Path) -> dict[str, tuple[Path, str]]:
    """Assets under root/asset whose reference (second item, as written) names a file in root/outside."""
    asset, outside = root / "asset", root / "outside"
    _png(outside / "x.png", (1, 2, 3))
    (outside / "x.mtl").write_text("newmtl x\nKd 1 0 0\n")
    (outside / "x.bin").write_bytes(b"\0" * 512)
    asset.mkdir()
    (asset / "link.png").symlink_to(outside / "x.png")
    (asset / "linked").symlink_to(outside, target_is_directory=True)
    document, binary = _chair_with_image(root, "placeholder.png")
    references = {
        "parent_texture": ("mtl", "../outside/x.png"),
        "absolute_library": ("obj", str(outside / "x.mtl")),
        "windows_drive_texture": ("mtl", "C:\\outside\\x.png"),
        "symlinked_texture": ("mtl", "link.png"),
        "texture_in_symlinked_folder": ("mtl", "linked/x.png"),
        "file_uri_image": ("glb", (outside / "x.png").as_uri()),
        "percent_encoded_parent_image": ("glb", "%2E%2E/outside/x.png"),
        "parent_buffer": ("gltf", "../outside/x.bin"),
    }
    cases = {}
    for case, (kind, reference) in references.items():
        if kind == "obj":
            (asset / f"{case}.obj").write_text(_quad_obj(reference, ["x"]))
            cases[case] = (asset / f"{case}.obj", reference)
        elif kind == "mtl":
            (asset / f"{case}.mtl").write_text(f"newmtl x\nmap_Kd {reference}\n")
            (asset / f"{case}.obj").write_text(_quad_obj(f"{case}.mtl", ["x"]))
            cases[case] = (asset / f"{case}.obj", reference)
        elif kind == "glb":
            document["images"][0]["uri"] = reference
            (asset / f"{case}.glb").write_bytes(_join_glb(document, binary))
            cases[case] = (asset / f"{case}.glb", reference)
        else:
            gltf, _ = _split_glb((root / "build" / "chair.glb").read_bytes())
            gltf["buffers"][0]["uri"] = reference
            (asset / f"{case}.gltf").write_text(json.dumps(gltf))
            cases[case] = (asset / f"{case}.gltf", reference)
    return cases


def _refusal(path: Path, reference: str, outside: Path) -> str:
    with _files_opened_in(outside) as seen_outside:
        with pytest.raises(AssetError) as info:
            ingest_asset(path)
        with pytest.raises(AssetError) as listed:
            source_files(path)
    message = str(info.value)
    assert str(listed.value) == message
    assert path.name in message and repr(reference) in message and "outside the asset's folder" in message
    assert seen_outside == []
    return message


@pytest.mark.parametrize(
    "case",
    ["parent_texture", "absolute_library", "windows_drive_texture", "symlinked_texture",
     "texture_in_symlinked_folder", "file_uri_image", "percent_encoded_parent_image", "parent_buffer"],
)  # fmt: skip
def test_references_outside_the_asset_folder_are_refused(tmp_path: Path, case: str) -> None:
    path, reference = _escaping_assets(tmp_path)[case]
    outside = tmp_path / "outside"
    message = _refusal(path, reference, outside)
    # the message says nothing about the outside file: it is the same when that file does not exist
    for child in outside.iterdir():
        child.unlink()
    assert _refusal(path, reference, outside) == message
    outside.rmdir()
    assert _refusal(path, reference, outside) == message


def test_file_uri_to_a_system_file_is_refused(tmp_path: Path) -> None:
    document, binary = _chair_with_image(tmp_path, "file:///etc/passwd")
    (tmp_path / "chair.glb").write_bytes(_join_glb(document, binary))
    with pytest.raises(AssetError, match=r"chair\.glb: image 'file:///etc/passwd' is outside the asset's folder"):
        ingest_asset(tmp_path / "chair.glb")
    with pytest.raises(AssetError, match="'file:///etc/passwd'"):
        source_files(tmp_path / "chair.glb")


def test_editing_a_source_changes_the_key_and_other_files_do_not(tmp_path: Path) -> None:
    _png(tmp_path / "textures" / "wood.png", (200, 120, 40))
    (tmp_path / "chair.mtl").write_text("newmtl wood\nmap_Kd textures/wood.png\n")
    (tmp_path / "chair.obj").write_text(_quad_obj("chair.mtl", ["wood"]))
    document, binary = _chair_with_image(tmp_path, "textures/wood.png")
    document["buffers"][0]["uri"] = "chair.bin"
    (tmp_path / "chair.bin").write_bytes(binary)
    (tmp_path / "chair.gltf").write_text(json.dumps(document))
    (tmp_path / "notes.txt").write_text("not part of any asset\n")
    _png(tmp_path / "textures" / "unused.png", (0, 0, 0))

    obj, gltf = _digests(tmp_path / "chair.obj"), _digests(tmp_path / "chair.gltf")
    assert set(obj) == {"chair.obj", "chair.mtl", "textures/wood.png"}
    assert set(gltf) == {"chair.gltf", "chair.bin", "textures/wood.png"}
    (tmp_path / "notes.txt").write_text("edited\n")
    _png(tmp_path / "textures" / "unused.png", (255, 255, 255))
    assert _digests(tmp_path / "chair.obj") == obj and _digests(tmp_path / "chair.gltf") == gltf

    (tmp_path / "chair.mtl").write_text("newmtl wood\nKd 0.5 0.5 0.5\nmap_Kd textures/wood.png\n")
    edited = _digests(tmp_path / "chair.obj")
    assert [k for k in obj if edited[k] != obj[k]] == ["chair.mtl"]
    _png(tmp_path / "textures" / "wood.png", (201, 120, 40))
    assert {k for k in obj if _digests(tmp_path / "chair.obj")[k] != obj[k]} == {"chair.mtl", "textures/wood.png"}
    assert [k for k in gltf if _digests(tmp_path / "chair.gltf")[k] != gltf[k]] == ["textures/wood.png"]
    changed = bytearray(binary)
    changed[-1] ^= 0xFF
    (tmp_path / "chair.bin").write_bytes(bytes(changed))
    assert {k for k in gltf if _digests(tmp_path / "chair.gltf")[k] != gltf[k]} == {"chair.bin", "textures/wood.png"}


def test_source_file_is_a_frozen_value() -> None:
    file = SourceFile(relative="textures/wood.png", path=Path("/assets/textures/wood.png"))
    assert file == SourceFile("textures/wood.png", Path("/assets/textures/wood.png")) and hash(file) == hash(file)
    with pytest.raises(AttributeError):
        file.relative = "other.png"  # type: ignore[misc]
