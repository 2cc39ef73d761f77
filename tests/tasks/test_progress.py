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
    assert lines[0] == "invert: step 1/20 (5%), loss 0.5, align 0.25, 3 s so far, about 57 s left"
    assert lines[-1].startswith("invert: step 20/20 (100%), loss 0.025") and "left" not in lines[-1]
    assert 5 <= len(lines) <= 8  # about one line per 10 s of a 60 s loop, not one per step


def test_durations_read_as_people_write_them() -> None:
    assert [duration(s) for s in (4.4, 65, 3725)] == ["4 s", "1m05s", "1h02m"]
