"""Artifacts as nouns: what every stage stores, each with one typed way to save it and one to load it.

A noun is the name users see (CLI `--json`, `status`, the HTML pages) and the name of its item in the store;
the stage that makes it declares it in the catalog (tasks/catalog.py), and a stage that reads it loads it
through the same object, so a reader can never disagree with the writer about arrays, dimensions or files.

Each noun declares its format `version` ("1" for all of them until one is bumped): bump it when what its `save`
writes or its `load` returns changes. A bumped version changes the key of every stage that makes or loads the
noun (tasks/stage.py), and tasks/code_versions.json records each noun's source with its version, so a format
change without a bump fails `python -m tasks.code_versions`, and no stage's code version has to change for it.
"""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
from PIL import Image

from dreamedit3d_core.geometry.cameras import CameraSet
from dreamedit3d_core.render import Renders, camera_table
from storage import Artifact, ArtifactWriter

S = TypeVar("S")  # what a stage saves
L = TypeVar("L")  # what a reader loads


class Noun(ABC, Generic[S, L]):
    """One artifact: `save(writer, value)` writes it as the item `name`, `load(artifact)` reads it back."""

    kind = "item"

    def __init__(self, name: str, about: str, *, version: str = "1") -> None:
        self.name = name
        self.about = about
        # the version of how this noun is saved and loaded: bump it (declared below) when that changes; it enters
        # the key of every stage that makes or loads the noun, and tasks/code_versions.json records its source
        self.format_version = version

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    @abstractmethod
    def save(self, writer: ArtifactWriter, value: S) -> None: ...

    @abstractmethod
    def load(self, artifact: Artifact) -> L: ...


Columns = dict[str, list[Any]]


class TableNoun(Noun[Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]], Columns]):
    """A Parquet table: saved from rows (dicts) or columns, loaded as columns."""

    kind = "table"

    def __init__(self, name: str, about: str, empty_columns: Sequence[str] = ("step",), *, version: str = "1") -> None:
        super().__init__(name, about, version=version)
        self.empty_columns = tuple(empty_columns)  # the columns an empty table keeps

    def save(self, writer: ArtifactWriter, value: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]]) -> None:
        writer.table(self.name, value if isinstance(value, Mapping) else columns(value, self.empty_columns))

    def load(self, artifact: Artifact) -> Columns:
        return artifact.table(self.name).to_pydict()


def columns(rows: Sequence[Mapping[str, Any]], empty: Sequence[str] = ("step",)) -> Columns:
    """Rows -> a mapping of columns (an empty table keeps the `empty` column names)."""
    if not rows:
        return {name: [] for name in empty}
    return {name: [row[name] for row in rows] for name in rows[0]}


