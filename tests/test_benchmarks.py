"""The edit benchmark's written-down split and one object through it, as its command line runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))


def test_the_split_is_written_down_and_the_halves_never_share_an_object() -> None:
    import world_edit_objects

    written = json.loads(world_edit_objects.SPLIT_FILE.read_text())
    assert written == world_edit_objects.compute_split(), "the objects drawn no longer match the written-down split"
    tuning, test, textured = set(written["tuning"]), set(written["test"]), set(written["textured"])
    assert len(tuning) == 12 and len(test) == 32 and len(textured) == 4
    assert not tuning & test and not (tuning | test) & textured
    assert written["demo"] in test


@pytest.mark.slow
def test_one_object_of_the_benchmark_end_to_end_and_cached(tmp_path: Path) -> None:
    """The world preset's row on one tuning object, through the pipeline's store (no personalisation: ingest,
    render, mask, sample): sampled, merged, rendered, scored against the answer; a second run reads the cached
    scores."""
    command = [
        sys.executable, "benchmarks/bench_world_edits.py", "--half", "tuning", "--objects", "1", "--samples", "1",
        "--rows", "preset", "--work", str(tmp_path / "work"), "--results", str(tmp_path / "results"),
    ]  # fmt: skip

    def run() -> subprocess.CompletedProcess[str]:
        result = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return result

    first = run()
    assert "object   3 preset" in first.stdout  # computed, with its line
    scores = list((tmp_path / "work" / "scores").glob("preset-*/003.json"))
    assert len(scores) == 1
    rows = json.loads(scores[0].read_text())
    assert [r["edit"] for r in rows] == ["recolour", "recolour2", "swap"]
    for row in rows:
        assert 0.0 <= row["merged"]["colour_share"] <= 1.0 and isinstance(row["success"], bool)
        assert row["merged"]["kept_psnr"] is None or row["merged"]["kept_psnr"] > 25  # kept parts are the source's
    assert rows[2]["merged"]["shape_iou"] is not None
    second = run()
    assert "object   3 preset" not in second.stdout  # nothing computed again
    assert "| the world preset (no personalisation) |" in second.stdout
    assert (tmp_path / "results" / "world_edits_tuning.md").read_text().count("| 3 |") == 1  # the per-object line
