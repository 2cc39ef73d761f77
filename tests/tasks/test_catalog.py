"""The stage catalog: one declaration per stage, and everything derived from it.

A toy pipeline shows what a new stage costs: one `Stage` entry and its compute function, and the key, the
cache, the Prefect task and the checks on what it reads and writes come with it.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from dreamedit3d_core.config import PipelineConfig
from dreamedit3d_core.execution import execution_field
from storage import ArtifactStore
from tasks.artifacts import TableNoun
from tasks.catalog import EDIT, WORLD, all_stages, pipeline_of
from tasks.prefect_task import prefect_task
from tasks.running import StageInputs, StageOutputs, run_stage
from tasks.stage import Pipeline, Stage


class CountConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    upto: int = 3
    workers: int = execution_field(1)  # how it runs, never what it makes


class ToyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: CountConfig = CountConfig()
    factor: int = 2


NUMBERS = TableNoun("numbers", "1..upto", ("n",))
DOUBLED = TableNoun("doubled", "each number times the factor", ("n",))


def count(inputs: StageInputs, outputs: StageOutputs) -> dict[str, Any]:
    outputs.save(NUMBERS, [{"n": n} for n in range(1, inputs.settings("count").upto + 1)])
    return {"rows": inputs.settings("count").upto}


def double(inputs: StageInputs, outputs: StageOutputs) -> None:
    factor = inputs.settings("factor")
    outputs.save(DOUBLED, [{"n": n * factor} for n in inputs.load(NUMBERS)["n"]])


def toy_pipeline(**second: Any) -> Pipeline:
    return Pipeline(
        name="toy",
        config_class=ToyConfig,
        asset_id="toy",
        stages=(
            Stage(name="count", compute=count, code_version="1", config=("count",), makes=(NUMBERS,)),
            Stage(
                name="double",
                compute=second.pop("compute", double),
                code_version="1",
                loads=second.pop("loads", (NUMBERS,)),
                config=second.pop("config", ("factor",)),
                makes=second.pop("makes", (DOUBLED,)),
            ),
        ),
    )


def run_toy(pipeline: Pipeline, store: str, config: ToyConfig) -> dict[str, Any]:
    refs = {}
    for stage in pipeline.stages:
        refs[stage.name] = run_stage(stage, pipeline.call(stage, store=store, config=config, upstream=refs))
    return refs


def test_a_new_stage_is_one_entry_and_its_compute_function(tmp_path: Any) -> None:
    pipeline, store = toy_pipeline(), f"memory://toy-{tmp_path.name}"
    first = run_toy(pipeline, store, ToyConfig())
    assert [ref.status for ref in first.values()] == ["computed", "computed"]
    assert DOUBLED.load(ArtifactStore(store).get(first["double"].key)) == {"n": [2, 4, 6]}
    assert first["count"].metadata == {"rows": 3} and first["double"].asset_id == "toy"

    again = run_toy(pipeline, store, ToyConfig(count=CountConfig(workers=8)))  # an execution-only setting
    assert [ref.status for ref in again.values()] == ["cached", "cached"]
    assert [ref.key for ref in again.values()] == [ref.key for ref in first.values()]

    changed = run_toy(pipeline, store, ToyConfig(factor=3))  # only `double` reads `factor`
    assert [ref.status for ref in changed.values()] == ["cached", "computed"]
    assert DOUBLED.load(ArtifactStore(store).get(changed["double"].key)) == {"n": [3, 6, 9]}

    upstream = run_toy(pipeline, store, ToyConfig(count=CountConfig(upto=2)))  # a new upstream artifact
    assert [ref.status for ref in upstream.values()] == ["computed", "computed"]

    # The same stage as a Prefect task, called as its function (no flow, no server).
    stage = pipeline.stage("double")
    ref = prefect_task(stage).fn(pipeline.call(stage, store=store, config=ToyConfig(), upstream=first))
    assert ref.key == first["double"].key and ref.status == "cached"


def test_a_stage_can_read_and_write_only_what_it_declares(tmp_path: Any) -> None:
    store = f"memory://declared-{tmp_path.name}"

    def reads_an_undeclared_section(inputs: StageInputs, outputs: StageOutputs) -> None:
        inputs.settings("count")

    def saves_an_undeclared_artifact(inputs: StageInputs, outputs: StageOutputs) -> None:
        outputs.save(NUMBERS, [{"n": 1}])

    def saves_nothing(inputs: StageInputs, outputs: StageOutputs) -> None:
        return None

    def loads_an_undeclared_artifact(inputs: StageInputs, outputs: StageOutputs) -> None:
        outputs.save(DOUBLED, [{"n": n} for n in inputs.load(NUMBERS)["n"]])

    cases = [
        (reads_an_undeclared_section, KeyError, "reads config section 'count' without declaring it"),
        (saves_an_undeclared_artifact, KeyError, "saves 'numbers' without declaring it"),
        (saves_nothing, RuntimeError, r"finished without saving \['doubled'\]"),
    ]
    for compute, error, message in cases:
        with pytest.raises(error, match=message):
            run_toy(toy_pipeline(compute=compute), store, ToyConfig())
        assert [a.stage for a in ArtifactStore(store).list()] == ["count"]  # nothing half-written was committed
    with pytest.raises(KeyError, match="loads 'numbers' without declaring it"):  # reads `count` only through `loads`
        run_toy(toy_pipeline(compute=loads_an_undeclared_artifact, loads=()), store, ToyConfig())


def test_a_pipeline_refuses_a_stage_that_reads_a_later_stage_or_an_unknown_section() -> None:
    with pytest.raises(ValueError, match="loads 'doubled', which no earlier stage makes"):
        toy_pipeline(loads=(DOUBLED,))
    with pytest.raises(ValueError, match="config section 'colour', which ToyConfig lacks"):
        toy_pipeline(config=("colour",))
    with pytest.raises(ValueError, match=r"declares the artifact\(s\) \['numbers'\] more than once"):
        toy_pipeline(makes=(NUMBERS,))


def test_the_edit_pipeline_is_the_papers_stage_order() -> None:
    assert EDIT.stage_names == (
        "ingest", "render", "mask", "invert", "finetune", "sample", "reconstruct", "merge", "evaluate"
    )
    assert [s.name for s in EDIT.stages if s.per_edit] == ["sample", "reconstruct", "merge", "evaluate"]
    # optional: the personalisation (on by default, off in the world preset) and the paper's full reconstruction
    assert [s.name for s in EDIT.stages if s.when] == ["invert", "finetune", "reconstruct"]
    assert not EDIT.runs(EDIT.stage("reconstruct"), PipelineConfig())
    assert EDIT.runs(EDIT.stage("reconstruct"), PipelineConfig(reconstruct={"enabled": True}))
    world = PipelineConfig(preset="world")
    assert [s.name for s in EDIT.running(world)] == ["ingest", "render", "mask", "sample", "merge", "evaluate"]
    assert [s.name for s in EDIT.running(PipelineConfig(), "evaluate")] == [  # reconstruct stays off when not asked
        "ingest", "render", "mask", "invert", "finetune", "sample", "merge", "evaluate"
    ]
    # a stage asked for by name runs, with the optional stages it reads: finetune needs invert's tokens
    assert [s.name for s in EDIT.running(world, "finetune")] == ["ingest", "render", "mask", "invert", "finetune"]
    # one walk for edit, plan, batch and the world trainer: the asset's stages once, then each edit's in turn
    walked = [(stage.name, prompt) for stage, prompt in EDIT.walk(world, ["a", "b"])]
    assert walked == [("ingest", None), ("render", None), ("mask", None)] + [
        (name, prompt) for prompt in ("a", "b") for name in ("sample", "merge", "evaluate")
    ]
    assert [(s.name, p) for s, p in EDIT.walk(world, ["a"], until="mask")] == [("ingest", None), ("render", None), ("mask", None)]
    assert [s.name for s in EDIT.stages if s.pool == "gpu"] == ["invert", "finetune", "sample"]
    assert [s.name for s in EDIT.until("mask")] == ["ingest", "render", "mask"]
    with pytest.raises(ValueError, match="unknown stage 'paint'"):
        EDIT.until("paint")
    assert pipeline_of("world") is WORLD and pipeline_of("chair-0123abcd") is EDIT
    nouns = [noun.name for stage in all_stages() for noun in stage.makes]
    assert len(nouns) == len(set(nouns))  # every artifact has one name and one maker


def test_the_command_line_has_a_command_per_stage_of_the_catalog() -> None:
    from flows.cli.app import app

    commands = {command.name for command in app.registered_commands}
    assert set(EDIT.stage_names) <= commands


def test_a_failed_run_is_recorded_once_and_a_broken_ledger_never_hides_the_stages_error(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(inputs: StageInputs, outputs: StageOutputs) -> None:
        raise ValueError("the input is bad")

    pipeline, store = toy_pipeline(compute=broken), f"memory://toy-failed-{tmp_path.name}"
    with pytest.raises(ValueError, match="the input is bad"):
        run_toy(pipeline, store, ToyConfig())
    (row,) = [row for row in ArtifactStore(store).ledger.read().to_pylist() if row["status"] == "failed"]
    assert row["stage"] == "double" and row["error"] == "ValueError: the input is bad"

    def full_disk(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    first, second = pipeline.stages
    counted = run_stage(first, pipeline.call(first, store=store, config=ToyConfig()))
    monkeypatch.setattr("storage.ledger.Ledger.append", full_disk)
    with pytest.raises(ValueError, match="the input is bad"):  # not the ledger's OSError
        run_stage(second, pipeline.call(second, store=store, config=ToyConfig(), upstream={"count": counted}))
    assert "the run ledger could not record this failure (OSError" in capsys.readouterr().err