def rows(table: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Columns -> rows (dicts), the shape core functions take."""
    return [dict(zip(table, values, strict=True)) for values in zip(*table.values(), strict=True)]


class PictureNoun(Noun[np.ndarray, bytes]):
    """A preview picture: saved from an (H, W, 3|4) uint8 array as PNG, loaded as the PNG's bytes."""

    kind = "picture"

    def save(self, writer: ArtifactWriter, value: np.ndarray) -> None:
        writer.file(self.name, png_bytes(value), filename=f"{self.name}.png")

    def load(self, artifact: Artifact) -> bytes:
        return artifact.local_path(self.name).read_bytes()


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
    return buffer.getvalue()


class FileNoun(Noun[bytes | Path, Path]):
    """One file (a GLB, a GIF, an HTML page): saved from bytes or a path, loaded as a local path."""

    kind = "file"

    def __init__(self, name: str, about: str, suffix: str, *, version: str = "1") -> None:
        super().__init__(name, about, version=version)
        self.suffix = suffix

    def save(self, writer: ArtifactWriter, value: bytes | Path) -> None:
        writer.file(self.name, value, filename=f"{self.name}{self.suffix}")

    def load(self, artifact: Artifact) -> Path:
        return artifact.local_path(self.name)


class FolderNoun(Noun[Callable[[Path], object], Path]):
    """A folder (an asset, a diffusers model): saved by a function that writes into an empty folder (no
    copy), loaded as a local path."""

    kind = "folder"

    def save(self, writer: ArtifactWriter, value: Callable[[Path], object]) -> None:
        value(writer.new_directory(self.name))

    def load(self, artifact: Artifact) -> Path:
        return artifact.local_path(self.name)


class RendersNoun(Noun[Renders, Renders]):
    """The render stage's views: colour, colour on white, planar depth, world normals and part ids."""

    kind = "arrays"

    def save(self, writer: ArtifactWriter, value: Renders) -> None:
        views = ("view", "y", "x")
        writer.array(self.name, "rgba", value.rgba, dims=(*views, "channel"))
        writer.array(self.name, "rgb_white", value.rgb_white, dims=(*views, "channel"))
        writer.array(self.name, "depth", value.depth, dims=views, attrs={"background": 0.0, "kind": "planar z"})
        writer.array(self.name, "normals", value.normals, dims=(*views, "xyz"), attrs={"frame": "world"})
        writer.array(self.name, "part_id", value.part_id, dims=views, attrs={"background": -1})
        writer.array(self.name, "albedo", value.albedo, dims=(*views, "channel"), attrs={"background": 255})
        writer.group_attrs(self.name, {"image_size": value.image_size, "num_views": value.num_views})

    def load(self, artifact: Artifact) -> Renders:
        names = ("rgba", "rgb_white", "depth", "normals", "part_id", "albedo")
        arrays = {name: artifact.array(self.name, name) for name in names}
        return Renders(**arrays)


class CamerasNoun(Noun[CameraSet, CameraSet]):
    """The cameras of the views, one row per view (with MVDream's 16-number camera)."""

    kind = "table"

    def save(self, writer: ArtifactWriter, value: CameraSet) -> None:
        writer.table(self.name, camera_table(value))

    def load(self, artifact: Artifact) -> CameraSet:
        return CameraSet.from_columns(artifact.table(self.name).to_pydict())


class MasksNoun(Noun[np.ndarray, np.ndarray]):
    """One boolean mask per component per view, (K, V, H, W)."""

    kind = "arrays"

    def save(self, writer: ArtifactWriter, value: np.ndarray) -> None:
        writer.array(self.name, "masks", value, dims=("component", "view", "y", "x"))

    def load(self, artifact: Artifact) -> np.ndarray:
        return artifact.array(self.name, "masks")


@dataclass(frozen=True)
class EditViews:
    """The sampled views of one edit: (E, V, H, W, 3) uint8 for E samples, and where a local edit was allowed."""

    views: np.ndarray
    prompt: str
    seed: int
    azimuths: list[float]
    edit_masks: np.ndarray | None = None  # (E, V, h, w) bool at latent resolution, with local edits


class ViewsNoun(Noun[EditViews, EditViews]):
    kind = "arrays"

    def save(self, writer: ArtifactWriter, value: EditViews) -> None:
        writer.array(self.name, "views", value.views, dims=("sample", "view", "y", "x", "channel"))
        if value.edit_masks is not None:
            writer.array(self.name, "edit_masks", value.edit_masks, dims=("sample", "view", "y", "x"))
        writer.group_attrs(self.name, {"prompt": value.prompt, "seed": value.seed, "azimuths": list(value.azimuths)})

    def load(self, artifact: Artifact) -> EditViews:
        attrs = dict(artifact.zarr_group(self.name).attrs)
        arrays = artifact.info(self.name, "zarr").get("arrays", {})
        edit_masks = artifact.array(self.name, "edit_masks") if "edit_masks" in arrays else None
        return EditViews(
            views=artifact.array(self.name, "views"),
            prompt=str(attrs["prompt"]),
            seed=int(attrs["seed"]),
            azimuths=[float(a) for a in attrs["azimuths"]],
            edit_masks=edit_masks,
        )


@dataclass(frozen=True)
class WorldImages:
    """Every object of the world dataset in V views: (N, V, S, S, 3) uint8 colour and (N, V, S, S) int8 part ids."""

    rgb: np.ndarray
    part_id: np.ndarray


class WorldImagesNoun(Noun[WorldImages, WorldImages]):
    kind = "arrays"

    def save(self, writer: ArtifactWriter, value: WorldImages) -> None:
        dims = ("object", "view", "y", "x")
        writer.array(self.name, "rgb", value.rgb, dims=(*dims, "channel"), chunks=(256, *value.rgb.shape[1:]))
        writer.array(
            self.name, "part_id", value.part_id, dims=dims, attrs={"background": -1}, chunks=(256, *value.part_id.shape[1:])
        )

    def load(self, artifact: Artifact) -> WorldImages:
        return WorldImages(rgb=artifact.array(self.name, "rgb"), part_id=artifact.array(self.name, "part_id"))


# -- the nouns of every stage, in stage order ---------------------------------------------------------------
# `version`: the noun's format version (see the module's docstring); it starts at "1" and is bumped here

ASSET = FolderNoun("asset", "the normalised asset folder (asset.glb, scene.json, meshes, textures)", version="1")
PARTS = TableNoun("parts", "the asset's parts: names, materials, face counts", version="1")
RENDERS = RendersNoun("renders", "the views: rgba, rgb_white, depth, normals, part_id, albedo", version="1")
CAMERAS = CamerasNoun("cameras", "one row per view, with MVDream's 16-number camera", version="1")
RENDERS_PREVIEW = PictureNoun("renders_preview", "contact sheet of the views and passes", version="1")
MASKS = MasksNoun("masks", "one mask per component per view", version="1")
COMPONENTS = TableNoun("components", "one row per component: token, initializer word, parts, coverage", version="1")
MASKS_PREVIEW = PictureNoun("masks_preview", "the components coloured over the views", version="1")
TOKEN_EMBEDDINGS = FolderNoun("token_embeddings", "one textual-inversion safetensors file per token", version="1")
INVERT_LOG = TableNoun("invert_log", "phase 1 losses per step", version="1")
ATTENTION_ISOLATION = TableNoun(
    "attention_isolation", "each token's attention inside its component, phase 1", ("token",), version="1"
)
ATTENTION_PREVIEW = PictureNoun("attention_preview", "each token's cross-attention after phase 1", version="1")
FINETUNED_MODEL = FolderNoun("finetuned_model", "the personalised multi-view model (diffusers folder)", version="1")
FINETUNE_LOG = TableNoun("finetune_log", "phase 2 losses per step", version="1")
FINETUNE_ATTENTION_ISOLATION = TableNoun(
    "finetune_attention_isolation", "each token's attention inside its component, phase 2", ("token",), version="1"
)
FINETUNE_ATTENTION_PREVIEW = PictureNoun(
    "finetune_attention_preview", "each token's cross-attention after phase 2", version="1"
)
VIEWS = ViewsNoun("views", "the sampled views of one edit", version="1")
VIEWS_PREVIEW = PictureNoun("views_preview", "the sampled views, one row per sample", version="1")
RECONSTRUCTION = FileNoun("reconstruction", "the whole object lifted from the views (textured GLB)", ".glb", version="1")
RECONSTRUCTION_PREVIEW = PictureNoun("reconstruction_preview", "the reconstruction rendered from 8 azimuths", version="1")
RECONSTRUCTION_TURNTABLE = FileNoun("reconstruction_turntable", "the reconstruction turning (GIF)", ".gif", version="1")
MESH = FileNoun("mesh", "the edited asset: the source with only the named components changed (GLB)", ".glb", version="1")
MESH_SOURCE_FRAME = FileNoun("mesh_source_frame", "the edited asset where the source file had it (GLB)", ".glb", version="1")
MESH_PREVIEW = PictureNoun("mesh_preview", "the edited asset rendered from 8 azimuths", version="1")
TURNTABLE = FileNoun("turntable", "the edited asset turning (GIF)", ".gif", version="1")
MERGE_REPORT = TableNoun(
    "merge_report", "per component: kept, or edited (appearance or shape) and how", ("token",), version="1"
)
METRICS = TableNoun("metrics", "one row of every metric of the edit", version="1")
COMPONENT_COLOURS = TableNoun(
    "component_colours", "every component's share of every named hue, before and after", version="1"
)
REPORT = FileNoun("report", "the edit's report (self-contained HTML)", ".html", version="1")
WORLD_IMAGES = WorldImagesNoun("world_images", "every world object in 4 views, with part ids", version="1")
WORLD_OBJECTS = TableNoun("world_objects", "one row per world object: split, parts, captions", version="1")
WORLD_CAMERAS = CamerasNoun("world_cameras", "the world orbit's cameras", version="1")
WORLD_PREVIEW = PictureNoun("world_preview", "16 held-out objects, one row of views each", version="1")
WORLD_MODEL = FolderNoun("world_model", "the trained world model (float16 diffusers folder)", version="1")
PRETRAIN_LOSSES = TableNoun("pretrain_losses", "training loss per logged step", version="1")
