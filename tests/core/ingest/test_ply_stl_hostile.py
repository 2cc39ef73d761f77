"""Hostile PLY and STL files: every count the header claims is checked before the data is read, every element
of a PLY counts, the readers stream instead of splitting the whole file, and whatever a crafted file holds is
refused with an AssetError (one line, the file named, the problem said) instead of crashing the reader."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import numpy as np
import pytest

from dreamedit3d_core.ingest import AssetError, IngestConfig, ingest_asset
from dreamedit3d_core.ingest.isolated import ingest_isolated
from dreamedit3d_core.ingest.limits import IngestLimits
from tests.core.ingest.test_ingest_hostile import limited, refused

SECONDS = 10.0  # bounds on a behaviour (streaming, linear time), not benchmarks
PEAK_BYTES = 2**30
VERTICES = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=np.float32)
FACES = [[0, 1, 2], [0, 2, 3]]
FACET = "facet normal 0 0 1\n outer loop\n  vertex 0 0 0\n  vertex 1 0 0\n  vertex 0 1 0\n endloop\nendfacet\n"


def ply(
    encoding: str = "ascii",
    vertex: str = "property float x\nproperty float y\nproperty float z\n",
    face: str = "property list uchar int vertex_indices\n",
    vertices: int = 4,
    faces: int = 2,
    before: str = "",
    after: str = "",
) -> str:
    """A PLY header: the vertex and face elements as given, with other elements' declarations before and after."""
    return (
        f"ply\nformat {encoding} 1.0\n{before}element vertex {vertices}\n{vertex}"
        f"element face {faces}\n{face}{after}end_header\n"
    )


ASCII_ROWS = "".join(" ".join(map(str, v)) + "\n" for v in VERTICES) + "".join(f"3 {a} {b} {c}\n" for a, b, c in FACES)
BINARY_ROWS = VERTICES.astype("<f4").tobytes() + b"".join(struct.pack("<B3i", 3, *face) for face in FACES)


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def assert_square(path: Path) -> None:
    part = ingest_asset(path, IngestConfig(normalize=False, up_axis="+z")).parts[0]
    assert np.allclose(part.vertices[part.faces], VERTICES[np.array(FACES)])


def test_a_ply_with_millions_of_rows_in_an_extra_element_is_read_in_bounded_memory_and_time(tmp_path: Path) -> None:
    # 10 MB whose ASCII reading used to split into 5 million lines first: 1.2 GB and 7 s
    header = ply(after="element junk 5000000\nproperty uchar a\n")
    path = write(tmp_path, "extra.ply", header.encode() + ASCII_ROWS.encode() + b"1\n" * 5_000_000)
    report: dict = {}
    started = time.perf_counter()
    asset = ingest_isolated(path, IngestConfig(normalize=False, up_axis="+z"), tmp_path / "out", report)
    assert time.perf_counter() - started < SECONDS
    assert report["peak_rss_bytes"] < PEAK_BYTES
    assert np.allclose(asset.parts[0].vertices[asset.parts[0].faces], VERTICES[np.array(FACES)])
    # under a lower limit the same file is refused from its header, before any row is read
    refused(path, limited(max_ply_rows=1_000_000), "5,000,006 rows", "ingest.limits.max_ply_rows=1,000,000")


def test_every_element_of_a_ply_counts_towards_its_rows(tmp_path: Path) -> None:
    extra = "element a 600\nproperty uchar p\n"
    path = write(tmp_path, "two.ply", ply(after=extra + extra.replace(" a ", " b ")) + ASCII_ROWS + "1\n" * 1200)
    assert_square(path)
    refused(path, limited(max_ply_rows=1000), "1,206 rows in the PLY header", "max_ply_rows=1,000")
    # the vertex and face rows against their own limits, also from the header
    refused(path, limited(max_vertices=3), "4 vertex rows in the header", "max_vertices=3")
    refused(path, limited(max_faces=1), "2 face rows in the header", "max_faces=1")


@pytest.mark.parametrize("encoding", ["ascii", "binary_little_endian"])
def test_a_list_whose_length_is_not_of_an_integer_type_is_refused(tmp_path: Path, encoding: str) -> None:
    rows = ASCII_ROWS.encode() if encoding == "ascii" else VERTICES.tobytes() + struct.pack("<f3i", 3.0, 0, 1, 2) * 2
    header = ply(encoding, face="property list float int vertex_indices\n").encode()
    refused(write(tmp_path, "length.ply", header + rows), None, "'vertex_indices'", "'float'", "must be of an integer type")


@pytest.mark.parametrize("count", ["nan", "1e30", "-3", "4.0", "0x10", "inf"])
def test_row_counts_must_be_plain_non_negative_integers(tmp_path: Path, count: str) -> None:
    path = write(tmp_path, "count.ply", ply(after=f"element junk {count}\nproperty uchar a\n") + ASCII_ROWS)
    refused(path, None, f"PLY element 'junk' has {count!r} rows, not a non-negative integer")


