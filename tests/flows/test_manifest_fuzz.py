"""Manifests mutated as careless tools and careful attackers would: each is read or refused with a
ManifestError naming the file, fast, never with another exception (a traceback for the user).

The mutations of good CSV, YAML and Parquet manifests are drawn from a fixed seed, so a failure reproduces;
the named hostile manifests are the ones once reproduced (deep nesting, numbers of thousands of digits,
control characters in prompts, more rows than a night, Parquet files that decode to gigabytes).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dreamedit3d_core.config import pipeline_config
from flows.manifest import MAX_MANIFEST_ROWS, ManifestError, read_manifest

BASE = pipeline_config("tiny")
SECONDS = 10.0
SEED = 2028
EDITS = ["a photo of <asset0> in gold", "a photo of <asset1> in red"]
OVERRIDES = {"mask": {"class_word": "chair"}}


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Good manifests in the three formats, next to the assets they list."""
    folder = tmp_path_factory.mktemp("library")
    (folder / "chair.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    (folder / "lamp.obj").write_text("v 0 0 0\nv 0 1 0\nv 0 0 1\nf 1 2 3\n")
    overrides = json.dumps(OVERRIDES).replace('"', '""')
    (folder / "good.csv").write_text(
        f'asset,edits,overrides\nchair.obj,{" | ".join(EDITS)},"{overrides}"\nlamp.obj,{EDITS[0]},\n', encoding="utf-8"
    )
    (folder / "good.yaml").write_text(
        f"assets:\n  - asset: chair.obj\n    edits: {json.dumps(EDITS)}\n    overrides: {json.dumps(OVERRIDES)}\n"
        f"  - asset: lamp.obj\n    edits: [{json.dumps(EDITS[0])}]\n"
    )
    table = {"asset": ["chair.obj", "lamp.obj"], "edits": [EDITS, EDITS[:1]], "overrides": [json.dumps(OVERRIDES), None]}
    pq.write_table(pa.table(table), folder / "good.parquet")
    return folder


def read_or_refused(path: Path) -> str:
    """'read' or 'refused', within the time allowed; any other exception fails the test."""
    started = time.perf_counter()
    try:
        read_manifest(path, BASE)
        outcome = "read"
    except ManifestError as error:
        assert path.name in str(error), str(error)
        outcome = "refused"
    assert time.perf_counter() - started < SECONDS, f"{path.name} took {time.perf_counter() - started:.1f} s"
    return outcome


def test_the_good_manifests_are_read(library: Path) -> None:
    for name in ("good.csv", "good.yaml", "good.parquet"):
        entries = read_manifest(library / name, BASE)
        assert [Path(entry.asset).name for entry in entries] == ["chair.obj", "lamp.obj"], name
        assert entries[0].edits == EDITS and entries[0].overrides == OVERRIDES, name


Mutation = Callable[[bytes, np.random.Generator], bytes]
MUTATIONS: dict[str, Mutation] = {
    "truncated to a third": lambda data, rng: data[: len(data) // 3],
    "one byte short": lambda data, rng: data[:-1],
    "8 bytes flipped": lambda data, rng: _flip(data, rng, 8),
    "64 bytes flipped": lambda data, rng: _flip(data, rng, 64),
    "random bytes inserted": lambda data, rng: _insert(data, rng, rng.integers(0, 256, 32, dtype=np.uint8).tobytes()),
    "invalid UTF-8 inserted": lambda data, rng: _insert(data, rng, b"\xff\xfe\xc3"),
    "a NUL inserted": lambda data, rng: _insert(data, rng, b"\x00"),
    "an escape sequence inserted": lambda data, rng: _insert(data, rng, b"\x1b]0;pwned\x07"),
}


def _flip(data: bytes, rng: np.random.Generator, count: int) -> bytes:
    mutable = bytearray(data)
    for index in rng.integers(0, len(mutable), count):
        mutable[index] ^= 0xFF
    return bytes(mutable)


def _insert(data: bytes, rng: np.random.Generator, what: bytes) -> bytes:
    at = int(rng.integers(0, len(data)))
    return data[:at] + what + data[at:]


def test_mutated_manifests_are_read_or_refused_never_crash(library: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(SEED)
    outcomes: dict[str, int] = {"read": 0, "refused": 0}
    for name in ("good.csv", "good.yaml", "good.parquet"):
        data = (library / name).read_bytes()
        for what, mutate in MUTATIONS.items():
            for attempt in range(3):
                path = library / f"mutated-{attempt}{Path(name).suffix}"
                path.write_bytes(mutate(data, rng))
                try:
                    outcomes[read_or_refused(path)] += 1
                except AssertionError as error:
                    raise AssertionError(f"{name}, {what} (attempt {attempt}): {error}") from None
    assert outcomes["refused"] > 0 and outcomes["read"] > 0, outcomes  # both happen: the mutations bite


def hostile(library: Path) -> dict[str, bytes]:
    rows = "asset\n" + "chair.obj\n" * (MAX_MANIFEST_ROWS + 1)
    return {
        "deep-flow.yaml": b"- asset: chair.obj\n  overrides: " + b"[" * 20_000 + b"]" * 20_000 + b"\n",
        "deep-block.yaml": b"- asset: chair.obj\n  overrides:\n" + b"".join(b"  " * (i + 2) + b"a:\n" for i in range(2000)),
        "deep-json.csv": b'asset,overrides\nchair.obj,"' + b'{""a"":' * 5000 + b"1" + b"}" * 5000 + b'"\n',
        "huge-int.yaml": b"- asset: chair.obj\n  overrides: {invert: {seed: " + b"9" * 5000 + b"}}\n",
        "huge-int.csv": b'asset,overrides\nchair.obj,"{""invert"": {""seed"": ' + b"9" * 5000 + b'}}"\n',
        "aliases.yaml": b"a: &a [x, x]\nb: &b [*a, *a]\nassets: [{asset: chair.obj, edits: *b}]\n",
        "control.csv": b"asset,edits\nchair.obj,a photo of <asset0> in \x1b[31mred\n",
        "newline.yaml": b'- asset: chair.obj\n  edits: ["a photo of <asset0>\\nin red"]\n',
        "rows.csv": rows.encode(),
        "field.csv": b"asset,edits\nchair.obj," + b"x" * (200 << 10) + b"\n",
        "python-tag.yaml": b"- asset: !!python/object/apply:os.system ['true']\n",
    }


def test_hostile_manifests_are_refused_with_one_line_fast(library: Path, tmp_path: Path) -> None:
    for name, data in hostile(library).items():
        path = library / name
        path.write_bytes(data)
        started = time.perf_counter()
        with pytest.raises(ManifestError) as error:
            read_manifest(path, BASE)
        assert time.perf_counter() - started < SECONDS, name
        message = str(error.value)
        assert name in message and "\n" not in message, message


def test_parquet_manifests_that_decode_to_gigabytes_are_refused_from_their_footer(library: Path) -> None:
    """A few hundred bytes of dictionary-encoded text repeated in every row would decode to gigabytes: the
    row count, the decoded size and each distinct text's size are checked before rows are made."""
    one_value = pa.DictionaryArray.from_arrays(pa.array(np.zeros(5000, np.int32)), pa.array(["x" * 5_000_000]))
    pq.write_table(pa.table({"asset": one_value}), library / "bomb-cell.parquet", compression="zstd")
    in_lists = pa.ListArray.from_arrays(
        pa.array(np.arange(5001, dtype=np.int32)),
        pa.DictionaryArray.from_arrays(pa.array(np.zeros(5000, np.int32)), pa.array(["y" * 3_000_000])),
    )
    pq.write_table(pa.table({"asset": ["chair.obj"] * 5000, "edits": in_lists}), library / "bomb-list.parquet", compression="zstd")
    many = pa.table({"asset": pa.DictionaryArray.from_arrays(pa.array(np.zeros(10**6, np.int32)), pa.array(["chair.obj"]))})
    pq.write_table(many, library / "bomb-rows.parquet", compression="zstd")
    expected = {"bomb-cell.parquet": "a cell of 5,000,000 bytes", "bomb-list.parquet": "a cell of 3,000,000 bytes",
                "bomb-rows.parquet": "1,000,000 rows"}  # fmt: skip
    for name, fragment in expected.items():
        assert (library / name).stat().st_size < 64 << 10
        started = time.perf_counter()
        with pytest.raises(ManifestError, match=fragment):
            read_manifest(library / name, BASE)
        assert time.perf_counter() - started < 2.0, name
