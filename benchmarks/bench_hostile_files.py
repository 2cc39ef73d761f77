"""Hostile files through `dreamedit3d ingest`, as a user runs it: exit code, message, wall time, peak memory.

    python benchmarks/bench_hostile_files.py

Each file is built in a temporary folder and ingested by the command line in a process of its own under
`/usr/bin/time -v` (peak resident memory of the command and the processes it waited for); a small valid OBJ
is the baseline. What a refusal must cost is at most 10 s and 1 GB more than the baseline, exit code 2, one
line naming the file and the reason, one failed ledger row and nothing committed. Prints a table and writes it
to benchmarks/results/hostile_files.md.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "hostile_files.md"
CLI = [str(PROJECT_ROOT / ".venv" / "bin" / "dreamedit3d")]
QUAD = "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\n"


def small_obj(folder: Path) -> Path:
    (folder / "small.obj").write_text(QUAD + "f 1/1 2/2 3/3\nf 1/1 3/3 4/4\n")
    return folder / "small.obj"


def node_chain(folder: Path, depth: int = 3000) -> Path:
    """A 100 KB glTF whose nodes form a chain of 3000 parents, the last one holding a triangle."""
    positions = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32).tobytes()
    nodes = [{"children": [i + 1], "translation": [0.001, 0, 0]} for i in range(depth - 1)] + [{"mesh": 0}]
    document = {
        "asset": {"version": "2.0"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": nodes,
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}}]}],
        "accessors": [{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3", "min": [0, 0, 0], "max": [1, 1, 0]}],
        "bufferViews": [{"buffer": 0, "byteLength": len(positions)}],
        "buffers": [{"byteLength": len(positions), "uri": "data:application/octet-stream;base64," + base64.b64encode(positions).decode()}],
    }
    (folder / "chain.gltf").write_text(json.dumps(document))
    return folder / "chain.gltf"


def huge_accessor(folder: Path) -> Path:
    """A 264-byte glTF whose accessor declares 33 million vertices and no buffer view."""
    document = {
        "asset": {"version": "2.0"},
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}}]}],
        "accessors": [{"componentType": 5126, "count": 33_000_000, "type": "VEC3", "min": [0, 0, 0], "max": [1, 1, 1]}],
    }
    (folder / "huge.gltf").write_text(json.dumps(document))
    return folder / "huge.gltf"


def _png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims `width` x `height` pixels (its data is a few rows of zeros)."""
    buffer = io.BytesIO()
    Image.new("L", (4, 4)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13])))
    return bytes(data)


def big_textures(folder: Path) -> Path:
    """An OBJ whose MTL names eight 13000 x 13000 PNGs (tiny on disk), one of them used."""
    library = []
    for index in range(8):
        (folder / f"big{index}.png").write_bytes(_png_claiming(13000, 13000))
        library.append(f"newmtl m{index}\nmap_Kd big{index}.png\n")
    (folder / "big.mtl").write_text("".join(library))
    (folder / "textured.obj").write_text("mtllib big.mtl\n" + QUAD + "usemtl m0\nf 1/1 2/2 3/3\nf 1/1 3/3 4/4\n")
    return folder / "textured.obj"


def outside_texture(folder: Path) -> Path:
    """An MTL whose texture lies outside the asset's folder (`map_Kd ../outside/x.png`)."""
    asset = folder / "asset"
    asset.mkdir()
    (folder / "outside").mkdir()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(folder / "outside" / "x.png")
    (asset / "m.mtl").write_text("newmtl m\nmap_Kd ../outside/x.png\n")
    (asset / "escape.obj").write_text("mtllib m.mtl\n" + QUAD + "usemtl m\nf 1/1 2/2 3/3\n")
    return asset / "escape.obj"


def absolute_texture(folder: Path) -> Path:
    """An MTL whose texture is an absolute path to an image outside the asset's folder."""
    asset = folder / "asset"
    asset.mkdir()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(folder / "secret.png")
    (asset / "m.mtl").write_text(f"newmtl m\nmap_Kd {folder / 'secret.png'}\n")
    (asset / "absolute.obj").write_text("mtllib m.mtl\n" + QUAD + "usemtl m\nf 1/1 2/2 3/3\n")
    return asset / "absolute.obj"