def test_counts_beyond_the_limits_or_the_data_are_refused_before_anything_is_allocated(tmp_path: Path) -> None:
    huge = ply("binary_little_endian", vertices=10**20).encode()
    refused(write(tmp_path, "huge.ply", huge + BINARY_ROWS), None, "100,000,000,000,000,000,000 vertex rows", "max_vertices")
    huger = ply("binary_little_endian", vertices=10**40).encode()
    refused(write(tmp_path, "huger.ply", huger + BINARY_ROWS), None, "a 41-digit number of rows", "max_ply_rows=20,000,000")
    many = ply("binary_little_endian", vertices=9_999_999).encode()
    refused(write(tmp_path, "many.ply", many + BINARY_ROWS), None, "truncated PLY", "'vertex' needs 119,999,988 bytes")
    # a face whose list claims two billion indices
    long_list = VERTICES.tobytes() + struct.pack("<I3i", 2**31, 0, 1, 2) * 2
    refused(write(tmp_path, "long.ply", ply("binary_little_endian", face="property list uint int vertex_indices\n").encode() + long_list),
            None, "truncated PLY", "'face'")  # fmt: skip
    # an extra element of varying lists that the data cannot hold
    extra = ply("binary_little_endian", after="element junk 19000000\nproperty list uchar int a\n").encode()
    refused(write(tmp_path, "extra.ply", extra + BINARY_ROWS + b"\x01\0\0\0\0"), None, "truncated PLY", "'junk' needs at least 19,000,000 bytes")


@pytest.mark.parametrize("encoding", ["ascii", "binary_little_endian"])
def test_a_property_twice_in_an_element_is_refused(tmp_path: Path, encoding: str) -> None:
    twice = ply(encoding, vertex="property float x\nproperty float y\nproperty float z\nproperty float z\n")
    refused(write(tmp_path, "twice.ply", twice + ASCII_ROWS), None, "PLY element 'vertex' has the property 'z' twice")
    again = ply(encoding, after="element vertex 1\nproperty float x\n")
    refused(write(tmp_path, "again.ply", again + ASCII_ROWS), None, "PLY element 'vertex' is declared twice")


@pytest.mark.parametrize("encoding", ["ascii", "binary_little_endian"])
def test_coordinates_and_indices_must_have_the_right_kind(tmp_path: Path, encoding: str) -> None:
    listed = ply(encoding, vertex="property list uchar float x\nproperty float y\nproperty float z\n")
    refused(write(tmp_path, "x.ply", listed + ASCII_ROWS), None, "PLY vertex property 'x' is a list, not a single value")
    colour = ply(encoding, vertex="property float x\nproperty float y\nproperty float z\nproperty list uchar uchar red\n")
    refused(write(tmp_path, "red.ply", colour + ASCII_ROWS), None, "PLY vertex property 'red' is a list")
    single = ply(encoding, face="property int vertex_indices\n")
    refused(write(tmp_path, "single.ply", single + ASCII_ROWS), None, "'vertex_indices' is a single value, not a list")
    floating = ply(encoding, face="property list uchar float vertex_indices\n")
    refused(write(tmp_path, "float.ply", floating + ASCII_ROWS), None, "indices 'vertex_indices' are typed 'float'", "integer type")


def test_a_non_integer_index_in_ascii_is_refused_not_truncated(tmp_path: Path) -> None:
    path = write(tmp_path, "half.ply", ply() + ASCII_ROWS.replace("3 0 2 3", "3 0 1.5 3"))
    refused(path, None, "bad PLY row '3 0 1.5 3' in element 'face'", "holds '1.5', not an integer")
    path = write(tmp_path, "count.ply", ply() + ASCII_ROWS.replace("3 0 2 3", "nan 0 2 3"))
    refused(path, None, "bad PLY row 'nan 0 2 3'", "length of list 'vertex_indices' is 'nan'")
    path = write(tmp_path, "word.ply", ply() + ASCII_ROWS.replace("1.0 1.0 0.0", "1.0 one 0.0"))
    refused(path, None, "bad PLY row '1.0 one 0.0' in element 'vertex'", "'y' is 'one', not a number")
    path = write(tmp_path, "more.ply", ply() + ASCII_ROWS.replace("3 0 2 3", "3 0 2 3 9"))
    refused(path, None, "bad PLY row '3 0 2 3 9'", "1 values more than")


