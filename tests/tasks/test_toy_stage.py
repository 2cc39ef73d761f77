"""Adding a stage costs one catalog entry and one module: a toy `upscale` stage after the edit's stages (the
fixture below is the entry, tests/tasks/toy_upscale.py the module) goes through the flow's Prefect tasks, the
plan, `status`, the command line's per-stage commands and the edit's outputs, with no other file touched."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from dreamedit3d_core.config import pipeline_config
from tasks import artifacts as a
from tasks.catalog import EDIT
from tasks.stage import Deferred, Stage
from tests.helpers import FAST
from tests.tasks.toy_upscale import UPSCALED

pytestmark = pytest.mark.usefixtures("prefect_api_url")
PROMPT = "a photo of <asset0> in red"


@pytest.fixture
def upscale_stage() -> Iterator[Stage]:
    """The catalog entry, added to the edit pipeline for this test (and taken out after it)."""
    entry = Stage(
        name="upscale",
        about="the edit's first sampled views at twice the size",
        compute=Deferred("tests.tasks.toy_upscale", "upscale"),
        code_version="1",
        loads=(a.VIEWS,),
        per_edit=True,
        makes=(UPSCALED,),
    )
    before = EDIT.stages
    EDIT.stages = (*before, entry)
    EDIT.__post_init__()
    yield entry
    EDIT.stages = before
    EDIT.__post_init__()


def test_a_toy_stage_is_one_catalog_entry_and_one_module(upscale_stage: Stage, chair: Path, tmp_path: Path) -> None:
    from flows.cli.edit import stage_commands
    from flows.edit_asset import edit_asset
    from flows.planning import plan_asset
    from flows.status import stage_status
    from storage import ArtifactStore

    store, config = f"memory://toy-stage-{tmp_path.name}", pipeline_config("tiny", FAST)
    assert upscale_stage.reads == ("sample",)  # from what it loads

    planned = plan_asset(str(chair), [PROMPT], store, config)
    assert [p.stage for p in planned][-1] == "upscale"

    result = edit_asset(asset_path=str(chair), edits=[PROMPT], store=store, config=config)  # Prefect tasks
    ref = result.stages[-1]
    assert (ref.stage, ref.status, ref.edit) == ("upscale", "computed", PROMPT)
    picture = UPSCALED.load(ArtifactStore(store).get(ref.key))
    assert picture.startswith(b"\x89PNG")
    (edit,) = result.outputs["edits"]  # filed under its edit, though the stage returned nothing
    assert edit["prompt"] == PROMPT and edit["upscaled"] == ref.artifacts["upscaled"]

    (row,) = stage_status(store)
    assert row["stages"]["upscale"]["state"] == "done"
    assert row["edits"][0]["prompt"] == PROMPT and row["edits"][0]["stages"]["upscale"]["state"] == "done"

    commands = dict(stage_commands())  # `dreamedit3d upscale ASSET --edit ...`
    app = typer.Typer()
    app.command("upscale")(commands["upscale"])
    app.command("noop")(lambda: None)
    help_text = CliRunner().invoke(app, ["upscale", "--help"]).output
    assert "--edit" in help_text
