"""`edit_asset`: one asset and a list of edit prompts through every stage of the catalog, as a Prefect flow.

Plain Python wiring of the stages in catalog order (tasks/catalog.py): the per-asset stages once, then the
per-edit stages once per prompt. Each stage is a task returning a `StageRef`; a stage whose artifact is
committed returns at once (Prefect reports it Cached), so a second run costs nothing and a crashed run resumes
at the stage that crashed. `until` stops after a stage (the CLI's per-stage commands use it).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.context import TagsContext
from pydantic import BaseModel

from dreamedit3d_core.config import PipelineConfig
from dreamedit3d_core.mvdiffusion import EditConfig
from dreamedit3d_core.mvdiffusion.prompts import edit_phrases
from flows.deployments import run_stage_remotely
from flows.text import printable
from storage import ascii_slug
from tasks.catalog import EDIT
from tasks.prefect_task import run_task
from tasks.stage import Stage, StageCall, StageRef


SUMMARY_METRICS = ("verdict", "verdict_reason", "edited_colour_share", "preserved_psnr")  # per edit, beside its files


class EditResult(BaseModel):
    asset_id: str
    stages: list[StageRef]
    outputs: dict[str, Any]
    preset: str | None = None  # the preset the config came from

    def summary(self) -> dict[str, Any]:
        """The CLI's `--json` object for `edit`."""
        return {
            "asset_id": self.asset_id,
            "preset": self.preset,
            "stages": [
                {"stage": ref.stage, "key": ref.key, "status": ref.status, "seconds": ref.seconds}
                for ref in self.stages
            ],
            "outputs": self.outputs,
        }

    def text(self, output_frame: str = "source", written: list[dict[str, str]] | None = None) -> str:
        """What a person wants after an edit: one line on the run, then each edit's verdict, asset, picture and
        report (each stage's line was on stderr as it ran; every artifact is in --json). `output_frame`: the
        mesh named, `source` or `normalised`; `written`: the copies `--out` made (flows/outputs.py)."""
        computed = sum(ref.status == "computed" for ref in self.stages)
        seconds = sum(ref.seconds for ref in self.stages)
        lines = [
            f"asset {self.asset_id} (preset {self.preset}): {len(self.stages)} stages, {computed} computed, "
            f"{len(self.stages) - computed} cached, {seconds:.1f} s"
        ]
        mesh = "mesh_source_frame" if output_frame == "source" else "mesh"
        copies = {entry["prompt"]: entry for entry in written or []}
        for entry in self.outputs.get("edits", []):
            lines.append(f"edit {entry['prompt']!r}:")
            if entry.get("verdict"):
                lines.append(f"  {'verdict':<8} {entry['verdict']} ({entry.get('verdict_reason')})")
            copy = copies.get(entry["prompt"], {})  # --out: the mesh and the report as copied (same names)
            for label, name in (("mesh", mesh), ("preview", "mesh_preview"), ("report", "report")):
                shown = copy.get(label) or (_local(entry[name]) if name in entry else None)
                if shown:
                    lines.append(f"  {label:<8} {shown}")
        if not self.outputs.get("edits"):
            lines.append(self._outputs_text())
        return "\n".join(lines)

    def _outputs_text(self) -> str:
        lines = [f"  {name:<17} {uri}" for name, uri in self.outputs.items() if name != "edits"]
        for edit in self.outputs.get("edits", []):
            lines.append(f"  edit {edit['prompt']!r}:")
            lines += [f"    {name:<15} {uri}" for name, uri in edit.items() if name != "prompt"]
        return "\n".join(lines)

    def stage_table(self) -> str:
        """The asset, then a line per stage run: status, seconds and key (the per-stage commands)."""
        lines = [f"asset {self.asset_id}"]
        for ref in self.stages:
            lines.append(f"  {ref.stage:<12} {ref.status:<9} {ref.seconds:7.2f} s  {ref.key}")
        return "\n".join(lines)


def _local(uri: str) -> str:
    """A file:// URI as the plain path a person can open; other URLs as they are."""
    return uri[len("file://") :] if uri.startswith("file://") else uri


def run(stage: Stage, call: StageCall, distributed: bool) -> StageRef:
    """Run a stage in this process, or, when distributed, a gpu-pool stage as a run of the gpu deployment."""
    ref = run_stage_remotely(stage, call) if distributed and stage.pool == "gpu" else run_task(stage, call)
    # One line per stage on stderr, so a person can follow a long run; stdout stays for --json.
    which = f"  edit {call.edit.prompt!r}" if call.edit is not None else ""
    sys.stderr.write(f"[{ref.asset_id}] {ref.stage:<11} {ref.status:<8} {ref.seconds:6.1f} s{which}\n")
    sys.stderr.flush()
    return ref


def run_name(asset: str, edits: list[str]) -> str:
    """A flow run's name a person finds in Prefect's UI: the asset's file name and its first edit."""
    name = Path(asset).name or asset
    if not edits:
        return name
    more = f" (+{len(edits) - 1} more)" if len(edits) > 1 else ""
    return f"{name}: {edits[0]}{more}"


def run_tags(config: Any, store: str, manifest: str | None = None) -> list[str]:
    """Tags for the runs of an edit or a batch: the preset, the store and the manifest."""
    tags = [f"preset:{getattr(config, 'preset', None) or '-'}", f"store:{store}"]
    return tags + ([f"manifest:{manifest}"] if manifest else [])


def _edit_run_name() -> str:
    from prefect.runtime import flow_run

    parameters = flow_run.parameters
    return run_name(str(parameters.get("asset_path", "")), list(parameters.get("edits") or []))