def test_a_valid_ply_with_small_extra_elements_still_reads(tmp_path: Path) -> None:
    before = "element material 2\nproperty uchar r\nproperty list uchar float weights\n"
    after = "element edge 3\nproperty int vertex1\nproperty int vertex2\n"
    header = ply(before=before, after=after, face="property list uchar int vertex_indices\nproperty list uchar float texcoord\n")
    rows = ASCII_ROWS.splitlines()
    faces = [f"{row} 6 0 0 1 0 1 1" for row in rows[4:]]  # per-face texture coordinates: floats in a list
    text = header + "7 2 0.5 0.25\n\n9 0\n" + "\n".join(rows[:4] + faces) + "\n0 1\n1 2\n  \n2 3\n"
    assert_square(write(tmp_path, "ascii.ply", text))
    binary = ply("binary_big_endian", before=before, after=after)
    data = struct.pack(">BBff", 7, 2, 0.5, 0.25) + struct.pack(">BB", 9, 0) + VERTICES.astype(">f4").tobytes()
    data += b"".join(struct.pack(">B3i", 3, *face) for face in FACES) + struct.pack(">6i", 0, 1, 1, 2, 2, 3)
    assert_square(write(tmp_path, "binary.ply", binary.encode() + data))


def test_a_binary_ply_with_a_big_extra_element_under_the_limit_reads_its_mesh(tmp_path: Path) -> None:
    rows = 3_000_000
    fixed = "element junk 3000000\nproperty float a\nproperty uchar b\n"
    lists = "element strips 3000000\nproperty list uchar int s\n"  # every list of the same length
    header = ply("binary_little_endian", before=fixed, after=lists).encode()
    data = b"\0" * (5 * rows) + BINARY_ROWS + struct.pack("<Bi", 1, 7) * rows
    assert_square(write(tmp_path, "big.ply", header + data))
    # lists of varying length in the face element, read row by row, also after a big element
    mixed = ply("binary_little_endian", before=fixed, faces=1).encode() + b"\0" * (5 * rows)
    mixed += VERTICES.astype("<f4").tobytes() + struct.pack("<B4i", 4, 0, 1, 2, 3)
    part = ingest_asset(write(tmp_path, "quad.ply", mixed), IngestConfig(normalize=False, up_axis="+z")).parts[0]
    assert np.allclose(part.vertices[part.faces], VERTICES[np.array(FACES)])


def test_a_ply_header_longer_than_the_limit_is_refused(tmp_path: Path) -> None:
    comments = "comment " + "x" * 100 + "\n"
    path = write(tmp_path, "long.ply", ply().replace("format ascii 1.0\n", "format ascii 1.0\n" + comments * 20_000) + ASCII_ROWS)
    refused(path, None, "PLY header is longer than the limit ingest.limits.max_ply_header_bytes=1,048,576")
    asset = ingest_asset(path, IngestConfig(normalize=False, up_axis="+z", limits=IngestLimits(max_ply_header_bytes=2**22)))
    assert len(asset.parts[0].faces) == 2
    path = write(tmp_path, "rows.ply", ply(after="element junk 5\n") + ASCII_ROWS)
    refused(path, None, "PLY element 'junk' has 5 rows but no properties")
    path = write(tmp_path, "type.ply", ply(vertex="property float x\nproperty float y\nproperty quaternion z\n") + ASCII_ROWS)
    refused(path, None, "bad PLY header line 'property quaternion z'", "unknown type 'quaternion'")


def test_an_ascii_stl_with_many_blank_lines_reads_in_linear_time(tmp_path: Path) -> None:
    # 40 000 blank lines took 2.4 s to 3 s: each blank line's try of the old pattern ran over all that follow
    path = write(tmp_path, "blank.stl", "solid x\n" + FACET + "\n" * 40_000 + FACET + "   \n" * 40_000 + "endsolid x\n")
    report: dict = {}
    started = time.perf_counter()
    asset = ingest_isolated(path, IngestConfig(), tmp_path / "out", report)
    assert time.perf_counter() - started < SECONDS
    assert report["peak_rss_bytes"] < PEAK_BYTES
    assert len(asset.parts[0].faces) == 2
    started = time.perf_counter()  # ten times the blank lines, ten times (not a hundred times) the time
    path = write(tmp_path, "more.stl", "solid x\n" + FACET + "\n" * 400_000 + FACET + "endsolid x\n")
    assert len(ingest_asset(path).parts[0].faces) == 2
    assert time.perf_counter() - started < SECONDS


def test_an_ascii_stl_claiming_more_triangles_than_the_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    path = write(tmp_path, "many.stl", "solid x\n" + FACET * 5 + "endsolid x\n")
    assert len(ingest_asset(path).parts[0].faces) == 5
    refused(path, limited(max_faces=4), "5 triangles (its 'vertex' words / 3)", "max_faces=4")
    path = write(tmp_path, "word.stl", "solid x\n" + FACET.replace("vertex 1 0 0", "vertex 1 zero 0") + "endsolid x\n")
    refused(path, None, "bad vertex line in ASCII STL", "zero")
