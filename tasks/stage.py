"""What a stage is: its declaration (`Stage`, gathered into a `Pipeline`), the call a flow makes of it
(`StageCall`), its artifact key (`plan`), and the reference it returns (`StageRef`).

A stage's artifact key is a digest of exactly what can change its artifact: the stage's name and code
version, the config sections it declares (without their execution-only fields), the edit it samples (per-edit
stages), the digests of what it reads (its upstream stages' artifacts, or the source file and every file
the reader opens), and the format versions of the nouns it makes and loads, once bumped past "1". A stage can
read nothing else: `StageInputs` (tasks/running.py) refuses an undeclared section or upstream artifact, so no
key can leave out what a stage used.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, PrivateAttr, TypeAdapter

from dreamedit3d_core.execution import is_execution_only, key_settings
from dreamedit3d_core.mvdiffusion import EditConfig
from storage import artifact_key
from tasks.artifacts import Noun

if TYPE_CHECKING:
    from tasks.running import StageInputs, StageOutputs

Compute = Callable[["StageInputs", "StageOutputs"], Mapping[str, Any] | None]


@dataclass(frozen=True)
class Deferred:
    """A compute function named by its module, imported at its first call: declaring the stages (and so
    checking a config, planning a run or serving a fully cached one) imports no torch, trimesh or Blender."""

    module: str  # e.g. "tasks.invert"
    name: str  # e.g. "invert"

    def __call__(self, inputs: StageInputs, outputs: StageOutputs) -> Mapping[str, Any] | None:
        return getattr(importlib.import_module(self.module), self.name)(inputs, outputs)


class StageRef(BaseModel):
    """The small reference a stage returns: where its artifacts are and how it got them."""

    model_config = ConfigDict(frozen=True)

    asset_id: str
    stage: str
    key: str
    digest: str
    status: Literal["computed", "cached"]
    seconds: float
    artifacts: dict[str, str]  # artifact noun -> URI
    metadata: dict[str, Any] = {}  # what the stage's compute function returned
    edit: str | None = None  # a per-edit stage's: the edit prompt its artifacts belong to

    def as_cached(self) -> StageRef:
        return self.model_copy(update={"status": "cached", "seconds": 0.0})


class StageCall(BaseModel):
    """One call of a stage, as plain JSON: what a Prefect task receives and a remote worker is sent."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    store: str
    upstream: dict[str, StageRef] = {}  # stage name -> its reference, for every stage this one reads
    config: dict[str, Any] = {}  # the pipeline config's sections this stage declares, as JSON
    edit: EditConfig | None = None  # per-edit stages: the edit
    source: str | None = None  # a stage that reads the source file (ingest): its path
    preset: str | None = None  # the preset the config came from: recorded in the ledger, never part of the key
    # the call's plan, made once (`planned`) and shared by whoever holds this call in this process (the flow,
    # Prefect's cache policy, run_stage); never sent: a remote worker plans the call itself
    _plan: StagePlan | None = PrivateAttr(default=None)


@dataclass(eq=False)
class Stage:
    """One stage, declared once in tasks/catalog.py; everything else (cache key, Prefect task, CLI command,
    `edit_asset`'s order, `status`, the GPU deployment) is derived from this."""

    name: str  # a verb: the Prefect task, the CLI command and the ledger's stage are named after it
    compute: Compute | Deferred  # reads through StageInputs, calls dreamedit3d_core, saves through StageOutputs
    code_version: str  # bump when the artifact would change; tests/tasks/test_code_versions.py checks
    makes: tuple[Noun, ...]  # its artifacts, every one saved by every run
    # the artifacts it loads; the stages it reads follow from them (those that make them). An artifact of an
    # optional stage (with `when`) is loaded only when that stage ran (`StageInputs.ran`)
    loads: tuple[Noun, ...] = ()
    config: tuple[str, ...] = ()  # sections of its pipeline's config it reads
    when: str | None = None  # a true/false setting ("reconstruct.enabled"): the stage runs only when it is true
    per_edit: bool = False  # once per edit prompt (with `StageCall.edit`); else once per asset
    pool: Literal["cpu", "gpu"] = "cpu"  # the work pool it runs on when a flow runs distributed
    retries: int = 2  # retries of transient faults (never of bad input)
    checkpoints: bool = False  # resumable inside the stage: a scratch folder kept across crashes
    # a stage that reads the source file: its path -> (asset id, input name -> digest of every file it opens)
    identify: Callable[[str], tuple[str, dict[str, str]]] | None = None
    # ... and its path -> the asset id alone (the ledger row of a source the reader refuses)
    name_source: Callable[[str], str] | None = None
    # run on the stage's reference before later stages: raises when an edit cannot be made (unknown tokens)
    check_edits: Callable[[StageRef, Sequence[str]], None] | None = None
    about: str = ""
    pipeline: Pipeline = field(init=False, repr=False)
    reads: tuple[str, ...] = field(init=False, default=())  # from `loads`: the upstream stages, in pipeline order
    reads_if_run: tuple[str, ...] = field(init=False, default=())  # ... those of them that may not run (`when`)

    def __repr__(self) -> str:
        return f"Stage({self.name!r})"

    @property
    def compute_module(self) -> str:
        """The module that holds the compute function (code versions follow its imports)."""
        return self.compute.module if isinstance(self.compute, Deferred) else self.compute.__module__


