"""After Ctrl-C no stage starts and nothing is retried, even when the KeyboardInterrupt itself was lost."""

from __future__ import annotations

import threading

import pytest

from tasks import interruption
from tasks.catalog import EDIT
from tasks.prefect_task import is_transient, run_task
from tasks.stage import StageCall


class FailedWith:
    """A Prefect state whose result raises `error` (what `retry_condition_fn` is given)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def result(self, raise_on_failure: bool = True) -> None:
        raise self.error


@pytest.fixture
def ctrl_c(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(interruption, "_requested", threading.Event())
    interruption.request()


def test_a_machine_fault_is_retried_unless_ctrl_c_was_pressed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(interruption, "_requested", threading.Event())
    blender_died = FailedWith(OSError("Blender exited with -2"))
    assert is_transient(None, None, blender_died)  # type: ignore[arg-type]
    interruption.request()
    assert not is_transient(None, None, blender_died)  # type: ignore[arg-type]


@pytest.mark.usefixtures("ctrl_c")
def test_after_ctrl_c_no_stage_starts(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(KeyboardInterrupt):
        run_task(EDIT.stage("ingest"), StageCall(store=str(tmp_path / "store"), source=str(tmp_path / "a.obj")))
    assert not (tmp_path / "store").exists()  # nothing was planned, written or logged
