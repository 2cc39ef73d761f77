"""Mutated copies of the good test assets through the ingest stage: each is ingested or refused, fast, in bounded
memory, once, and the store never holds anything of a refused file.

The mutations are what careless tools and careful attackers produce: truncations, flipped bytes, counts far
beyond the data, deep nesting, references outside the asset's folder. They are drawn from a fixed seed, so a
failure here reproduces.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from dreamedit3d_core.config import pipeline_config
from dreamedit3d_core.ingest import AssetError
from storage import ArtifactStore
from tasks.catalog import EDIT
from tasks.running import run_stage

SECONDS = 10.0  # per file, on top of what a small valid file costs (the reader's process starting)
PEAK_BYTES = 1 * 2**30  # the reader processes, at most, for any file (a small valid file: about 150 MB)
GOOD = {
    "Duck.glb": ["Duck.glb"],
    "TestScene.gltf": ["TestScene.gltf", "TestScene.bin"],
    "fuze.obj": ["fuze.obj", "fuze.obj.mtl", "fuze uv.jpg"],
    "nested.glb": ["nested.glb"],
    "two_objects.obj": ["two_objects.obj"],
}
Mutation = Callable[[Path, np.random.Generator], None]


def _cube() -> tuple[np.ndarray, list[list[int]]]:
    """A unit cube: 8 corners; 3 sides as quads and 3 as two triangles each (rows of two lengths)."""
    corners = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=np.float32)
    quads = [[0, 1, 3, 2], [4, 6, 7, 5], [0, 4, 5, 1], [2, 3, 7, 6], [0, 2, 6, 4], [1, 5, 7, 3]]
    return corners, quads[:3] + [[a, b, c] for a, b, c, d in quads[3:] for a, b, c in ((a, b, c), (a, c, d))]


def _ply(encoding: str) -> bytes:
    """The cube as a PLY with vertex colours and two elements the reader steps over (one of lists)."""
    corners, faces = _cube()
    header = (
        f"ply\nformat {encoding} 1.0\ncomment made by the fuzz test\nelement material 2\nproperty list uchar float weights\n"
        "element vertex 8\nproperty float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\n"
        f"element face {len(faces)}\nproperty list uchar int vertex_indices\n"
        "element edge 2\nproperty int vertex1\nproperty int vertex2\nend_header\n"
    ).encode()
    colours = [(i * 30, 255 - i * 30, 128) for i in range(8)]
    if encoding == "ascii":
        rows = ["2 0.5 0.5", "1 1.0"] + [f"{x:g} {y:g} {z:g} {r} {g} {b}" for (x, y, z), (r, g, b) in zip(corners, colours)]
        rows += [f"{len(face)} {' '.join(map(str, face))}" for face in faces] + ["0 1", "1 3"]
        return header + ("\n".join(rows) + "\n").encode()
    data = struct.pack("<B2f", 2, 0.5, 0.5) + struct.pack("<Bf", 1, 1.0)
    data += b"".join(struct.pack("<3f3B", *corner, *colour) for corner, colour in zip(corners, colours))
    data += b"".join(struct.pack(f"<B{len(face)}i", len(face), *face) for face in faces)
    return header + data + struct.pack("<4i", 0, 1, 1, 3)


def _stl(binary: bool) -> bytes:
    """The cube's triangles as an STL."""
    corners, faces = _cube()
    triangles = corners[[[f[0], f[j], f[j + 1]] for f in faces for j in range(1, len(f) - 1)]]  # (12, 3, 3)
    if binary:
        records = b"".join(struct.pack("<12fH", 0, 0, 0, *triangle.ravel(), 0) for triangle in triangles)
        return b"made by the fuzz test".ljust(80, b" ") + struct.pack("<I", len(triangles)) + records
    facets = "".join(
        "facet normal 0 0 0\n outer loop\n" + "".join(f"  vertex {x:g} {y:g} {z:g}\n" for x, y, z in triangle)
        + " endloop\nendfacet\n"
        for triangle in triangles
    )
    return f"solid cube\n{facets}endsolid cube\n".encode()