@dataclass(eq=False)
class Pipeline:
    """Stages in the order they run, over one config class (each stage reads some of its sections)."""

    name: str
    config_class: type[BaseModel]
    stages: tuple[Stage, ...]
    # a pipeline of one pseudo-asset (the world model's training) names it; others take the source's asset id
    asset_id: str | None = None
    # how a section enters the key when its JSON is not the right thing to hash (the model: its weights' digest)
    section_keys: Mapping[str, Callable[[Any], Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [stage.name for stage in self.stages]
        made = [noun.name for stage in self.stages for noun in stage.makes]
        for what, values in (("stage", names), ("artifact", made)):
            repeated = sorted({v for v in values if values.count(v) > 1})
            if repeated:
                raise ValueError(f"pipeline {self.name!r} declares the {what}(s) {repeated} more than once")
        for index, stage in enumerate(self.stages):
            stage.pipeline = self
            earlier = self.stages[:index]
            producers = set()
            for noun in stage.loads:
                producer = next((s for s in earlier if noun in s.makes), None)
                if producer is None:
                    raise ValueError(f"stage {stage.name!r} loads {noun.name!r}, which no earlier stage makes")
                producers.add(producer.name)
            stage.reads = tuple(s.name for s in earlier if s.name in producers and s.when is None)
            stage.reads_if_run = tuple(s.name for s in earlier if s.name in producers and s.when is not None)
            for section in stage.config:
                if section not in self.config_class.model_fields:
                    raise ValueError(f"stage {stage.name!r} reads config section {section!r}, which {self.config_class.__name__} lacks")

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(stage.name for stage in self.stages)

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise ValueError(f"unknown stage {name!r}; stages are {', '.join(self.stage_names)}")

    def until(self, name: str | None) -> tuple[Stage, ...]:
        """The stages up to and including `name` (all of them for None)."""
        if name is None:
            return self.stages
        last = self.stages.index(self.stage(name))
        return self.stages[: last + 1]

    def runs(self, stage: Stage, config: BaseModel) -> bool:
        """Whether the config turns the stage on (stages without `when` always run)."""
        if stage.when is None:
            return True
        value: Any = config
        for name in stage.when.split("."):
            value = getattr(value, name)
        return bool(value)

    def running(self, config: BaseModel, until: str | None = None) -> tuple[Stage, ...]:
        """The stages a run up to `until` runs, in order: those the config turns on and, when `until` names an
        optional stage the config turns off, that stage and the optional stages it reads (asked for by name)."""
        stages = self.until(until)
        asked = {until} if until is not None else set()
        for stage in reversed(stages):
            if stage.name in asked and stage.when is not None:
                asked.update(stage.reads_if_run)
        return tuple(s for s in stages if self.runs(s, config) or s.name in asked)

    def walk(self, config: BaseModel, edits: Sequence[str] = (), until: str | None = None) -> Iterator[tuple[Stage, str | None]]:
        """A run's stage calls in the order they run: each of the asset's stages once (with None), then, edit by
        edit, each per-edit stage with its prompt. `edit_asset`, `plan`, `batch` and the world trainer all walk
        this, so they agree on what runs."""
        stages = self.running(config, until)
        for stage in stages:
            if not stage.per_edit:
                yield stage, None
        for prompt in edits:
            for stage in stages:
                if stage.per_edit:
                    yield stage, prompt

    def producer(self, noun: Noun) -> Stage:
        for stage in self.stages:
            if noun in stage.makes:
                return stage
        raise ValueError(f"no stage of pipeline {self.name!r} makes the artifact {noun.name!r}")

    def call(
        self,
        stage: Stage,
        *,
        store: str,
        config: BaseModel,
        upstream: Mapping[str, StageRef] | None = None,
        edit: EditConfig | None = None,
        source: str | None = None,
        allow_missing: bool = False,
    ) -> StageCall:
        """The call of `stage`: the upstream references and config sections it declares, nothing else
        (`allow_missing`: without upstream artifacts not made yet, for what does not need them: a cost profile)."""
        upstream = upstream or {}
        missing = [name for name in stage.reads if name not in upstream]
        if missing and not allow_missing:
            raise ValueError(f"stage {stage.name!r} needs the artifacts of {missing} first")
        return StageCall(
            store=store,
            upstream={name: upstream[name] for name in (*stage.reads, *stage.reads_if_run) if name in upstream},
            config={section: _json(getattr(config, section)) for section in stage.config},
            edit=edit if stage.per_edit else None,
            source=source if stage.identify is not None else None,
            preset=getattr(config, "preset", None),
        )

    def settings(self, stage: Stage, call: StageCall, section: str) -> Any:
        """A declared config section of the call, typed."""
        if section not in stage.config:
            raise KeyError(f"stage {stage.name!r} reads config section {section!r} without declaring it in the catalog")
        annotation = self.config_class.model_fields[section].annotation
        return TypeAdapter(annotation).validate_python(call.config[section])


def _json(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


@dataclass(frozen=True)
class StagePlan:
    """Everything that decides a stage's artifact: recompute exactly when one of these changes."""

    store_uri: str
    asset_id: str
    stage: str
    code_version: str
    config: Mapping[str, Any]  # the stage's settings; a per-edit stage's edit under "edit"
    inputs: Mapping[str, str]  # input name -> digest (file bytes, or an upstream artifact's digest)
    # noun -> format version (tasks/artifacts.py) of the nouns the stage makes or loads whose version is not "1"
    formats: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        # Format versions start at "1" and enter the key only once bumped, appended to the code version it is
        # hashed with: while every noun is at "1" the key is the one it was before nouns had versions, so the
        # artifacts already in users' stores stay valid.
        version = self.code_version
        if self.formats:
            version += "+" + ",".join(f"{noun}@{bumped}" for noun, bumped in sorted(self.formats.items()))
        return artifact_key(self.stage, version, self.config, self.inputs)

    @property
    def edit(self) -> str | None:
        """A per-edit stage's edit prompt (None for the asset's own stages)."""
        return edit_prompt(self.config)


def edit_prompt(config: Mapping[str, Any]) -> str | None:
    """The edit prompt in a plan's settings, as a commit's metadata keeps them (None: not a per-edit stage)."""
    edit = config.get("edit")
    return edit.get("prompt") if isinstance(edit, Mapping) else None


def stage_settings(stage: Stage, call: StageCall) -> dict[str, Any]:
    """The settings of the config sections the stage reads, as its key sees them (execution-only ones left out)."""
    pipeline = stage.pipeline
    settings: dict[str, Any] = {}
    for section in stage.config:
        if is_execution_only(pipeline.config_class, section):
            continue
        value = pipeline.settings(stage, call, section)
        to_key = pipeline.section_keys.get(section)
        settings[section] = to_key(value) if to_key is not None else key_settings(value)
    return settings


def cost_profile(stage: Stage, call: StageCall, settings: Mapping[str, Any] | None = None) -> str:
    """What a stage's run time depends on besides the asset: the preset and the stage's settings (the model,
    steps, sizes; not the edit prompt). Runs with the same profile are the history an estimate goes by.
    `settings`: the stage's settings when they are known already (a plan's), else they are worked out."""
    if settings is None:
        settings = stage_settings(stage, call)
    facts = {"stage": stage.name, "preset": call.preset, "settings": {k: v for k, v in settings.items() if k != "edit"}}
    text = json.dumps(facts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def planned(stage: Stage, call: StageCall) -> StagePlan:
    """`plan(stage, call)`, made once per call: planning hashes the source's files and the weights' digests, and
    a stage call is asked for its key by the flow, by Prefect's cache policy and by `run_stage`."""
    if call._plan is None or call._plan.stage != stage.name:
        call._plan = plan(stage, call)
    return call._plan


def plan(stage: Stage, call: StageCall) -> StagePlan:
    """The stage's artifact key for this call (reads the source's files for `identify` stages, nothing else)."""
    pipeline = stage.pipeline
    settings = stage_settings(stage, call)
    if stage.per_edit:
        if call.edit is None:
            raise ValueError(f"stage {stage.name!r} runs per edit: give the edit")
        settings["edit"] = call.edit.model_dump(mode="json")
    inputs = {name: call.upstream[name].digest for name in (*stage.reads, *stage.reads_if_run) if name in call.upstream}
    if stage.identify is not None:
        if call.source is None:
            raise ValueError(f"stage {stage.name!r} reads a source file: give its path")
        asset_id, files = stage.identify(call.source)
        inputs.update(files)
    elif pipeline.asset_id is not None:
        asset_id = pipeline.asset_id
    else:
        asset_id = call.upstream[stage.reads[0]].asset_id
    # a noun's format covers how it is saved and how it is loaded: a bump changes the key of its maker and, since
    # a changed `load` can change what a reader computes from unchanged bytes (the same upstream digest), of
    # every stage that loads it
    formats = {noun.name: noun.format_version for noun in (*stage.makes, *stage.loads) if noun.format_version != "1"}
    return StagePlan(call.store, asset_id, stage.name, stage.code_version, settings, inputs, formats)
