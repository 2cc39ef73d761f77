"""Remote libraries (flows/remote_library.py) against hostile input: the protocols a URL may use, listed names that try
to leave the cache, files larger than the ingest limit, and two batches sharing one machine's cache.

The remote is fsspec's `memory://` (one process) or a `file://` folder (several processes)."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest
from PIL import Image

from flows.remote_library import RemoteLibrary, RemoteSourceError, checked_protocol, checked_relative
from tests.helpers import PROJECT_ROOT

# An OBJ naming its material library, which names a texture: three rounds of references.
OBJ = b"mtllib a.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nusemtl wood\nf 1 2 3\n"
MTL = b"newmtl wood\nKd 1 1 1\nmap_Kd tex.png\n"
PLAIN_OBJ = b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 120, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def memory_library() -> Iterator[str]:
    """A library in memory: `lib/manifest.csv`, `lib/a.obj` (-> a.mtl -> tex.png), `lib/b.obj` (no material)."""
    root = f"memory://sources-{uuid.uuid4().hex}"
    fs = fsspec.filesystem("memory")
    fs.pipe_file(f"{root}/lib/manifest.csv", b"asset,edits\na.obj,x\n")
    for name, data in {"a.obj": OBJ, "a.mtl": MTL, "tex.png": png_bytes(), "b.obj": PLAIN_OBJ}.items():
        fs.pipe_file(f"{root}/lib/{name}", data)
    yield root
    fs.rm(root, recursive=True)


def files_under(folder: Path) -> list[str]:
    """Every file under `folder`, relative to it (posix), sorted."""
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("lib/../../x.png", "escapes the manifest's folder"),
        ("../x.png", "escapes the manifest's folder"),
        ("a/../b.png", "holds a '..' segment"),
        ("/etc/passwd", "relative to the manifest's folder"),
        ("a//b", "empty or '.' segment"),
        ("a/./b", "empty or '.' segment"),
        ("a/", "empty or '.' segment"),
        ("", "an empty name"),
        ("C:\\x", "backslash"),
        ("C:x.png", "relative to the manifest's folder"),
        ("a\\..\\b", "backslash"),
        ("tex\x1b[2J.png", "control characters"),
        ("line\nbreak.png", "control characters"),
        ("s3://bucket/x.glb", "not a URL"),
    ],
)
def test_a_name_that_is_not_a_plain_relative_path_is_refused(name: str, why: str) -> None:
    with pytest.raises(RemoteSourceError, match=re.escape(why)):
        checked_relative(name)


def test_a_plain_relative_name_is_kept_as_written() -> None:
    assert checked_relative("fuze/fuze uv.jpg") == "fuze/fuze uv.jpg"
    assert checked_relative("a.b/..c/x..png") == "a.b/..c/x..png"  # dots inside a segment are a name, not '..'


def test_a_listed_name_leaving_the_folder_refuses_its_asset_and_nothing_outside_the_cache_is_written(
    memory_library: str, tmp_path: Path
) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe_file(f"{memory_library}/lib/../../x.png", b"not yours")  # a key an object store may well hold
    fs.pipe_file(f"{memory_library}/lib/sub/c.obj", PLAIN_OBJ)
    cache = tmp_path / "cache"
    library = RemoteLibrary(f"{memory_library}/lib/manifest.csv", cache_dir=cache)
    with pytest.raises(RemoteSourceError) as refused:
        library.asset("a.obj")
    message = str(refused.value)
    assert "'../../x.png'" in message and "escapes the manifest's folder" in message and "\n" not in message
    # An asset in another folder does not see the name, and is copied.
    assert library.asset("sub/c.obj").read_bytes() == PLAIN_OBJ
    assert all(path.startswith(f"sources/{library.root.name}/") for path in files_under(cache)), files_under(cache)
    assert files_under(library.root) == [".checksums.json", ".lock", "sub/c.obj"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cache"]


def test_an_asset_is_copied_with_exactly_what_it_references(memory_library: str, tmp_path: Path) -> None:
    library = RemoteLibrary(f"{memory_library}/lib/manifest.csv", cache_dir=tmp_path)
    main = library.asset("a.obj")
    assert main == library.root / "a.obj"
    assert library.fetch_manifest().read_bytes() == b"asset,edits\na.obj,x\n"
    # No placeholder ever reaches the cache: b.obj and its empty stand-ins lived in a staging folder only.
    assert files_under(library.root) == [".checksums.json", ".lock", "a.mtl", "a.obj", "manifest.csv", "tex.png"]
    assert (library.root / "a.mtl").read_bytes() == MTL and (library.root / "tex.png").read_bytes() == png_bytes()
    assert list((library.root / ".staging").iterdir()) == []  # each operation cleans its staging folder up

    # An unchanged file is not copied again; a changed one is.
    before = (library.root / "a.mtl").stat().st_mtime_ns
    fsspec.filesystem("memory").pipe_file(f"{memory_library}/lib/a.obj", OBJ + b"# changed\n")
    again = RemoteLibrary(f"{memory_library}/lib/manifest.csv", cache_dir=tmp_path)
    assert again.asset("a.obj").read_bytes() == OBJ + b"# changed\n"
    assert (library.root / "a.mtl").stat().st_mtime_ns == before


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/lib/manifest.csv",
        "https://example.com/lib/manifest.csv",
        "ftp://example.com/lib/manifest.csv",
        "sftp://host/lib/manifest.csv",
        "hdfs://host/lib/manifest.csv",
    ],
)
def test_a_protocol_outside_the_allowed_list_is_refused_naming_the_allowed_ones(url: str, tmp_path: Path) -> None:
    protocol = url.split("://")[0]
    with pytest.raises(RemoteSourceError) as refused:
        RemoteLibrary(url, cache_dir=tmp_path)
    message = str(refused.value)
    assert f"protocol {protocol!r} is not allowed" in message
    assert "use one of s3, s3a, gs, gcs, az, abfs, abfss, file, memory" in message
    assert "(http and https only with DREAMEDIT3D_ALLOW_HTTP_SOURCES=1)" in message
    assert isinstance(refused.value, ValueError)  # the command line prints a ValueError as one line, exit code 2
    assert not (tmp_path / "sources").exists()


def test_http_is_allowed_only_where_the_operator_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DREAMEDIT3D_ALLOW_HTTP_SOURCES", raising=False)
    with pytest.raises(RemoteSourceError):
        checked_protocol("https://example.com/lib/manifest.csv")
    assert checked_protocol("https://example.com/lib/manifest.csv", allow_http=True) == "https"
    library = RemoteLibrary("http://example.com/lib/manifest.csv", cache_dir=tmp_path, allow_http=True)  # no request
    assert library.folder_url == "http://example.com/lib"
    monkeypatch.setenv("DREAMEDIT3D_ALLOW_HTTP_SOURCES", "1")
    assert checked_protocol("http://example.com/lib/manifest.csv") == "http"
    with pytest.raises(RemoteSourceError, match="'ftp' is not allowed.*memory, http, https"):
        checked_protocol("ftp://example.com/lib/manifest.csv")


@pytest.mark.parametrize(
    "url",
    [
        "simplecache::memory://lib/manifest.csv",
        "zip://manifest.csv::memory://lib/archive.zip",
        "memory::memory://lib/manifest.csv",
    ],
)
def test_a_chained_url_is_refused(url: str, tmp_path: Path) -> None:
    with pytest.raises(RemoteSourceError, match=r"chained URLs \('::'\) are not read.*use one of s3, s3a"):
        RemoteLibrary(url, cache_dir=tmp_path)


def test_the_allowed_protocols_are_read(tmp_path: Path) -> None:
    for url in ["s3://bucket/lib/manifest.csv", "gs://bucket/lib/manifest.csv", "/local/lib/manifest.csv"]:
        checked_protocol(url)
    local = tmp_path / "local"
    local.mkdir()
    (local / "manifest.csv").write_bytes(b"asset,edits\nb.obj,x\n")
    (local / "b.obj").write_bytes(PLAIN_OBJ)
    library = RemoteLibrary(f"file://{local}/manifest.csv", cache_dir=tmp_path / "cache")
    assert library.asset("b.obj").read_bytes() == PLAIN_OBJ


def test_a_file_larger_than_the_limit_is_refused_before_it_is_downloaded(
    memory_library: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe_file(f"{memory_library}/lib/big.obj", PLAIN_OBJ + b"#" * 2000)
    size = len(PLAIN_OBJ) + 2000
    library = RemoteLibrary(f"{memory_library}/lib/manifest.csv", cache_dir=tmp_path, max_file_bytes=1000)
    opened: list[str] = []
    original_open = library.fs.open

    def recorded_open(path: str, *args: object, **kwargs: object) -> object:
        opened.append(path)
        return original_open(path, *args, **kwargs)

    monkeypatch.setattr(library.fs, "open", recorded_open)
    with pytest.raises(RemoteSourceError) as refused:
        library.asset("big.obj")
    assert str(refused.value) == (
        f"{library.folder_url}/big.obj: {size:,} bytes, more than the limit ingest.limits.max_file_bytes=1,000; not "
        "copied (raise the limit in the config if the file is meant to be this large)"
    )
    assert opened == []  # never opened, let alone downloaded
    assert [name for name in files_under(library.root) if not name.startswith(".")] == []
    # The manifest is held to the same limit.
    fs.pipe_file(f"{memory_library}/lib/manifest.csv", b"asset,edits\n" + b"a.obj,x\n" * 200)
    with pytest.raises(RemoteSourceError, match="manifest.csv: 1,612 bytes, more than the limit"):
        library.fetch_manifest()
    # The default limit is ingest's.
    from dreamedit3d_core.ingest.limits import IngestLimits

    default = RemoteLibrary(f"{memory_library}/lib/manifest.csv", cache_dir=tmp_path)
    assert default.max_file_bytes == IngestLimits().max_file_bytes


def test_a_download_growing_past_the_limit_is_stopped(memory_library: str, tmp_path: Path) -> None:
    fs = fsspec.filesystem("memory")
    library = RemoteLibrary(f"{memory_library}/lib/manifest.csv", cache_dir=tmp_path, max_file_bytes=1000)
    library._files()  # listed while b.obj is small ...
    fs.pipe_file(f"{memory_library}/lib/b.obj", PLAIN_OBJ + b"#" * 5000)  # ... and replaced before it is copied
    with pytest.raises(RemoteSourceError, match=r"b\.obj: more than 1,000 bytes arrived, more than the limit"):
        library.asset("b.obj")
    assert [name for name in files_under(library.root) if not name.startswith(".")] == []
    assert list((library.root / ".staging").iterdir()) == []


def test_a_staging_folder_left_by_a_dead_process_is_removed_and_a_live_one_is_not(
    memory_library: str, tmp_path: Path
) -> None:
    import filelock

    library = RemoteLibrary(f"{memory_library}/lib/manifest.csv", cache_dir=tmp_path)
    staging = library.root / ".staging"
    (staging / "999-dead").mkdir(parents=True)
    (staging / "999-dead" / "half.part").write_bytes(b"x" * 100)
    (staging / "998-live").mkdir()
    (staging / "998-live" / "half.part").write_bytes(b"x" * 100)
    with filelock.FileLock(staging / ".998-live.lock", thread_local=False):
        library.asset("b.obj")
        assert sorted(path.name for path in staging.iterdir()) == [".998-live.lock", "998-live"]
        assert (staging / "998-live" / "half.part").is_file()


# Run by each of two processes sharing one cache: round by round (a fresh cache each round, both processes
# starting together), fetch both assets (in opposite orders) and check, right after each call, that every file
# the asset needs is in the cache, complete.
WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from flows.remote_library import RemoteLibrary

    url, work, me, rounds = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    remote = Path(url.removeprefix("file://")).parent
    needs = {"a.obj": ["a.obj", "a.mtl", "tex.png"], "b.obj": ["b.obj"]}
    order = ["a.obj", "b.obj"] if me == 0 else ["b.obj", "a.obj"]
    def stop(message):
        (work / "stopped").touch()  # the other process stops waiting for this one
        sys.exit(message)

    for round in range(rounds):
        (work / f"ready-{round}-{me}").touch()
        waited = time.monotonic()
        while not (work / f"ready-{round}-{1 - me}").exists():
            if (work / "stopped").exists() or time.monotonic() - waited > 120:
                stop(f"round {round}: the other process stopped")
            time.sleep(0.001)
        library = RemoteLibrary(url, cache_dir=work / f"cache-{round}")
        for asset in order:
            main = library.asset(asset)
            for name in needs[asset]:
                copy = main.parent / name
                if not copy.is_file() or copy.read_bytes() != (remote / name).read_bytes():
                    stop(f"round {round}: {asset}: {name} missing or incomplete after the copy")
    print("ok")
    """
)