@flow(name="edit-asset", flow_run_name=_edit_run_name, log_prints=True)
def edit_asset(
    asset_path: str,
    edits: list[str],
    store: str,
    config: PipelineConfig,
    until: str | None = None,
    seed: int = 0,
    distributed: bool = False,
) -> EditResult:
    """Every stage for one asset, then the per-edit stages once per prompt; stop after `until`.

    `distributed`: the gpu-pool stages run as runs of the gpu deployment (see prefect.yaml); otherwise
    everything runs in this process. Both give the same artifacts.
    """
    if until is not None and EDIT.stage(until).per_edit and not edits:  # an unknown stage is refused here too
        raise ValueError(f"stage {until!r} needs at least one edit prompt")
    with untagged_task_runs():
        done = _run_stages(asset_path, edits, store, config, until, seed, distributed)
    result = _result(done).model_copy(update={"preset": getattr(config, "preset", None)})
    if result.outputs.get("edits") and until is None:
        _publish_summary(result)
    return result


@contextmanager
def untagged_task_runs() -> Iterator[None]:
    """The tags of a run (`run_tags`: preset, store, manifest) are for finding the flow run; the task runs inside
    it do not inherit them. Prefect asks the server for a concurrency slot for every tag of every task run before
    it starts (an API call each, about 2 s on the local server under load), and these tags never carry a
    concurrency limit."""
    with TagsContext(current_tags=set()):
        yield


def _run_stages(
    asset_path: str, edits: list[str], store: str, config: PipelineConfig, until: str | None, seed: int, distributed: bool
) -> list[StageRef]:
    done: list[StageRef] = []
    refs: dict[str, StageRef] = {}  # the asset's stages
    edit_refs: dict[str, dict[str, StageRef]] = {}  # per edit: the asset's stages and that edit's own
    for stage, prompt in EDIT.walk(config, edits, until):
        if prompt is None:
            call = EDIT.call(stage, store=store, config=config, upstream=refs, source=asset_path)
            ref = refs[stage.name] = run(stage, call, distributed)
        else:
            upstream = edit_refs.setdefault(prompt, dict(refs))
            call = EDIT.call(stage, store=store, config=config, upstream=upstream, edit=EditConfig(prompt=prompt, seed=seed))
            ref = upstream[stage.name] = run(stage, call, distributed)
        done.append(ref)
        if stage.check_edits is not None:  # before the expensive stages: can every edit be made?
            stage.check_edits(ref, edits)
            if until is None:
                _announce_components(ref, edits)
    return done


def _announce_components(masks: StageRef, edits: list[str]) -> None:
    """Say which token is which part, and which parts each edit changes, before personalising (on stderr:
    stdout is kept for --json)."""
    described = masks.metadata.get("described", [])
    if not described:
        return
    names = {entry["token"]: ", ".join(entry["parts"]) or entry["name"] for entry in described}
    sys.stderr.write(printable(f"[{masks.asset_id}] components: {', '.join(f'{t} = {n}' for t, n in names.items())}") + "\n")
    for prompt in edits:
        sys.stderr.write(printable(f"[{masks.asset_id}] {edit_reading(prompt, names)}") + "\n")


def edit_reading(prompt: str, names: dict[str, str]) -> str:
    """How an edit prompt is read: which components it changes (with the words that change them), which it
    keeps; or that it changes none, and how to say what to change."""
    phrases = edit_phrases(prompt)
    if not phrases:
        return (
            f"edit {prompt!r} changes no component: put the words next to the token they describe, "
            f"e.g. 'a photo of <asset0> in gold' or 'a photo of a golden <asset0>'"
        )
    changed = "; ".join(f"{token} ({names.get(token, '?')}) '{words}'" for token, words in phrases.items())
    kept = ", ".join(f"{token} ({name})" for token, name in names.items() if token not in phrases)
    return f"edit {prompt!r} changes {changed}" + (f"; keeps {kept}" if kept else "")


def _publish_summary(result: EditResult) -> None:
    """A Prefect markdown artifact: each edit's metrics and where its mesh and report are."""
    from prefect.artifacts import create_markdown_artifact

    lines = [f"# {result.asset_id}", ""]
    for ref in result.stages:
        if ref.stage != "evaluate":
            continue
        edit = next(e for e in result.outputs["edits"] if e["prompt"] == ref.edit)
        lines += [f"## {printable(str(ref.edit))}", "", "| metric | value |", "|---|---|"]
        lines += [f"| {name} | {printable(str(value)).replace('|', '/')} |" for name, value in ref.metadata.items() if name != "prompt"]
        lines += ["", f"mesh: `{edit.get('mesh')}`  ", f"report: `{edit.get('report')}`", ""]
    key = ascii_slug(f"report-{result.asset_id}").lower()  # Prefect's artifact keys: lowercase ASCII and '-'
    create_markdown_artifact(markdown="\n".join(lines), key=key, description=f"DreamEdit3D edits of {result.asset_id}")


def _result(refs: list[StageRef]) -> EditResult:
    """Per-asset artifacts by name; per-edit artifacts in one entry per prompt under `edits`."""
    outputs: dict[str, Any] = {}
    edits: dict[str, dict[str, Any]] = {}
    for ref in refs:
        if EDIT.stage(ref.stage).per_edit:
            prompt = ref.edit or ""
            edits.setdefault(prompt, {"prompt": prompt}).update(ref.artifacts)
            if ref.stage == "evaluate" and "verdict" in ref.metadata:  # did the edit land (verdict.py), and the numbers
                edits[prompt].update({name: ref.metadata.get(name) for name in SUMMARY_METRICS})
        else:
            outputs.update(ref.artifacts)
    if edits:
        outputs["edits"] = list(edits.values())
    return EditResult(asset_id=refs[0].asset_id, stages=refs, outputs=outputs)
