"""OBJ material libraries read once under counted limits, the reader's memory limit, the time budget of listing
an asset's files in the caller's process, and printable part names: the second round of hostile OBJ input.

The files are the ones `benchmarks/bench_hostile_files.py` measures through the command line; here they go
through the reader's process (`ingest_isolated`, what the ingest stage runs) and `source_files` (what planning,
manifests and the stage's cache key run in the parent process).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from dreamedit3d_core.ingest import AssetError
from dreamedit3d_core.ingest.config import IngestConfig
from dreamedit3d_core.ingest.ingest import ingest_asset
from dreamedit3d_core.ingest.isolated import ingest_isolated
from dreamedit3d_core.ingest.limits import IngestLimits
from dreamedit3d_core.ingest.source_files import source_files
from tests.helpers import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))
import bench_hostile_files as hostile  # noqa: E402  (the benchmark's own file builders)

SECONDS = 10.0  # what a hostile file may cost over a small valid one
GIB = 2**30


def one_line(error: pytest.ExceptionInfo[AssetError], *fragments: str) -> str:
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_a_library_named_hundreds_of_times_is_read_once_and_fast(tmp_path: Path) -> None:
    path = hostile.library_named_often(tmp_path)  # 200 mtllib lines x a library of 1000 textured materials
    started = time.perf_counter()
    files = source_files(path)
    listed = time.perf_counter() - started
    assert [file.relative for file in files] == ["many.obj", "big.mtl"]  # its textures t*.png do not exist
    report: dict = {}
    started = time.perf_counter()
    asset = ingest_isolated(path, IngestConfig(), tmp_path / "out", report)
    read = time.perf_counter() - started
    assert listed < SECONDS and read < SECONDS, (listed, read)
    assert report["peak_rss_bytes"] < GIB
    # the library's 1000 missing textures are each reported once, not once per mtllib line
    missing = [message for message in asset.warnings if "not found" in message]
    assert len(missing) == 1000, len(missing)
    assert asset.materials[0].name == "m0" and asset.materials[0].base_color[:3] == (1.0, 0.0, 0.0)


@pytest.mark.parametrize("build", [hostile.library_named_400_times, hostile.library_named_1600_times])
def test_more_library_references_than_the_limit_are_refused_in_both_processes(tmp_path: Path, build) -> None:
    path = build(tmp_path)
    started = time.perf_counter()
    with pytest.raises(AssetError) as listed:
        source_files(path)
    with pytest.raises(AssetError) as read:
        ingest_isolated(path, IngestConfig(), tmp_path / "out")
    assert time.perf_counter() - started < SECONDS
    for error in (listed, read):
        one_line(error, "many.obj", "material library references", "ingest.limits.max_material_libraries=256")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("text", "limit", "what"),
    [
        ("".join(f"newmtl m{i}\nKd 1 0 0\n" for i in range(20)), "max_materials", "materials"),
        ("newmtl m\n" + "map_Kd t.png\n" * 20, "max_texture_references", "texture statements"),
    ],
)
def test_materials_and_texture_statements_are_counted_against_their_limits(
    tmp_path: Path, text: str, limit: str, what: str
) -> None:
    (tmp_path / "lib.mtl").write_text(text)
    (tmp_path / "m.obj").write_text("mtllib lib.mtl\n" + hostile.QUAD + "f 1 2 3\n")
    limits = IngestLimits(**{limit: 10})
    with pytest.raises(AssetError) as error:
        ingest_asset(tmp_path / "m.obj", IngestConfig(limits=limits))
    one_line(error, "m.obj", what, f"ingest.limits.{limit}=10")
    with pytest.raises(AssetError) as error:
        source_files(tmp_path / "m.obj", limits)
    one_line(error, f"ingest.limits.{limit}=10")
    assert len(ingest_asset(tmp_path / "m.obj").parts) == 1  # under the default limits: read


def test_used_materials_and_parts_are_counted_as_the_file_is_read(tmp_path: Path) -> None:
    body = "".join(f"o part{i}\nusemtl m{i}\nf 1 2 3\n" for i in range(20))
    (tmp_path / "m.obj").write_text(hostile.QUAD + body)
    with pytest.raises(AssetError) as error:
        ingest_asset(tmp_path / "m.obj", IngestConfig(limits=IngestLimits(max_materials=10)))
    one_line(error, "materials used (usemtl)", "ingest.limits.max_materials=10")
    with pytest.raises(AssetError) as error:
        ingest_asset(tmp_path / "m.obj", IngestConfig(limits=IngestLimits(max_parts=10)))
    one_line(error, "objects or groups with faces", "ingest.limits.max_parts=10")


def test_listing_an_assets_files_stops_at_its_time_budget(tmp_path: Path) -> None:
    path = hostile.library_named_often(tmp_path, lines=10, textures=10)
    assert len(source_files(path)) == 2
    with pytest.raises(AssetError) as error:
        source_files(path, timeout_s=1e-9)
    one_line(error, "many.obj", "took longer than", "ingest.timeout_s")


def test_a_file_needing_more_memory_than_the_readers_limit_is_refused_not_crashed(tmp_path: Path) -> None:
    """Within every count limit, yet reading it takes over 1 GiB: a MemoryError in the reader (refused, not
    retried as a crash of the machine), never the kernel's out-of-memory killer."""
    path = hostile.fan_beyond_memory(tmp_path)  # 6 million corners
    config = IngestConfig(limits=IngestLimits(max_memory_bytes=GIB))
    report: dict = {}
    with pytest.raises(AssetError) as error:
        ingest_isolated(path, config, tmp_path / "out", report)
    one_line(error, "fan.obj", "more memory than a reader may use", "ingest.limits.max_memory_bytes=1,073,741,824")
    assert report["peak_rss_bytes"] < GIB
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="greater than or equal to 1073741824"):
        IngestLimits(max_memory_bytes=2**20)  # a limit too small to run the reader at all is refused up front


def test_part_names_keep_only_printable_characters(tmp_path: Path) -> None:
    """Terminal escapes (a window title, a hyperlink), bidirectional overrides and line breaks in object
    names (a vertical tab here: a newline ends the OBJ line) become spaces at ingest, with a warning; printable names of any script are kept as written."""
    names = ["seat\x1b]0;pwned\x07", "back\u202erest", "leg\x0bfront", "靠背", "pied avant"]
    body = "".join(f"o {name}\nf 1 2 3\n" for name in names)
    (tmp_path / "m.obj").write_bytes((hostile.QUAD + body).encode())
    asset = ingest_asset(tmp_path / "m.obj", IngestConfig(normalize=False))
    kept = [part.name for part in asset.parts]
    assert kept == ["seat ]0;pwned", "back rest", "leg front", "靠背", "pied avant"]
    renamed = [message for message in asset.warnings if "control characters" in message]
    assert len(renamed) == 3 and "\\x1b" in renamed[0]
