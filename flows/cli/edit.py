"""Editing commands: `edit`, one command per stage of the catalog, `plan`, `components`; `config show`, and what
an edit starts from: `example` (an asset) and `convert-mvdream` (the weights of the `mvdream` preset).

The commands are plain functions; flows/cli/app.py puts them on the app, in the order `--help` lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
import yaml

from flows.cli.common import DEFAULT_STORE, ConfigOption, JsonOption, PresetOption, StoreOption, UserError, emit, server_note
from flows.cli.settings import Given, given, load_config
from flows.text import one_line, printable

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
AssetArgument = Annotated[Path, typer.Argument(help="A 3D file: GLB, glTF, OBJ, PLY or STL.")]


class OutputFrame(str, Enum):
    normalised = "normalised"
    source = "source"


def _run_flow(asset: Path, edits: list[str], store: str, config: Any, until: str | None, seed: int) -> Any:
    """`edit_asset` for ASSET with a loaded config (`load_config`), tagged with its preset and store."""
    if not asset.exists():
        raise UserError(f"asset file not found: {asset}")
    from prefect import tags

    from flows.edit_asset import edit_asset, run_tags

    server_note()
    with tags(*run_tags(config, store)):
        return edit_asset(
            asset_path=str(asset.resolve()), edits=list(edits), store=store, config=config, until=until, seed=seed
        )


def edit(
    ctx: typer.Context,
    asset: AssetArgument,
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
        return _plan(given(ctx), asset, edit, store, preset, config, seed, as_json)
    result = _run_flow(asset, edit, store, load_config(given(ctx), preset, config), until=None, seed=seed)
    summary = result.summary()
    if out is not None:
        from flows.outputs import write_outputs

        summary["out"] = write_outputs(out, str(asset), result.outputs.get("edits", []), output_frame.value, store)
    emit(as_json, summary, result.text(output_frame.value, summary.get("out")))
    exit_on_unapplied(fail_on_unapplied, [e.get("verdict") for e in result.outputs.get("edits", [])])


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


def stage_command(stage: str, needs_edit: bool) -> Callable[..., None]:
    """`dreamedit3d STAGE ASSET`: the stage and the upstream stages it needs."""

    def command(
        ctx: typer.Context,
        asset: AssetArgument,
        edit: EditOption = [],
        store: StoreOption = DEFAULT_STORE,
        preset: PresetOption = None,
        config: ConfigOption = None,
        seed: SeedOption = 0,
        as_json: JsonOption = False,
    ) -> None:
        if needs_edit and not edit:
            raise UserError(f"`{stage}` needs at least one --edit prompt")
        result = _run_flow(asset, edit, store, load_config(given(ctx), preset, config), until=stage, seed=seed)
        ref = result.stages[-1]
        payload = {
            "asset_id": ref.asset_id,
            "stage": ref.stage,
            "key": ref.key,
            "status": ref.status,
            "artifacts": ref.artifacts,
        }
        artifacts = "\n".join(f"  {name:<17} {uri}" for name, uri in ref.artifacts.items())
        emit(as_json, payload, f"{result.stage_table()}\nartifacts:\n{artifacts}")

    command.__doc__ = f"Run the `{stage}` stage for ASSET (and the upstream stages it needs)."
    if needs_edit:
        command.__doc__ += " Needs at least one --edit."
    return command


def stage_commands() -> list[tuple[str, Callable[..., None]]]:
    """A command per stage of the catalog (tasks/catalog.py), in its order."""
    from tasks.catalog import EDIT

    return [(stage.name, stage_command(stage.name, stage.per_edit)) for stage in EDIT.stages]


def _plan(
    handed: Given, location: str, edits: list[str], store: str, preset: str, config_path: Path | None, seed: int, as_json: bool
) -> None:
    from dataclasses import asdict

    from flows.planning import plan_text, remaining_seconds, typical_seconds
    from flows.remote_library import is_url, local_location

    location = local_location(location)
    target = Path(location)
    is_manifest = target.suffix.lower() in (".csv", ".parquet", ".yaml", ".yml")
    if not (is_manifest and is_url(location)) and not target.exists():  # a manifest at a URL says so itself
        raise UserError(f"asset file not found: {target}")
    base = load_config(handed, preset, config_path)
    typical = typical_seconds(store)
    if is_manifest:
        from flows.manifest import read_manifest

        planned = []
        for entry in read_manifest(location, base):
            check_prompts(list(entry.edits), allow_no_edit=False, where=f"{location}: row {entry.row}: ")
            planned += checked_plan(entry.asset, entry.edits, store, entry.config(base), seed, typical, f"row {entry.row}: ")
    else:
        check_prompts(edits, allow_no_edit=False)
        planned = checked_plan(str(target.resolve()), edits, store, base, seed, typical, "")
    seconds, unknown = remaining_seconds(planned)
    payload = {"stages": [asdict(entry) for entry in planned], "expected_seconds": seconds, "stages_without_history": unknown}
    emit(as_json, payload, plan_text(planned))


def checked_plan(
    asset: str, edits: Any, store: str, config: Any, seed: int, typical: Any, where: str, in_batch: bool = False
) -> list[Any]:
    """`plan_asset`, an edit naming a token the cached components lack as a user's mistake (exit 2). In a batch
    (`in_batch`) a file that cannot be read is left to its own run, which fails that row only."""
    from flows.planning import PromptError, plan_asset

    try:
        return plan_asset(asset, edits, store, config, seed, typical)
    except PromptError as error:
        raise UserError(f"{where}{Path(asset).name}: {one_line(error)}") from None
    except Exception as error:
        if in_batch:
            return []
        if isinstance(error, ValueError):
            raise UserError(f"{where}{Path(asset).name}: {one_line(error)}") from None
        raise


def plan(
    ctx: typer.Context,
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
    _plan(given(ctx), target, edit, store, preset, config, seed, as_json)


def components(
    ctx: typer.Context,
    asset: AssetArgument,
    store: StoreOption = DEFAULT_STORE,
    preset: PresetOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Which token is which part of ASSET, before any editing: each component's token, parts, initializer
    word and coverage of the views (runs only ingest, render and mask; cached ones cost nothing)."""
    settings = load_config(given(ctx), preset, config)
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


config_app = typer.Typer(name="config", help="The effective configuration.", no_args_is_help=True)


@config_app.command("show")
def config_show(ctx: typer.Context, preset: PresetOption = None, config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Print the configuration a command would run with: the preset, your --config file on top, validated."""
    settings = load_config(given(ctx), preset, config).model_dump(mode="json")
    emit(as_json, settings, yaml.safe_dump(settings, sort_keys=False).rstrip())


def example(
    out: Annotated[Path, typer.Argument(help="Where to write the GLB.")] = Path("examples/chair.glb"),
    as_json: JsonOption = False,
) -> None:
    """Write the example asset: a chair built from primitives, one named part per piece."""
    from dreamedit3d_core.ingest import make_example_asset

    path = make_example_asset(out)
    emit(as_json, {"asset": str(path)}, f"wrote {path}")


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
