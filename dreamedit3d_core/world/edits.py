"""Edits of parts-world objects with their exact answer: the object as the edit should leave it.

A world object is known part by part, so an edit of it ("the pyramid in blue", "the cone as a sphere") has a
ground truth: the same object with that part recoloured or reshaped, rendered by the same cameras. Three
kinds, as the edit benchmark asks them:
  - `recolour`: one part in a colour no part has ("a photo of <asset0> and <asset1> in blue");
  - `recolour2`: two parts, each in a colour no part has ("a photo of <asset0> in blue and <asset1> in yellow");
  - `swap`: a part with nothing resting on it becomes a shape the object lacks, in its own colour, standing
    where it stood ("a photo of <asset0> and <asset1> as a sphere in red").
`truth_asset` gives the edited object in the frame of the source's ingested asset (a new shape changes the
object's bounding sphere, so it is not normalised on its own), ready to render beside the pipeline's output.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from dreamedit3d_core.ingest import IngestConfig, IngestedAsset, ingest_asset
from dreamedit3d_core.world.assets import write_world_asset
from dreamedit3d_core.world.config import DEFAULT_COLOURS, SHAPES, WorldConfig
from dreamedit3d_core.world.objects import WorldObject, _extents

EditKind = Literal["recolour", "recolour2", "swap"]
EDIT_KINDS: tuple[EditKind, ...] = ("recolour", "recolour2", "swap")
# asked colours, in the order they are tried (each edit takes the first ones the object lacks)
EDIT_COLOURS: tuple[str, ...] = ("green", "blue", "red", "yellow", "purple", "pink", "orange")


@dataclass(frozen=True)
class WorldEdit:
    """One edit of a world object and its answer."""

    kind: EditKind
    source: WorldObject
    target: WorldObject  # the object as the edit should leave it
    parts: tuple[int, ...]  # the edited parts' indices in `source.parts`
    colours: tuple[str, ...]  # per edited part: the colour it should have
    shape: str | None = None  # the new shape of a swap

    def prompt(self, tokens: Sequence[str]) -> str:
        """The edit in words, one token per part (`tokens[i]` is part i's): each edited part with its words."""
        if len(tokens) != len(self.source.parts):
            raise ValueError(f"{len(tokens)} tokens for {len(self.source.parts)} parts")
        phrases = []
        for index, token in enumerate(tokens):
            if index not in self.parts:
                phrases.append(token)
            elif self.kind == "swap":
                phrases.append(f"{token} as a {self.shape} in {self.colours[0]}")
            else:
                phrases.append(f"{token} in {self.colours[self.parts.index(index)]}")
        return "a photo of " + " and ".join(phrases)

    @property
    def kept(self) -> tuple[int, ...]:
        return tuple(i for i in range(len(self.source.parts)) if i not in self.parts)


def _new_colours(obj: WorldObject, count: int, offset: int) -> list[str]:
    """`count` colours no part of `obj` has, starting at `offset` in EDIT_COLOURS (so objects vary)."""
    taken = {part.colour for part in obj.parts}
    order = EDIT_COLOURS[offset % len(EDIT_COLOURS) :] + EDIT_COLOURS[: offset % len(EDIT_COLOURS)]
    return [colour for colour in order if colour not in taken][:count]


def recolour_edit(obj: WorldObject, parts: Sequence[int], colours: Sequence[str]) -> WorldEdit:
    """The parts at `parts` in `colours` (world colour names)."""
    new = list(obj.parts)
    for index, colour in zip(parts, colours, strict=True):
        if colour not in DEFAULT_COLOURS:
            raise ValueError(f"unknown world colour {colour!r}; known: {', '.join(DEFAULT_COLOURS)}")
        new[index] = dataclasses.replace(new[index], colour=colour, rgb=DEFAULT_COLOURS[colour])
    kind: EditKind = "recolour" if len(parts) == 1 else "recolour2"
    return WorldEdit(kind, obj, dataclasses.replace(obj, parts=tuple(new)), tuple(parts), tuple(colours))


def swap_edit(obj: WorldObject, part: int, shape: str, seed: int = 0, config: WorldConfig | None = None) -> WorldEdit:
    """Part `part` (nothing may rest on it) as `shape`, as large as it was, on the same ground, its colour kept."""
    config = config or WorldConfig()
    old = obj.parts[part]
    if any(p.stack == old.stack and p.level > old.level for p in obj.parts):
        raise ValueError(f"part {part} ({old.shape}) carries another part: only a part with nothing on it can change shape")
    if shape not in SHAPES or any(p.shape == shape for p in obj.parts):
        raise ValueError(f"the new shape must be a world shape the object lacks, got {shape!r}")
    extents = _extents(shape, max(old.extents), config, np.random.default_rng(seed))
    bottom = old.centre[2] - 0.5 * old.extents[2]
    centre = (old.centre[0], old.centre[1], bottom + 0.5 * extents[2])
    new = list(obj.parts)
    new[part] = dataclasses.replace(old, shape=shape, extents=extents, centre=centre)
    return WorldEdit("swap", obj, dataclasses.replace(obj, parts=tuple(new)), (part,), (old.colour,), shape)


def benchmark_edits(obj: WorldObject, index: int) -> list[WorldEdit]:
    """The benchmark's three edits of one object (`index` varies the colours and shapes between objects):
    its last part recoloured, its last two parts recoloured, and its last part with nothing on it reshaped."""
    last = len(obj.parts) - 1
    one = _new_colours(obj, 1, index)
    two = _new_colours(obj, 2, index + 1)
    free = [i for i in range(len(obj.parts)) if not any(p.stack == obj.parts[i].stack and p.level > obj.parts[i].level for p in obj.parts)]
    missing = [shape for shape in SHAPES if all(p.shape != shape for p in obj.parts)]
    shape = missing[index % len(missing)]
    return [
        recolour_edit(obj, [last], one),
        recolour_edit(obj, [last - 1, last], two),
        swap_edit(obj, free[-1], shape, seed=index),
    ]


def truth_asset(edit: WorldEdit, source: IngestedAsset, config: WorldConfig | None = None) -> IngestedAsset:
    """The edited object as an ingested asset in `source`'s frame (`source` = the ingested source object, e.g.
    `world_asset(edit.source)`): read from its own GLB like the source, then moved by the source's normalisation."""
    with tempfile.TemporaryDirectory(prefix="dreamedit3d-world-truth-") as tmp:
        raw = ingest_asset(write_world_asset(edit.target, Path(tmp) / "world_object.glb", config), IngestConfig(normalize=False))
    # raw.normalization is the turn from the GLB's +Y up; the source's normalisation is that turn, then its centre
    # and scale
    placement = source.normalization @ np.linalg.inv(raw.normalization)
    parts = [
        dataclasses.replace(part, vertices=(part.vertices @ placement[:3, :3].T + placement[:3, 3]).astype(np.float32))
        for part in raw.parts
    ]
    return dataclasses.replace(raw, parts=parts, normalization=source.normalization)