# PLY and STL files built here (the shared assets have none); their own mutations, below
MESHES: dict[str, Callable[[], bytes]] = {
    "ply_text.ply": lambda: _ply("ascii"),
    "ply_binary.ply": lambda: _ply("binary_little_endian"),
    "stl_text.stl": lambda: _stl(binary=False),
    "stl_binary.stl": lambda: _stl(binary=True),
}


def truncate(fraction: float) -> Mutation:
    def mutate(path: Path, rng: np.random.Generator) -> None:
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * fraction)])

    return mutate


def flip_bytes(count: int) -> Mutation:
    def mutate(path: Path, rng: np.random.Generator) -> None:
        data = bytearray(path.read_bytes())
        for index in rng.integers(0, len(data), count):
            data[index] ^= 0xFF
        path.write_bytes(bytes(data))

    return mutate


def _gltf_document(path: Path) -> tuple[dict, bytes | None]:
    data = path.read_bytes()
    if data[:4] == b"glTF":
        length = struct.unpack_from("<I", data, 12)[0]
        return json.loads(data[20 : 20 + length]), data[20 + length :]
    return json.loads(data), None


def _write_gltf(path: Path, document: dict, rest: bytes | None) -> None:
    text = json.dumps(document).encode()
    if rest is None:
        path.write_bytes(text)
        return
    text += b" " * (-len(text) % 4)
    total = 12 + 8 + len(text) + len(rest)
    path.write_bytes(struct.pack("<4sII", b"glTF", 2, total) + struct.pack("<I4s", len(text), b"JSON") + text + rest)


def huge_count(path: Path, rng: np.random.Generator) -> None:
    """glTF: an accessor claims two billion elements; OBJ: a face names vertex 2**40."""
    if path.suffix in (".glb", ".gltf"):
        document, rest = _gltf_document(path)
        document["accessors"][int(rng.integers(len(document["accessors"])))]["count"] = 2**31 - 1
        _write_gltf(path, document, rest)
    else:
        path.write_text(path.read_text(errors="replace") + f"\nf 1 2 {2**40}\n")


def deep_nesting(path: Path, rng: np.random.Generator) -> None:
    """glTF: the document buried in 100000 arrays; OBJ: a line of 100000 slashes."""
    if path.suffix in (".glb", ".gltf"):
        document, rest = _gltf_document(path)
        depth = 100_000
        text = "[" * depth + json.dumps(document) + "]" * depth
        if rest is None:
            path.write_text(text)
        else:
            data = text.encode() + b" " * (-len(text) % 4)
            path.write_bytes(struct.pack("<4sII", b"glTF", 2, 20 + len(data) + len(rest)) + struct.pack("<I4s", len(data), b"JSON") + data + rest)
    else:
        path.write_text(path.read_text(errors="replace") + "\nf " + "/" * 100_000 + "\n")


def outside_reference(path: Path, rng: np.random.Generator) -> None:
    """A reference to a file outside the asset's folder (which exists, and must never be read)."""
    if path.suffix in (".glb", ".gltf"):
        document, rest = _gltf_document(path)
        document.setdefault("images", []).append({"uri": "../outside/secret.png"})
        document.setdefault("buffers", []).append({"uri": "file:///etc/passwd", "byteLength": 4})
        _write_gltf(path, document, rest)
    else:
        path.write_text("mtllib ../outside/secret.mtl\n" + path.read_text(errors="replace"))


MUTATIONS: dict[str, Mutation] = {
    "truncated to 10%": truncate(0.1),
    "truncated to 60%": truncate(0.6),
    "truncated by one byte": truncate(0.9999),
    "8 bytes flipped": flip_bytes(8),
    "64 bytes flipped": flip_bytes(64),
    "a huge count": huge_count,
    "deep nesting": deep_nesting,
    "a reference outside": outside_reference,
}