def test_two_processes_sharing_the_cache_never_delete_each_others_files(tmp_path: Path) -> None:
    remote = tmp_path / "remote" / "lib"
    remote.mkdir(parents=True)
    files = {"a.obj": OBJ, "a.mtl": MTL, "tex.png": png_bytes(), "b.obj": PLAIN_OBJ}
    files["manifest.csv"] = b"asset,edits\na.obj,x\nb.obj,y\n"
    files.update({f"unused{number:03}.png": b"" for number in range(150)})  # many candidates: slow placeholders
    for name, data in files.items():
        (remote / name).write_bytes(data)
    work = tmp_path / "work"
    work.mkdir()
    rounds = 20
    command = [sys.executable, "-c", WORKER, f"file://{remote}/manifest.csv", str(work)]
    workers = [
        subprocess.Popen(
            [*command, str(me), str(rounds)], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for me in (0, 1)
    ]
    try:
        outputs = [worker.communicate(timeout=300)[0] for worker in workers]
    finally:
        for worker in workers:
            worker.kill()  # no-op for one that ended
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    for round in range(rounds):
        (root,) = (work / f"cache-{round}" / "sources").iterdir()
        assert files_under(root) == [".checksums.json", ".lock", "a.mtl", "a.obj", "b.obj", "tex.png"]
        assert all((root / name).read_bytes() == files[name] for name in ("a.obj", "a.mtl", "tex.png", "b.obj"))
