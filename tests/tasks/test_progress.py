"""Long loops report progress in lines a log file can hold: step, loss, time so far and time left."""

from __future__ import annotations

import pytest

import tasks.progress
from tasks.progress import duration, progress


def test_a_log_gets_a_line_every_few_seconds_with_the_loss_and_the_time_left(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = iter(float(t) for t in range(0, 1000, 3))  # each call: 3 s later
    monkeypatch.setattr(tasks.progress.time, "perf_counter", lambda: next(clock))
    with progress("invert", every_s=10) as on_step:  # stderr is captured: not a terminal
        for step in range(1, 21):
            on_step(step, 20, {"loss": 0.5 / step, "align": 0.25})
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "invert: step 1/20 (5%), loss 0.5, align 0.25, 3 s so far, estimating the time left"
    assert lines[1] == "invert: step 5/20 (25%), loss 0.1, align 0.25, 15 s so far, about 45 s left"
    assert lines[-1].startswith("invert: step 20/20 (100%), loss 0.025") and "left" not in lines[-1]
    assert 5 <= len(lines) <= 8  # about one line per 10 s of a 60 s loop, not one per step


def test_the_time_left_counts_step_time_only_not_what_came_before_the_first_step(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Phase 2 samples its prior images before step 1 (minutes): the time left must not take them for steps."""
    times = iter([0.0, 600.0, *(600.0 + 2 * t for t in range(1, 400))])  # 10 minutes before step 1, then 2 s a step
    monkeypatch.setattr(tasks.progress.time, "perf_counter", lambda: next(times))
    with progress("finetune", every_s=0) as on_step:
        for step in range(1, 11):
            on_step(step, 300)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "finetune: step 1/300 (0%), 10m00s so far, estimating the time left"
    assert lines[3] == "finetune: step 4/300 (1%), 10m06s so far, about 9m52s left"  # 296 steps x 2 s


def test_durations_read_as_people_write_them() -> None:
    assert [duration(s) for s in (4.4, 65, 3725)] == ["4 s", "1m05s", "1h02m"]