def flip_header_bytes(count: int) -> Mutation:
    """Bytes flipped among the first 200 (a PLY's header, an STL's first lines or its triangle count)."""

    def mutate(path: Path, rng: np.random.Generator) -> None:
        data = bytearray(path.read_bytes())
        for index in rng.integers(0, min(len(data), 200), count):
            data[index] ^= 0xFF
        path.write_bytes(bytes(data))

    return mutate


def inflated_count(count: int) -> Mutation:
    """PLY: one element's row count in the header becomes `count`; binary STL: the triangle count; ASCII STL:
    one facet gets `count` % 100000 vertex lines more."""

    def mutate(path: Path, rng: np.random.Generator) -> None:
        data = path.read_bytes()
        if path.suffix == ".ply":
            header, rest = data.split(b"end_header\n", 1)
            elements = list(re.finditer(rb"element (\w+) (\d+)", header))
            chosen = elements[int(rng.integers(len(elements)))]
            header = header[: chosen.start(2)] + str(count).encode() + header[chosen.end(2) :]
            path.write_bytes(header + b"end_header\n" + rest)
        elif data.startswith(b"solid"):
            start = data.index(b"  vertex")
            path.write_bytes(data[:start] + b"  vertex 1 2 3\n" * (count % 100_000) + data[start:])
        else:
            path.write_bytes(data[:80] + struct.pack("<I", count) + data[84:])

    return mutate


def blank_lines(path: Path, rng: np.random.Generator) -> None:
    """40000 blank lines after a random line end (of a binary file: after any byte 10)."""
    data = path.read_bytes()
    ends = [i + 1 for i, byte in enumerate(data) if byte == 10]
    at = ends[int(rng.integers(len(ends)))] if ends else len(data)
    path.write_bytes(data[:at] + b"\n" * 40_000 + data[at:])


MESH_MUTATIONS: dict[str, Mutation] = {
    "truncated to 10%": truncate(0.1),
    "truncated to 60%": truncate(0.6),
    "truncated by one byte": truncate(0.9999),
    "8 bytes flipped": flip_bytes(8),
    "header bytes flipped": flip_header_bytes(4),
    "a huge count": inflated_count(2**31 - 1),
    "a count beyond the data": inflated_count(9_999_999),
    "blank lines": blank_lines,
}


def corpus(shared_assets: Path, folder: Path) -> Iterator[tuple[str, Path]]:
    rng = np.random.default_rng(2026)
    outside = folder / "outside"
    outside.mkdir(parents=True)
    (outside / "secret.png").write_bytes(b"\x89PNG not an image")
    (outside / "secret.mtl").write_text("newmtl secret\nmap_Kd secret.png\n")
    for name, files in GOOD.items():
        for label, mutate in MUTATIONS.items():
            copy = folder / f"{Path(name).stem}-{label.replace(' ', '_').replace('%', '')}"
            copy.mkdir()
            for file in files:
                shutil.copy(shared_assets / "good" / file, copy / file)
            mutate(copy / name, rng)
            yield f"{name}, {label}", copy / name
    for name, build in MESHES.items():
        for label, mutate in MESH_MUTATIONS.items():
            copy = folder / f"{Path(name).stem}-{label.replace(' ', '_').replace('%', '')}"
            copy.mkdir()
            (copy / name).write_bytes(build())
            mutate(copy / name, rng)
            yield f"{name}, {label}", copy / name


def ingest(source: str, store: str) -> object:
    stage = EDIT.stage("ingest")
    return run_stage(stage, EDIT.call(stage, store=store, config=pipeline_config("tiny"), source=source))


