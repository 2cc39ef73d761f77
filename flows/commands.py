"""The `dreamedit3d` commands (the typer app); `flows/cli.py` checks the arguments and runs them.

Every command takes `--store` (default ./dreamedit3d-store, or $DREAMEDIT3D_STORE) and `--json` (one JSON
object on stdout; progress and messages go to stderr). User mistakes give a one-line error and exit 2;
`--debug` shows the traceback of unexpected failures, `--verbose` Prefect's own log lines.
"""

from __future__ import annotations

import difflib
import shlex
import sys
from enum import Enum
import traceback
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
import yaml
from pydantic import ValidationError

import flows  # noqa: E402,F401  (Prefect's offline settings, before prefect is imported)
from flows.cli_common import (  # noqa: E402
    DEFAULT_STORE,
    TINY_NOTE,
    JsonOption,
    StoreOption,
    UserError,
    default_preset,
    emit,
    preset_overrides,
    printable,
    read_settings_file,
    server_note,
)
from flows.cli_common import one_line as _one_line  # noqa: E402

app = typer.Typer(
    name="dreamedit3d",
    help="Text-guided editing of 3D assets: personalise a multi-view diffusion model to one asset, then edit it. "
    "Global options: --version (alone), and with any command --debug (the traceback of an unexpected failure), "
    "--verbose (Prefect's own log lines).",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

PresetOption = Annotated[
    Optional[str],
    typer.Option(
        "--preset",
        help="Configuration preset: world (our small model for objects of coloured parts; the default), mvdream "
        "(real MVDream weights from a local folder; the default when $DREAMEDIT3D_MVDREAM names one) or tiny "
        "(random tiny models: seconds per stage, every edit is noise). $DREAMEDIT3D_PRESET sets the default.",
        show_default=False,
    ),
]
ConfigOption = Annotated[
    Optional[Path], typer.Option("--config", help="YAML file overriding the preset's settings.", exists=False)
]
EditOption = Annotated[list[str], typer.Option("--edit", help="An edit prompt; repeat for several.")]
OutOption = Annotated[
    Optional[Path],
    typer.Option("--out", help="Folder for the results: ASSET__EDIT.glb (in the frame of --output-frame) and "
                 "ASSET__EDIT.html (the report) per edit; the store keeps its own copies.", file_okay=False),
]  # fmt: skip
FailOnUnappliedOption = Annotated[
    bool, typer.Option("--fail-on-unapplied", help="Exit 3 when an edit's verdict is not 'applied' (partly, not, noise).")
]
AllowNoEditOption = Annotated[
    bool, typer.Option("--allow-no-edit", help="Run a prompt that changes no component (refused otherwise).")
]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed of the sampled views (same seed, same views).")]


class OutputFrame(str, Enum):
    normalised = "normalised"
    source = "source"


def _load_config(preset: str | None, config_path: Path | None) -> Any:
    """The preset (or the default one) with the --config file on top, validated; says so when it is `tiny`."""
    from dreamedit3d_core.config import pipeline_config

    preset = preset or default_preset()
    overrides = read_settings_file(config_path) if config_path is not None else {}
    try:
        config = pipeline_config(preset, preset_overrides(preset, overrides))
    except ValidationError as error:
        raise UserError(config_error(error, config_path)) from None
    except ValueError as error:
        raise UserError(f"invalid configuration: {_one_line(error)}") from None
    if config.preset == "tiny":
        typer.echo(TINY_NOTE, err=True)
    return config


def config_error(error: ValidationError, config_path: Path | None) -> str:
    """A pydantic error as a person reads it: the file, each setting's dotted name, what is wrong, and for an
    unknown setting the closest valid one."""
    from dreamedit3d_core.config import PipelineConfig

    where = f"{config_path}: " if config_path is not None else ""
    problems = []
    for item in error.errors():
        location = [str(part) for part in item["loc"]]
        name = ".".join(location)
        if item["type"] == "extra_forbidden":
            model: Any = PipelineConfig
            for part in location[:-1]:  # down to the config class holding the unknown key
                field = getattr(model, "model_fields", {}).get(part)
                model = getattr(field, "annotation", None) if field is not None else None
            known = list(getattr(model, "model_fields", {}))
            close = difflib.get_close_matches(location[-1], known, n=1)
            hint = f"; did you mean {'.'.join([*location[:-1], close[0]])!r}?" if close else ""
            valid = f" (valid here: {', '.join(known)})" if known and not close else ""
            problems.append(f"unknown setting {name!r}{hint}{valid}")
        else:
            message = item["msg"].removeprefix("Value error, ")
            problems.append(f"{name}: {message}" if name else message)
    return where + "; ".join(problems)


def _run_flow(asset: Path, edits: list[str], store: str, config: Any, until: str | None, seed: int) -> Any:
    """`edit_asset` for ASSET with a loaded config (`_load_config`), tagged with its preset and store."""
    if not asset.exists():
        raise UserError(f"asset file not found: {asset}")
    from prefect import tags

    from flows.edit_asset import edit_asset, run_tags

    server_note()
    with tags(*run_tags(config, store)):
        return edit_asset(
            asset_path=str(asset.resolve()), edits=list(edits), store=store, config=config, until=until, seed=seed
        )


def _local(uri: str) -> str:
    """A file:// URI as the plain path a person can open; other URLs as they are."""
    return uri[len("file://") :] if uri.startswith("file://") else uri


def _outputs_text(outputs: dict[str, Any]) -> str:
    lines = [f"  {name:<17} {uri}" for name, uri in outputs.items() if name != "edits"]
    for edit in outputs.get("edits", []):
        lines.append(f"  edit {edit['prompt']!r}:")
        lines += [f"    {name:<15} {uri}" for name, uri in edit.items() if name != "prompt"]
    return "\n".join(lines)


def _stage_table(result: Any) -> str:
    lines = [f"asset {result.asset_id}"]
    for ref in result.stages:
        lines.append(f"  {ref.stage:<12} {ref.status:<9} {ref.seconds:7.2f} s  {ref.key}")
    return "\n".join(lines)


@app.command()
def edit(
    asset: Annotated[Path, typer.Argument(help="A 3D file: GLB, glTF, OBJ, PLY or STL.")],
    edit: EditOption = [],
    store: StoreOption = DEFAULT_STORE,
    preset: PresetOption = None,
    config: ConfigOption = None,
    seed: SeedOption = 0,
    output_frame: Annotated[
        OutputFrame,
        typer.Option(
            "--output-frame",
            help="Which edited GLB to name as the result: in the normalised frame (centred, unit size, as the "
            "pipeline sees it) or where the source file had it, to drop next to the original. Both are stored.",
        ),
    ] = OutputFrame.source,
    out: OutOption = None,
    fail_on_unapplied: FailOnUnappliedOption = False,
    allow_no_edit: AllowNoEditOption = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would run (as `plan`); compute nothing.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Run every stage for ASSET and each --edit prompt; cached stages cost nothing. Each edit gets a verdict
    (applied, partly applied, not applied) from the evaluation's own numbers."""
    check_prompts(edit, allow_no_edit)
    if dry_run:
        return _plan(asset, edit, store, preset, config, seed, as_json)
    result = _run_flow(asset, edit, store, _load_config(preset, config), until=None, seed=seed)
    summary = result.summary()
    if out is not None:
        from flows.outputs import write_outputs

        summary["out"] = write_outputs(out, str(asset), result.outputs.get("edits", []), output_frame.value, store)
    emit(as_json, summary, _edit_text(result, output_frame, summary.get("out")))
    exit_on_unapplied(fail_on_unapplied, [e.get("verdict") for e in result.outputs.get("edits", [])])


def _edit_text(result: Any, output_frame: OutputFrame, written: list[dict[str, str]] | None = None) -> str:
    """What a person wants after an edit: one line on the run, then each edit's verdict, asset, picture and
    report (each stage's line was on stderr as it ran; every artifact is in --json)."""
    computed = sum(ref.status == "computed" for ref in result.stages)
    seconds = sum(ref.seconds for ref in result.stages)
    lines = [
        f"asset {result.asset_id} (preset {result.preset}): {len(result.stages)} stages, {computed} computed, "
        f"{len(result.stages) - computed} cached, {seconds:.1f} s"
    ]
    mesh = "mesh_source_frame" if output_frame == OutputFrame.source else "mesh"
    copies = {entry["prompt"]: entry for entry in written or []}
    for entry in result.outputs.get("edits", []):
        lines.append(f"edit {entry['prompt']!r}:")
        if entry.get("verdict"):
            lines.append(f"  {'verdict':<8} {entry['verdict']} ({entry.get('verdict_reason')})")
        copy = copies.get(entry["prompt"], {})  # --out: the mesh and the report as copied (same names)
        for label, name in (("mesh", mesh), ("preview", "mesh_preview"), ("report", "report")):
            shown = copy.get(label) or (_local(entry[name]) if name in entry else None)
            if shown:
                lines.append(f"  {label:<8} {shown}")
    if not result.outputs.get("edits"):
        lines.append(_outputs_text(result.outputs))
    return "\n".join(lines)


def check_prompts(prompts: list[str], allow_no_edit: bool, where: str = "") -> None:
    """Before any work: a prompt whose words are next to no token changes nothing; refused (exit 2) unless
    --allow-no-edit."""
    from dreamedit3d_core.mvdiffusion.prompts import edit_phrases

    for prompt in prompts:
        if any(not ch.isprintable() for ch in prompt):
            raise UserError(f"{where}edit {printable(prompt)!r} holds control characters (a newline, an escape): write it on one line")
    idle = [prompt for prompt in prompts if not edit_phrases(prompt)]
    if idle and not allow_no_edit:
        raise UserError(
            f"{where}edit {idle[0]!r} changes no component: put the words next to the token they describe, e.g. "
            "'a photo of <asset0> in gold' (`dreamedit3d components ASSET` lists the tokens); --allow-no-edit runs it anyway"
        )


def exit_on_unapplied(enabled: bool, verdicts: list[str | None]) -> None:
    """--fail-on-unapplied: exit 3 when an edit was not applied, partly applied or drawn by a random model."""
    from dreamedit3d_core.evaluate.verdict import UNAPPLIED

    if enabled and any(verdict in UNAPPLIED for verdict in verdicts):
        raise SystemExit(3)


def _stage_command(stage: str, needs_edit: bool) -> None:
    def command(
        asset: Annotated[Path, typer.Argument(help="A 3D file: GLB, glTF, OBJ, PLY or STL.")],
        edit: EditOption = [],
        store: StoreOption = DEFAULT_STORE,
        preset: PresetOption = None,
        config: ConfigOption = None,
        seed: SeedOption = 0,
        as_json: JsonOption = False,
    ) -> None:
        if needs_edit and not edit:
            raise UserError(f"`{stage}` needs at least one --edit prompt")
        result = _run_flow(asset, edit, store, _load_config(preset, config), until=stage, seed=seed)
        ref = result.stages[-1]
        payload = {
            "asset_id": ref.asset_id,
            "stage": ref.stage,
            "key": ref.key,
            "status": ref.status,
            "artifacts": ref.artifacts,
        }
        artifacts = "\n".join(f"  {name:<17} {uri}" for name, uri in ref.artifacts.items())
        emit(as_json, payload, f"{_stage_table(result)}\nartifacts:\n{artifacts}")

    command.__doc__ = f"Run the `{stage}` stage for ASSET (and the upstream stages it needs)."
    if needs_edit:
        command.__doc__ += " Needs at least one --edit."
    app.command(name=stage)(command)


def _add_stage_commands() -> None:
    """`dreamedit3d <stage> ASSET`, one command per stage of the catalog (tasks/catalog.py), in its order."""
    from tasks.catalog import EDIT

    for stage in EDIT.stages:
        _stage_command(stage.name, stage.per_edit)


_add_stage_commands()


def _plan_text(planned: list[Any]) -> str:
    from flows.planning import remaining_seconds
    from tasks.progress import duration

    lines = [f"{'asset':<28} {'stage':<12} {'status':<11} expected   edit"]
    for entry in planned:
        expected = "-" if entry.status == "cached" else ("unknown" if entry.expected_seconds is None else duration(entry.expected_seconds))
        lines.append(f"{Path(entry.asset).name[:28]:<28} {entry.stage:<12} {entry.status:<11} {expected:<10} {entry.prompt or ''}")
    seconds, unknown = remaining_seconds(planned)
    todo = sum(entry.status == "to compute" for entry in planned)
    if todo and unknown == todo:
        estimate = "time unknown (no past runs of these stages in this store)"
    else:
        estimate = f"about {duration(seconds)}" + (f" ({unknown} without past runs to go by)" if unknown else "")
    lines.append(f"{todo} of {len(planned)} stages to compute, {estimate}")
    return "\n".join(lines)


def _plan(location: str, edits: list[str], store: str, preset: str, config_path: Path | None, seed: int, as_json: bool) -> None:
    from dataclasses import asdict

    from flows.planning import plan_asset, remaining_seconds, typical_seconds
    from flows.sources import is_url, local_location

    location = local_location(location)
    target = Path(location)
    is_manifest = target.suffix.lower() in (".csv", ".parquet", ".yaml", ".yml")
    if not (is_manifest and is_url(location)) and not target.exists():  # a manifest at a URL says so itself
        raise UserError(f"asset file not found: {target}")
    base = _load_config(preset, config_path)
    typical = typical_seconds(store)
    if is_manifest:
        from flows.manifest import read_manifest

        planned = []
        for entry in read_manifest(location, base):
            check_prompts(list(entry.edits), allow_no_edit=False, where=f"{location}: row {entry.row}: ")
            planned += _checked_plan(entry.asset, entry.edits, store, entry.config(base), seed, typical, f"row {entry.row}: ")
    else:
        check_prompts(edits, allow_no_edit=False)
        planned = _checked_plan(str(target.resolve()), edits, store, base, seed, typical, "")
    seconds, unknown = remaining_seconds(planned)
    payload = {"stages": [asdict(entry) for entry in planned], "expected_seconds": seconds, "stages_without_history": unknown}
    emit(as_json, payload, _plan_text(planned))


def _checked_plan(
    asset: str, edits: Any, store: str, config: Any, seed: int, typical: Any, where: str, in_batch: bool = False
) -> list[Any]:
    """`plan_asset`, an edit naming a token the cached components lack as a user's mistake (exit 2). In a batch
    (`in_batch`) a file that cannot be read is left to its own run, which fails that row only."""
    from flows.planning import PromptError, plan_asset

    try:
        return plan_asset(asset, edits, store, config, seed, typical)
    except PromptError as error:
        raise UserError(f"{where}{Path(asset).name}: {_one_line(error)}") from None
    except Exception as error:
        if in_batch:
            return []
        if isinstance(error, ValueError):
            raise UserError(f"{where}{Path(asset).name}: {_one_line(error)}") from None
        raise


@app.command()
def plan(
    target: Annotated[str, typer.Argument(help="A 3D file, or a batch manifest (CSV, Parquet, YAML; a path or a URL).")],
    edit: EditOption = [],
    store: StoreOption = DEFAULT_STORE,
    preset: PresetOption = None,
    config: ConfigOption = None,
    seed: SeedOption = 0,
    as_json: JsonOption = False,
) -> None:
    """What a run would do, computing nothing: per asset and stage, cached or to compute, and the expected
    time of the rest (the median of past runs of each stage in this store)."""
    _plan(target, edit, store, preset, config, seed, as_json)


@app.command()
def components(
    asset: Annotated[Path, typer.Argument(help="A 3D file: GLB, glTF, OBJ, PLY or STL.")],
    store: StoreOption = DEFAULT_STORE,
    preset: PresetOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Which token is which part of ASSET, before any editing: each component's token, parts, initializer
    word and coverage of the views (runs only ingest, render and mask; cached ones cost nothing)."""
    settings = _load_config(preset, config)
    result = _run_flow(asset, [], store, settings, until="mask", seed=0)
    ref = result.stages[-1]
    described = ref.metadata.get("described", [])
    least = settings.mask.min_coverage
    rows = [f"{'token':<10} {'parts':<36} {'word':<12} coverage"]
    for entry in described:
        parts = printable(", ".join(entry["parts"]) or entry["name"])  # names come from the file: no escapes pass
        rows.append(f"{entry['token']:<10} {parts[:36]:<36} {entry['initializer_word']:<12} {entry['coverage']:.1%}")
    foreground = sum(entry["coverage"] for entry in described) or 1.0  # the components share the object's pixels
    small = [entry for entry in described if entry["coverage"] / foreground < least]
    for entry in small:  # a token for a few pixels learns little: its edits rarely land
        typer.echo(
            f"warning: {entry['token']} ({printable(', '.join(entry['parts']) or entry['name'])}) is {entry['coverage'] / foreground:.1%} "
            f"of the object's pixels, below mask.min_coverage {least:.1%}: edits of it may not show; mask.groups can "
            "join it to a neighbour",
            err=True,
        )
    example_token = described[-1]["token"] if described else "<asset0>"
    hint = f'\nedit with, e.g.: dreamedit3d edit {asset} --edit "a photo of {example_token} in gold"'
    payload = {"asset_id": ref.asset_id, "components": described, "below_min_coverage": [e["token"] for e in small]}
    emit(as_json, payload, "\n".join(rows) + hint)


server_app = typer.Typer(name="server", help="The local Prefect server the commands share.", no_args_is_help=True)
app.add_typer(server_app, name="server")


@server_app.command("status")
def server_status(as_json: JsonOption = False) -> None:
    """Where the background server is (started by the first command that runs a flow), or that none runs."""
    from flows.local_server import running

    state = running()
    emit(as_json, {"running": state is not None, **_public(state or {})}, _server_text(state) if state else "not running")


def _public(state: dict[str, Any]) -> dict[str, Any]:
    """The server's record without its secret (`server secret` alone prints that)."""
    return {key: value for key, value in state.items() if key != "secret"}


def _server_text(state: dict[str, Any]) -> str:
    lines = [f"running at {state['url']} (pid {state['pid']}, log {state['log']})"]
    if state.get("ui"):
        lines.append(f"UI: {state['ui']} (flow runs are named after the asset and its first edit)")
    if state.get("secret"):
        lines.append("the UI's login and other machines' PREFECT_API_AUTH_STRING: `dreamedit3d server secret` "
                     "(this user only)")  # fmt: skip
        if state.get("host", "127.0.0.1") != "127.0.0.1":
            lines.append(f"other machines: PREFECT_API_URL={state['ui']}/api")
    return "\n".join(lines)


@server_app.command("start")
def server_start(
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on: 127.0.0.1 (this machine only) or 0.0.0.0 / this "
                          "machine's address for workers on other machines (then an API secret is required).")
    ] = "127.0.0.1",
    port: Annotated[Optional[int], typer.Option("--port", min=1, max=65535, help="Port (default: a free one).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Start the background server (commands start one on loopback by themselves; this one can listen wider)."""
    from flows.local_server import ServerError, start_server

    try:
        state = start_server(host, port)
    except ServerError as error:
        raise UserError(str(error)) from None
    emit(as_json, {"running": True, **_public(state)}, _server_text(state))


@server_app.command("secret")
def server_secret() -> None:
    """Print the running server's API secret: the UI's login, and PREFECT_API_AUTH_STRING on other machines."""
    from flows.local_server import running

    state = running()
    if state is None or not state.get("secret"):
        raise UserError("no server with a secret runs here (`dreamedit3d server start` starts one)")
    typer.echo(state["secret"])


@server_app.command("stop")
def server_stop(as_json: JsonOption = False) -> None:
    """Stop the background server; the next command that runs a flow starts it again."""
    from flows.local_server import stop

    state = stop()
    emit(as_json, {"stopped": state is not None}, f"stopped the server at {state['url']}" if state else "no server was running")


config_app = typer.Typer(name="config", help="The effective configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show")
def config_show(preset: PresetOption = None, config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Print the configuration a command would run with: the preset, your --config file on top, validated."""
    settings = _load_config(preset, config).model_dump(mode="json")
    emit(as_json, settings, yaml.safe_dump(settings, sort_keys=False).rstrip())


@app.command()
def example(
    out: Annotated[Path, typer.Argument(help="Where to write the GLB.")] = Path("examples/chair.glb"),
    as_json: JsonOption = False,
) -> None:
    """Write the example asset: a chair built from primitives, one named part per piece."""
    from dreamedit3d_core.ingest import make_example_asset

    path = make_example_asset(out)
    emit(as_json, {"asset": str(path)}, f"wrote {path}")


@app.command("convert-mvdream")
def convert_mvdream(
    checkpoint: Annotated[Path, typer.Argument(help="The official checkpoint, e.g. sd-v2.1-base-4view.pt (or .safetensors).")],
    config: Annotated[Path, typer.Option("--config", help="The official YAML, e.g. configs/sd-v2-base.yaml.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the converted diffusers-layout model.")],
    sd_base: Annotated[
        Optional[Path], typer.Option("--sd-base", help="A local Stable Diffusion 2.1-base folder for VAE, text encoder, tokenizer.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Convert official MVDream weights to the diffusers layout the `mvdream` preset loads (model.path)."""
    for path, what in ((checkpoint, "checkpoint"), (config, "config YAML")):
        if not path.exists():
            raise UserError(f"{what} not found: {path}")
    if sd_base is not None and not sd_base.is_dir():
        raise UserError(f"--sd-base folder not found: {sd_base}")
    from dreamedit3d_core.mvdiffusion import convert_mvdream_checkpoint

    model = convert_mvdream_checkpoint(checkpoint, config, sd_base_dir=sd_base, out_dir=out)
    payload = {"out": str(out), "num_views": model.num_views, "image_size": model.config.image_size}
    emit(as_json, payload, f"converted {checkpoint} -> {out} ({model.num_views} views, {model.config.image_size} px)")


@app.command()
def batch(
    manifest: Annotated[
        str, typer.Argument(help="CSV, Parquet or YAML (a path or a URL such as s3://bucket/library/manifest.csv): per row an asset, its edits, overrides.")
    ],
    store: StoreOption = DEFAULT_STORE,
    preset: PresetOption = None,
    config: ConfigOption = None,
    max_concurrency: Annotated[int, typer.Option("--max-concurrency", min=1, help="Assets edited at once.")] = 2,
    distributed: Annotated[
        bool, typer.Option("--distributed", help="Run the GPU stages as deployments on the gpu work pool.")
    ] = False,
    seed: SeedOption = 0,
    out: OutOption = None,
    fail_on_unapplied: FailOnUnappliedOption = False,
    allow_no_edit: AllowNoEditOption = False,
    as_json: JsonOption = False,
) -> None:
    """Edit every asset of MANIFEST; committed stages are reused. Exit 1 when any asset failed (3 with
    --fail-on-unapplied when every asset ran but an edit did not land)."""
    from flows.edit_library import absolute_store, batch_summary, edit_library
    from flows.manifest import read_manifest
    from flows.sources import absolute_location

    base = _load_config(preset, config)
    entries = read_manifest(manifest, base)  # every bad row named (exit 2) before a server starts or any work runs
    for entry in entries:  # every prompt: words next to a token, and a token the cached components have
        check_prompts(list(entry.edits), allow_no_edit, where=f"{manifest}: row {entry.row}: ")
        where = f"{manifest}: row {entry.row}: "
        _checked_plan(entry.asset, entry.edits, absolute_store(store), entry.config(base), seed, {}, where, in_batch=True)
    from prefect.settings import get_current_settings

    if distributed and not get_current_settings().api.url:
        raise UserError("--distributed needs PREFECT_API_URL: a server with the deployments and a gpu worker")
    server_note()
    from prefect import tags

    from flows.edit_asset import run_tags

    with tags(*run_tags(base, absolute_store(store), absolute_location(manifest))):
        state = edit_library(
            manifest=absolute_location(manifest),
            store=absolute_store(store),
            preset=base.preset,
            overrides=base.model_dump(mode="json", exclude={"preset"}),
            max_concurrency=max_concurrency,
            distributed=distributed,
            seed=seed,
            command=shlex.join(["dreamedit3d", *sys.argv[1:]]),
            return_state=True,
        )
    summary = batch_summary(state)
    payload = summary.to_json()
    if out is not None:
        from flows.outputs import write_batch_outputs

        payload["out"] = write_batch_outputs(out, summary)
    emit(as_json, payload, summary.text() + (f"\nresults: {payload['out']['index']}" if out is not None else ""))
    if summary.failed:
        raise SystemExit(1)  # not typer.Exit: main() runs the app with standalone_mode=False, which swallows it
    exit_on_unapplied(fail_on_unapplied, [v for asset in summary.assets for v in asset.verdicts])


def _add_world_commands() -> None:
    from flows.world_cli import world_app

    app.add_typer(world_app, name="world")


_add_world_commands()


@app.command()
def status(store: StoreOption = DEFAULT_STORE, as_json: JsonOption = False) -> None:
    """Where every asset stands: assets x stages (done, failed, missing) with times from the ledger."""
    from flows.status import stage_status

    table = stage_status(store)
    emit(as_json, {"assets": table}, _status_text(table))


def _status_text(table: list[dict[str, Any]]) -> str:
    from tasks.catalog import EDIT

    if not table:
        return "no assets in this store yet"
    header = f"{'asset':<28}{'preset':>8}" + "".join(f"{stage:>12}" for stage in EDIT.stage_names)
    rows = [header]
    for row in table:
        if tuple(row["stages"]) != EDIT.stage_names:  # the world model's stages: a line of their own
            cells = [f"{stage} {cell['state']}" + ("" if cell["seconds"] is None else f" {cell['seconds']:.1f}s")
                     for stage, cell in row["stages"].items()]
            rows.append(f"{row['asset_id']:<28}" + ", ".join(cells))
            continue
        cells = []
        for stage in EDIT.stage_names:
            cell = row["stages"][stage]
            text = cell["state"] if cell["seconds"] is None else f"{cell['state']} {cell['seconds']:.1f}s"
            cells.append(f"{text:>12}")
        rows.append(f"{row['asset_id']:<28}{row.get('preset') or '-':>8}" + "".join(cells))
        rows += [f"  {stage} {cell['state']}: {cell['error']}" for stage, cell in row["stages"].items() if cell["error"]]
        for edit in row.get("edits", []):
            cells = [f"{stage} {cell['state']}" + ("" if cell["seconds"] is None else f" {cell['seconds']:.1f}s")
                     for stage, cell in edit["stages"].items()]  # fmt: skip
            verdict = f" -> {edit['verdict']} ({edit['verdict_reason']})" if edit.get("verdict") else ""
            rows.append(f"  edit {edit['prompt']!r}: " + ", ".join(cells) + verdict)
            rows += [f"    {stage} {cell['state']}: {cell['error']}" for stage, cell in edit["stages"].items() if cell["error"]]
    return "\n".join(rows)


@app.command()
def verify(
    store: StoreOption = DEFAULT_STORE,
    repair: Annotated[bool, typer.Option("--repair/--check-only", help="Remove broken artifacts so they are recomputed.")] = True,
    as_json: JsonOption = False,
) -> None:
    """Find incomplete or corrupt artifacts and say what was done with them. With --check-only, exit 1 when
    there are problems (nothing is changed)."""
    from storage import ArtifactStore

    report = ArtifactStore(store).verify(repair=repair)
    payload = {
        "clean": report.clean,
        "problems": [{"what": what, "problem": problem, "action": action} for what, problem, action in report.problems],
    }
    emit(as_json, payload, str(report))
    if not repair and not report.clean:
        raise SystemExit(1)  # not typer.Exit: main() runs the app with standalone_mode=False, which swallows it


@app.command()
def prune(
    older_than: Annotated[float, typer.Option("--older-than", help="Days without use after which an artifact goes.")] = 30.0,
    apply: Annotated[bool, typer.Option("--apply", help="Remove them (without it: only say what would go).")] = False,
    store: StoreOption = DEFAULT_STORE,
    as_json: JsonOption = False,
) -> None:
    """Give space back: the files of writes that never committed, and artifacts no run has used (computed or
    found cached) for --older-than days. Says what and how much first; removes only with --apply."""
    from storage import ArtifactStore
    from storage.prune import prune_store

    report = prune_store(ArtifactStore(store), older_than, apply)
    payload = {
        "applied": report.applied,
        "size_bytes": report.size_bytes,
        "items": [{"what": c.what, "reason": c.reason, "size_bytes": c.size_bytes} for c in report.candidates],
    }
    emit(as_json, payload, str(report))


ledger_app = typer.Typer(name="ledger", help="The run ledger: one row per stage run.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")


@ledger_app.command("compact")
def compact_ledger(store: StoreOption = DEFAULT_STORE, as_json: JsonOption = False) -> None:
    """Rewrite the ledger's small files as one (the ledger also does it by itself past a few hundred)."""
    from storage import ArtifactStore

    ledger = ArtifactStore(store).ledger
    before = len(ledger.parts())
    removed = ledger.compact()
    rows = ledger.read().num_rows
    emit(as_json, {"files_before": before, "files_removed": removed, "rows": rows},
         f"ledger: {before} files -> {len(ledger.parts())}, {rows} rows")


INTERRUPTED = "interrupted: committed stages are kept; run the same command again to resume"


def run(debug: bool) -> None:
    """Run the command in sys.argv; exit with 2 for a user's mistake, 130 when interrupted.

    Ctrl-C (or SIGTERM) is noted here before anything else sees it: Prefect's engine may turn the
    KeyboardInterrupt into another error or into a quiet return, and a script must never take an interrupted
    edit for a finished one. The first signal also stops the command's worker processes and Blender
    (`flows.stopping`): the command is gone within a few seconds, and a second Ctrl-C is never needed.
    """
    from flows import stopping

    interrupted: list[int] = []

    def on_interrupt(signum: int) -> None:
        from tasks import interruption

        interrupted.append(signum)
        interruption.request()  # stages check it too: the KeyboardInterrupt can be lost on its way out

    stopping.install(on_interrupt, farewell=_say_interrupted)  # SIGINT and SIGTERM: workers stopped too
    try:
        _dispatch(debug, interrupted)
    except SystemExit:
        if interrupted:
            _stop_interrupted()
        raise
    if interrupted:
        _stop_interrupted()


_said: list[bool] = []


def _say_interrupted() -> None:
    if not _said:  # once, whichever of the normal path and the stop's watchdog gets here first
        _said.append(True)
        typer.echo(INTERRUPTED, err=True)


def _stop_interrupted() -> None:
    _say_interrupted()
    sys.exit(130)


def _dispatch(debug: bool, interrupted: list[int]) -> None:
    try:
        app(standalone_mode=False)
    except UserError as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(2)
    except (typer.Exit, SystemExit) as stop:
        code = getattr(stop, "exit_code", getattr(stop, "code", 0))
        sys.exit(code)
    except (typer.Abort, KeyboardInterrupt):
        _stop_interrupted()
    except Exception as error:  # click's usage errors, bad input (ValueError) and crashes
        if interrupted:  # whatever the interruption became on its way out
            _stop_interrupted()
        # click's usage errors (typer >= 0.22 carries its own copy of click, so match by behaviour)
        if isinstance(getattr(error, "exit_code", None), int) and callable(getattr(error, "show", None)):
            error.show()
            sys.exit(error.exit_code)
        if type(error).__name__ == "Abort":  # click's Ctrl-C at a prompt, from typer's own copy of click
            _stop_interrupted()
        if debug:
            traceback.print_exc()
        if isinstance(error, ValueError):
            typer.echo(f"error: {_one_line(error)}", err=True)
            sys.exit(2)
        typer.echo(f"error: {type(error).__name__}: {_one_line(error)} (run with --debug for the traceback)", err=True)
        sys.exit(1)
