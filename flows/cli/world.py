"""`dreamedit3d world ...`: the procedural parts world and the small model we train on it.

A world command's `--config` (`dataset:` and `pretrain:` sections) is read by flows/cli/settings.py, as every
command's is, and handed over; its sections are checked here."""

from __future__ import annotations

import lzma
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import typer

from flows.cli.common import DEFAULT_STORE, JsonOption, StoreOption, UserError, emit, server_note
from flows.cli.settings import Given, given
from flows.text import one_line

world_app = typer.Typer(
    name="world",
    help="The procedural parts world: render its dataset, train the `world` preset's model, write examples.",
    no_args_is_help=True,
)

ObjectsOption = Annotated[int, typer.Option("--objects", min=1, help="Training objects to render.")]
HeldOutOption = Annotated[int, typer.Option("--held-out", min=0, help="Objects kept out of training.")]
WorldSeedOption = Annotated[int, typer.Option("--seed", help="Seed of the world's objects and captions.")]
WorldConfigOption = Annotated[
    Optional[Path], typer.Option("--config", help="YAML with `dataset:` and `pretrain:` sections overriding defaults.")
]


def _sections(handed: Given, path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    loaded = handed.settings_of(path, pipeline=False)
    unknown = set(loaded) - {"dataset", "pretrain"}
    if unknown:
        raise UserError(f"{path}: expected only `dataset:` and `pretrain:` sections, got {sorted(unknown)}")
    return loaded


def _dataset_config(handed: Given, config: Path | None, **flags: Any) -> Any:
    from dreamedit3d_core.world import WorldDatasetConfig

    settings = {**_sections(handed, config).get("dataset", {}), **{k: v for k, v in flags.items() if v is not None}}
    try:
        return WorldDatasetConfig.model_validate(settings)
    except ValueError as error:
        raise UserError(f"invalid dataset configuration: {one_line(error)}") from None


def _dataset_ref(handed: Given, store: str, config: Path | None, **flags: Any) -> Any:
    """The dataset stage's StageRef (rendered now unless committed), for `data` and `export-data`."""
    from dreamedit3d_core.config import WorldTrainingConfig
    from flows.train_world import train_world_model

    dataset = _dataset_config(handed, config, **flags)
    server_note()
    (ref,) = train_world_model(store=store, config=WorldTrainingConfig(dataset=dataset), until="world_dataset")
    return ref


@world_app.command("data")
def data(
    ctx: typer.Context,
    objects: ObjectsOption = None,  # type: ignore[assignment]
    held_out: HeldOutOption = None,  # type: ignore[assignment]
    seed: WorldSeedOption = None,  # type: ignore[assignment]
    config: WorldConfigOption = None,
    store: StoreOption = DEFAULT_STORE,
    as_json: JsonOption = False,
) -> None:
    """Render the world's training and held-out objects (cached in the store)."""
    ref = _dataset_ref(given(ctx), store, config, objects=objects, held_out=held_out, seed=seed)
    payload = {"stage": ref.stage, "status": ref.status, "key": ref.key, "artifacts": ref.artifacts}
    emit(as_json, payload, f"world_dataset {ref.status} ({ref.seconds:.1f} s)\n  preview {ref.artifacts['world_preview']}")


@world_app.command("train")
def train(
    ctx: typer.Context,
    objects: ObjectsOption = None,  # type: ignore[assignment]
    held_out: HeldOutOption = None,  # type: ignore[assignment]
    seed: WorldSeedOption = None,  # type: ignore[assignment]
    steps: Annotated[Optional[int], typer.Option("--steps", min=0, help="Training steps.")] = None,
    batch: Annotated[Optional[int], typer.Option("--batch", min=1, help="Objects per step.")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    install: Annotated[
        Optional[Path], typer.Option("--install", help="Also copy the trained model folder here (e.g. the shipped weights).")
    ] = None,
    config: WorldConfigOption = None,
    store: StoreOption = DEFAULT_STORE,
    as_json: JsonOption = False,
) -> None:
    """Render the dataset if needed, then train the world model from scratch (resumes after a kill)."""
    from dreamedit3d_core.config import WorldTrainingConfig
    from dreamedit3d_core.pretrain import PretrainConfig
    from flows.train_world import install_model, train_world_model

    dataset = _dataset_config(given(ctx), config, objects=objects, held_out=held_out, seed=seed)
    flags = {k: v for k, v in {"steps": steps, "batch_objects": batch}.items() if v is not None}
    try:
        training = PretrainConfig.model_validate({**_sections(given(ctx), config).get("pretrain", {}), **flags})
    except ValueError as error:
        raise UserError(f"invalid pretrain configuration: {one_line(error)}") from None
    server_note()
    refs = train_world_model(store=store, config=WorldTrainingConfig(dataset=dataset, pretrain=training, device=device))
    model_ref = refs[-1]
    folder = Path(model_ref.artifacts["world_model"].removeprefix("file://"))
    if install is not None:
        folder = install_model(model_ref, store, install)
    payload = {"stages": [{"stage": r.stage, "status": r.status, "key": r.key} for r in refs], "model": str(folder)}
    lines = [f"{r.stage} {r.status} ({r.seconds:.1f} s)" for r in refs] + [f"model: {folder}"]
    emit(as_json, payload, "\n".join(lines))


@world_app.command("export-data")
def export_data(
    ctx: typer.Context,
    out: Annotated[Path, typer.Argument(help="The .npz (zlib) or .npz.xz (lzma) file to write, for scripts/pretrain_world.py.")],
    objects: ObjectsOption = None,  # type: ignore[assignment]
    held_out: HeldOutOption = None,  # type: ignore[assignment]
    seed: WorldSeedOption = None,  # type: ignore[assignment]
    config: WorldConfigOption = None,
    store: StoreOption = DEFAULT_STORE,
    as_json: JsonOption = False,
) -> None:
    """Write the training split as one compressed .npz: train where only torch and diffusers are installed."""
    from storage import ArtifactStore
    from tasks.artifacts import WORLD_OBJECTS
    from tasks.world import read_training_data

    ref = _dataset_ref(given(ctx), store, config, objects=objects, held_out=held_out, seed=seed)
    dataset = ArtifactStore(store).get(ref.key)
    train_data = read_training_data(dataset)
    table = WORLD_OBJECTS.load(dataset)
    preview = [c for c, s in zip(table["canonical_caption"], table["split"], strict=True) if s == "held_out"][:8]
    out.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        "images": train_data.images,
        "captions": np.array([list(c) for c in train_data.captions]),
        "cameras": train_data.cameras,
        "preview_captions": np.array(preview),
    }
    partial = out.with_name(out.name + ".partial")
    if out.suffix == ".xz":  # a third smaller than .npz's zlib: what fits a 64 MiB transfer to a lent GPU
        with lzma.open(partial, "wb", preset=6) as stream:
            np.savez(stream, **arrays)
    else:
        with open(partial, "wb") as stream:
            np.savez_compressed(stream, **arrays)
    partial.replace(out)
    size = out.stat().st_size / 2**20
    emit(as_json, {"out": str(out), "objects": train_data.num_objects, "mib": size}, f"wrote {out}: {train_data.num_objects} objects, {size:.1f} MiB")


MAX_EXAMPLE_INDEX = 1000  # held-out objects beyond the dataset's are drawn on demand; past this it gets slow


@world_app.command("example")
def example(
    out: Annotated[Path, typer.Argument(help="Where to write the GLB.")] = Path("examples/world_object.glb"),
    index: Annotated[int, typer.Option("--index", min=0, help="Which held-out object.")] = 0,
    seed: WorldSeedOption = 0,
    as_json: JsonOption = False,
) -> None:
    """Write a held-out object of the world (never trained on) as a GLB, with its caption. Indices past the
    dataset's own held-out objects are more objects that no training object shares a description with."""
    from dreamedit3d_core.world import WorldDatasetConfig, canonical_caption, write_world_asset
    from dreamedit3d_core.world.objects import held_out_objects

    defaults = WorldDatasetConfig(seed=seed)
    if index >= MAX_EXAMPLE_INDEX:
        raise UserError(f"--index {index}: choose a held-out object 0..{MAX_EXAMPLE_INDEX - 1}")
    obj = held_out_objects(index + 1, defaults.objects, defaults.held_out, seed, defaults.world)[index]
    path = write_world_asset(obj, out, defaults.world)
    text = canonical_caption(obj)
    emit(as_json, {"asset": str(path), "caption": text, "parts": [p.shape for p in obj.parts]}, f"wrote {path}: {text}")