def run_corpus(shared_assets: Path, folder: Path) -> dict:
    """Every mutated file through the ingest stage into one store, in this process: what happened to each,
    how long it took, and the largest resident size of the reader processes (observed by wrapping the stage's
    call of the reader, which is why the test runs this in a process of its own)."""
    import tasks.ingest

    readers: list[int] = []  # each reader process's peak, as it reports it

    def observed(path: str, config: object, folder: Path, report: dict) -> object:
        try:
            return tasks.ingest.ingest_isolated_unobserved(path, config, folder, report)
        finally:
            readers.append(report.get("peak_rss_bytes", 0))

    tasks.ingest.ingest_isolated_unobserved, tasks.ingest.ingest_isolated = tasks.ingest.ingest_isolated, observed
    store = str(folder / "store")
    baseline_folder = folder / "baseline"
    baseline_folder.mkdir()
    shutil.copy(shared_assets / "good" / "two_objects.obj", baseline_folder / "two_objects.obj")
    ingest(str(baseline_folder / "two_objects.obj"), store)  # warm: imports and disk caches
    started = time.perf_counter()
    ingest(str(baseline_folder / "two_objects.obj"), str(folder / "baseline-store"))
    outcomes = {"baseline_s": time.perf_counter() - started, "files": {}}
    for label, path in corpus(shared_assets, folder / "corpus"):
        started = time.perf_counter()
        try:
            ingest(str(path), store)
            outcome, message = "ingested", ""
        except AssetError as error:
            outcome, message = "refused", str(error)
        outcomes["files"][label] = {"outcome": outcome, "message": message, "file": path.name, "seconds": time.perf_counter() - started}
    outcomes["reader_peak_bytes"] = max(readers)
    return outcomes


def test_every_mutated_file_is_ingested_or_refused_fast_and_nothing_partial_stays(
    shared_assets: Path, tmp_path: Path
) -> None:
    script = f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import test_ingest_fuzz as f; "
    script += f"from pathlib import Path; print(json.dumps(f.run_corpus(Path({str(shared_assets)!r}), Path({str(tmp_path)!r}))))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=1800, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    outcomes = json.loads(result.stdout.strip().splitlines()[-1])
    files = outcomes["files"]
    assert len(files) == len(GOOD) * len(MUTATIONS) + len(MESHES) * len(MESH_MUTATIONS)
    for label, seen in files.items():
        assert seen["seconds"] < outcomes["baseline_s"] + SECONDS, (label, seen)
        if seen["outcome"] == "refused":  # one line naming the file; a reference outside is named, never read
            assert "\n" not in seen["message"] and seen["file"] in seen["message"], (label, seen)
            assert "root:" not in seen["message"] and "not an image" not in seen["message"], (label, seen)
    assert outcomes["reader_peak_bytes"] < PEAK_BYTES  # the reader processes, whatever they were given

    store = ArtifactStore(str(tmp_path / "store"))
    rows = [row for row in store.ledger.read().to_pylist() if row["status"] == "failed"]
    refused = [label for label, seen in files.items() if seen["outcome"] == "refused"]
    assert len(rows) == len(refused)  # one attempt, one ledger row each
    assert all(row["stage"] == "ingest" and row["error"].startswith("AssetError") for row in rows)
    ingested = len(files) - len(refused) + 1  # and the baseline
    assert len({record.key for record in store.list()}) <= ingested  # nothing of a refused file committed
    assert store.verify().clean  # nothing half-written
    for kind in ("truncated to 10%", "a huge count", "a reference outside", "deep nesting"):
        assert all(files[f"{name}, {kind}"]["outcome"] == "refused" for name in GOOD), kind
    for kind in ("truncated to 10%", "a huge count", "a count beyond the data"):
        assert all(files[f"{name}, {kind}"]["outcome"] == "refused" for name in MESHES), kind
    for path in (tmp_path / "store").rglob("*"):  # no byte of the files outside the folder reached the store
        assert not path.is_file() or b"not an image" not in path.read_bytes()


def test_only_faults_of_the_machine_are_retried() -> None:
    from dreamedit3d_core.ingest.isolated import IngestCrashed
    from dreamedit3d_core.render.render import RenderError
    from tasks.prefect_task import is_machine_fault

    for error in (OSError("disk"), ConnectionError(), TimeoutError(), RenderError("Blender died"), IngestCrashed("killed")):
        assert is_machine_fault(error), error
    for error in (AssetError("bad.obj: no geometry"), MemoryError(), RecursionError(), KeyError("x"), FileNotFoundError()):
        assert not is_machine_fault(error), error