def outside_buffer(folder: Path) -> Path:
    """A glTF whose buffer is a file outside the asset's folder, through a symbolic link."""
    asset = folder / "asset"
    asset.mkdir()
    positions = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32).tobytes()
    (folder / "secret.bin").write_bytes(positions)
    (asset / "link.bin").symlink_to(folder / "secret.bin")
    document = {
        "asset": {"version": "2.0"},
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}}]}],
        "accessors": [{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3"}],
        "bufferViews": [{"buffer": 0, "byteLength": len(positions)}],
        "buffers": [{"byteLength": len(positions), "uri": "link.bin"}],
    }
    (asset / "linked.gltf").write_text(json.dumps(document))
    return asset / "linked.gltf"


def json_list(folder: Path) -> Path:
    (folder / "list.gltf").write_text("[1, 2, 3]")
    return folder / "list.gltf"


def deep_json(folder: Path) -> Path:
    (folder / "deep.gltf").write_text("[" * 200_000 + "]" * 200_000)
    return folder / "deep.gltf"


def ascii_ply(folder: Path) -> Path:
    """A 1 MB ASCII PLY (a valid one: it must be ingested, and fast)."""
    rng = np.random.default_rng(0)
    count = 20_000
    vertices = "\n".join(" ".join(f"{x:.5f}" for x in row) for row in rng.random((count, 3)))
    faces = "\n".join(f"3 {a} {b} {c}" for a, b, c in rng.integers(0, count, (count, 3)))
    header = f"ply\nformat ascii 1.0\nelement vertex {count}\nproperty float x\nproperty float y\nproperty float z\n"
    header += f"element face {count}\nproperty list uchar int vertex_indices\nend_header\n"
    (folder / "mesh.ply").write_text(header + vertices + "\n" + faces + "\n")
    return folder / "mesh.ply"


def library_named_often(folder: Path, lines: int = 200, textures: int = 1000) -> Path:
    """An OBJ whose `mtllib` lines name one library of 1000 textured materials 200 times (valid, and cheap:
    the library is parsed once)."""
    (folder / "big.mtl").write_text("".join(f"newmtl m{i}\nKd 1 0 0\nmap_Kd t{i}.png\n" for i in range(textures)))
    (folder / "many.obj").write_text("mtllib big.mtl\n" * lines + QUAD + "usemtl m0\nf 1/1 2/2 3/3\n")
    return folder / "many.obj"


def library_named_400_times(folder: Path) -> Path:
    """The same with 400 `mtllib` lines: more references than ingest.limits.max_material_libraries (256)."""
    return library_named_often(folder, lines=400)


def library_named_1600_times(folder: Path) -> Path:
    """The same with 1600 `mtllib` lines (once 62 s in listing the asset's files alone)."""
    return library_named_often(folder, lines=1600)


def large_obj(folder: Path, vertices: int = 500_000) -> Path:
    """A 16 MB valid OBJ: half a million vertices, a triangle on each three (once 775 MB to read)."""
    rng = np.random.default_rng(0)
    text = "".join(f"v {x:.4f} {y:.4f} {z:.4f}\n" for x, y, z in rng.random((vertices, 3)))
    text += "".join(f"f {i + 1} {i + 2} {i + 3}\n" for i in range(0, vertices - 2, 3))
    (folder / "large.obj").write_text(text)
    return folder / "large.obj"


def fan_beyond_memory(folder: Path, corners: int = 6_000_000) -> Path:
    """A 12 MB OBJ of one face with 6 million corners, within the vertex and face limits: reading it needs
    more memory than the reader's limit (ingest.limits.max_memory_bytes, set to 1 GiB for this file)."""
    (folder / "fan.obj").write_text(QUAD + "f " + "1 2 3 " * (corners // 3) + "\n")
    return folder / "fan.obj"


PLY_HEADER = "ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y\nproperty float z\n"
PLY_FACES = "element face 2\nproperty list uchar int vertex_indices\n"
PLY_ROWS = "0 0 0\n1 0 0\n1 1 0\n0 1 0\n3 0 1 2\n3 0 2 3\n"


def ply_extra_element(folder: Path) -> Path:
    """A 10 MB ASCII PLY whose extra element has 5 million rows (valid: read, in bounded memory)."""
    header = PLY_HEADER + PLY_FACES + "element junk 5000000\nproperty uchar a\nend_header\n"
    (folder / "extra.ply").write_bytes((header + PLY_ROWS).encode() + b"1\n" * 5_000_000)
    return folder / "extra.ply"


def ply_nan_count(folder: Path) -> Path:
    """A PLY whose face count is `nan`."""
    (folder / "nan.ply").write_text(PLY_HEADER + PLY_FACES.replace("2", "nan") + "end_header\n" + PLY_ROWS)
    return folder / "nan.ply"


def ply_float_list_length(folder: Path) -> Path:
    """A PLY whose face lists give their length as a float."""
    (folder / "float.ply").write_text(PLY_HEADER + PLY_FACES.replace("uchar", "float") + "end_header\n" + PLY_ROWS)
    return folder / "float.ply"


def ply_float_index(folder: Path) -> Path:
    """A PLY with a face index of 1.5 (once silently truncated to 1)."""
    (folder / "index.ply").write_text(PLY_HEADER + PLY_FACES + "end_header\n" + PLY_ROWS.replace("3 0 1 2", "3 0 1.5 2"))
    return folder / "index.ply"


def stl_blank_lines(folder: Path) -> Path:
    """An ASCII STL with 40 000 blank lines between its two facets (valid)."""
    facet = "facet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 0\nvertex 0 1 0\nendloop\nendfacet\n"
    (folder / "blank.stl").write_text("solid x\n" + facet + "\n" * 40_000 + facet + "endsolid x\n")
    return folder / "blank.stl"


FILES: list[tuple[str, Callable[[Path], Path]]] = [
    ("a small valid OBJ (the baseline)", small_obj),
    ("glTF: a chain of 3000 parent nodes", node_chain),
    ("glTF: 33 million vertices, no buffer view", huge_accessor),
    ("OBJ: 8 textures of 13000 x 13000 px, 1 used", big_textures),
    ("OBJ: a texture outside the asset's folder", outside_texture),
    ("OBJ: a texture by absolute path outside", absolute_texture),
    ("glTF: a buffer through a symbolic link out", outside_buffer),
    ("glTF: a JSON list", json_list),
    ("glTF: JSON nested 200000 deep", deep_json),
    ("PLY: 1 MB of ASCII (valid)", ascii_ply),
    ("OBJ: one 1000-texture library named 200 times (valid)", library_named_often),
    ("OBJ: one 1000-texture library named 400 times", library_named_400_times),
    ("OBJ: one 1000-texture library named 1600 times", library_named_1600_times),
    ("OBJ: 16 MB, half a million vertices (valid)", large_obj),
    ("OBJ: a face of 6 million corners, reader memory limited to 1 GiB", fan_beyond_memory),
    ("PLY: 10 MB, an extra element of 5 million rows (valid)", ply_extra_element),
    ("PLY: a face count of nan", ply_nan_count),
    ("PLY: face lists whose length is a float", ply_float_list_length),
    ("PLY: a face index of 1.5", ply_float_index),
    ("STL: 40 000 blank lines (valid)", stl_blank_lines),
]
# a --config file given with a file, where its row measures one limit at a lower value than the default
CONFIGS = {fan_beyond_memory: "ingest:\n  limits:\n    max_memory_bytes: 1073741824\n"}


def run(path: Path, store: Path, config: str | None = None) -> dict:
    env = {**os.environ, "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL"}
    options = []
    if config is not None:
        (store.parent / "config.yaml").write_text(config)
        options = ["--config", str(store.parent / "config.yaml")]
    started = time.perf_counter()
    result = subprocess.run(
        ["/usr/bin/time", "-v", *CLI, "ingest", str(path), "--store", str(store), *options],
        capture_output=True, text=True, env=env, timeout=900,
    )
    wall = time.perf_counter() - started
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1)) * 1024
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    printed = [line for line in result.stderr.splitlines() if not line.startswith(("\t", "starting a ", "Command exited"))]
    sys.path.insert(0, str(PROJECT_ROOT))
    from storage import ArtifactStore

    artifacts = ArtifactStore(str(store))
    rows = artifacts.ledger.read().to_pylist()
    return {
        "exit": result.returncode,
        "message": errors[0] if errors else "",
        "lines": len(printed),
        "wall_s": wall,
        "peak_mb": peak / 2**20,
        "failed_rows": sum(row["status"] == "failed" for row in rows),
        "committed": len(artifacts.list()),
    }


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="dreamedit3d-hostile-") as tmp:
        warm = Path(tmp) / "warm-up"
        warm.mkdir()
        run(small_obj(warm), warm / "store")  # the first run pays for cold disk caches: not measured
        for index, (what, build) in enumerate(FILES):
            folder = Path(tmp) / f"{index}"
            folder.mkdir()
            path = build(folder)
            rows.append({"what": what, "bytes": path.stat().st_size, **run(path, folder / "store", CONFIGS.get(build))})
            rows[-1]["message"] = rows[-1]["message"].replace(tmp, "<tmp>")  # no machine's paths in the table
            print(f"{what}: exit {rows[-1]['exit']}, {rows[-1]['wall_s']:.1f} s, {rows[-1]['peak_mb']:.0f} MB", flush=True)
    base = rows[0]
    lines = [
        "| file | size | exit code | lines printed | wall s (over the baseline) | peak MB (over the baseline) | failed ledger rows | committed | message |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row['what']} | {row['bytes']:,} B | {row['exit']} | {row['lines']} | {row['wall_s']:.1f} ({row['wall_s'] - base['wall_s']:+.1f}) "
            f"| {row['peak_mb']:.0f} ({row['peak_mb'] - base['peak_mb']:+.0f}) | {row['failed_rows']} | {row['committed']} "
            f"| {row['message'][:160]} |"
        )
    text = "\n".join(lines) + "\n"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("# Hostile files through `dreamedit3d ingest`\n\nWritten by benchmarks/bench_hostile_files.py.\n\n" + text)
    print(text)


if __name__ == "__main__":
    main()
