"""scripts/gpu_check.sh, the first run of a session lent a GPU, in its --tiny mode on the CPU: every part runs and
lands in the one results file, with its status and its benchmark's table."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.helpers import PROJECT_ROOT


@pytest.mark.slow
def test_the_gpu_check_runs_every_part_tiny_on_the_cpu_into_one_results_file(tmp_path: Path) -> None:
    out = tmp_path / "results"
    result = subprocess.run(
        ["bash", "scripts/gpu_check.sh", "--tiny", "--out", str(out)],
        capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=900,
    )  # fmt: skip
    report = out / "gpu_check.md"
    text = report.read_text() if report.is_file() else ""
    assert result.returncode == 0, result.stderr[-3000:] + text[-3000:]
    assert text.startswith("# GPU check\n") and "- device: CPU" in text and "--tiny --out" in text
    parts = re.split(r"^## ", text, flags=re.M)[1:]
    titles = [part.splitlines()[0] for part in parts]
    assert [title.split(" ")[0] for title in titles] == ["a.", "a.", "b.", "c."], titles
    for part in parts:
        assert "- status: ok\n" in part, part[:2000]
        assert re.search(r"- wall time: \d+ s \(budget \d+ s\)", part)
    bf16, fp32, edits, pretrain = parts
    # phase 1 and 2 with a memory option; the bf16 variants are the benchmark's own CUDA-only rows
    assert "| phase | variant | s / step |" in fp32 and "| invert | fp32 + gradient checkpointing | " in fp32
    assert "| finetune | fp32 + gradient checkpointing | " in fp32 and "not run" not in fp32
    assert "| invert | bf16 | not run: CUDA only |" in bf16
    assert "| no personalisation: base model, regions alone, initializer words | 1 x 1 |" in edits
    assert re.search(r"^\| 2 \| [\d.]+ \| [\d.]+ \| - \|$", pretrain, flags=re.M)  # objects per step, s, objects/s
    assert text.rstrip().endswith("every part ran")
    assert "--work /tmp/gpu-check." in edits  # a work folder of its own, never the benchmark's shared cache
