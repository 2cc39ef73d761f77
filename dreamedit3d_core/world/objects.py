"""Objects of the parts world: 1 or 2 side-by-side stacks of 1 or 2 primitives, every shape at most once.

Frame: +Z up, like the normalised asset. Stack 0 stands at -x, stack 1 at +x, each part resting on the one
below (bounding boxes touching), then the whole object turns by `yaw_deg` about +Z. Because the yaw is
uniform over the full turn, which stack stands on the left means nothing: stacks are stored in a canonical
order (sorted by their description), so an object's key and captions follow from its parts alone.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dreamedit3d_core.world.config import WorldConfig

_HELD_OUT_STREAM, _TRAIN_STREAM = 1, 0
_MAX_DRAWS_PER_OBJECT = 1000  # rejection sampling gives up beyond this: the world is too small


@dataclass(frozen=True)
class WorldPart:
    shape: str
    colour: str
    rgb: tuple[float, float, float]  # sRGB
    extents: tuple[float, float, float]  # bounding box size (x, y, z) before the yaw
    centre: tuple[float, float, float]  # bounding box centre before the yaw
    stack: int
    level: int  # 0 = resting on the ground
    # "striped": bands of its colour and white round it (a look no colour word says; never in the training set)
    pattern: str = "plain"


@dataclass(frozen=True)
class WorldObject:
    parts: tuple[WorldPart, ...]  # stack by stack, bottom to top
    yaw_deg: float

    def stacks(self) -> list[list[WorldPart]]:
        count = max(p.stack for p in self.parts) + 1
        return [[p for p in self.parts if p.stack == s] for s in range(count)]


def _stack_sizes(num_parts: int, config: WorldConfig, rng: np.random.Generator) -> list[int]:
    """A uniformly chosen split of the parts into stacks of 1..max_stack_height (in order)."""
    splits = [
        list(sizes)
        for count in range(1, config.max_stacks + 1)
        for sizes in itertools.product(range(1, config.max_stack_height + 1), repeat=count)
        if sum(sizes) == num_parts
    ]
    return splits[int(rng.integers(len(splits)))]


def _extents(shape: str, size: float, config: WorldConfig, rng: np.random.Generator) -> tuple[float, float, float]:
    if shape in ("cube", "sphere"):
        return (size, size, size)
    if shape == "torus":  # upright ring facing the y axis: a ring seen from azimuth 0 before the yaw
        tube = size / (2.0 * (1.0 + 1.0 / config.torus_thickness))
        return (size, 2.0 * tube, size)
    aspect = float(rng.uniform(*config.aspect_range))  # height / width
    width, height = (size / aspect, size) if aspect >= 1.0 else (size, size * aspect)
    return (width, width, height)


def _describe(parts: Sequence[WorldPart]) -> str:
    return ", ".join(f"{p.colour} {p.shape}" for p in parts)


def sample_object(rng: np.random.Generator, config: WorldConfig) -> WorldObject:
    """One random object: a uniform number of parts in [min_parts, max_parts], distinct shapes."""
    num_parts = int(rng.integers(config.min_parts, config.max_parts + 1))
    shapes = [str(s) for s in rng.choice(list(config.shapes), size=num_parts, replace=False)]
    names = list(config.colours)
    colours = [str(c) for c in rng.choice(names, size=num_parts, replace=not config.distinct_colours)]
    sizes = rng.uniform(*config.size_range, size=num_parts)
    extents = [_extents(s, float(z), config, rng) for s, z in zip(shapes, sizes, strict=True)]
    # (shape, colour, extents) bottom to top per stack, stacks in canonical order
    stacks, start = [], 0
    for height in _stack_sizes(num_parts, config, rng):
        chosen = slice(start, start + height)
        stacks.append(list(zip(shapes[chosen], colours[chosen], extents[chosen], strict=True)))
        start += height
    stacks.sort(key=lambda stack: ", ".join(f"{colour} {shape}" for shape, colour, _ in stack))  # as object_key
    widths = [max(e[0] for _, _, e in stack) for stack in stacks]
    gap = float(rng.uniform(*config.gap_range)) * float(sizes.max())
    left = -0.5 * (sum(widths) + gap * (len(stacks) - 1))
    parts = []
    for index, stack in enumerate(stacks):
        x, z = left + 0.5 * widths[index], 0.0
        for level, (shape, colour, extent) in enumerate(stack):
            rgb = tuple(float(c) for c in config.colours[colour])
            parts.append(WorldPart(shape, colour, rgb, extent, (x, 0.0, z + 0.5 * extent[2]), index, level))
            z += extent[2]
        left += widths[index] + gap
    return WorldObject(parts=tuple(parts), yaw_deg=float(rng.uniform(0.0, 360.0)))


def object_key(obj: WorldObject) -> str:
    """What the object is, whatever its sizes, gap and yaw: its stacks, each bottom to top, sorted."""
    return " | ".join(sorted(_describe(stack) for stack in obj.stacks()))


def _draw_distinct(
    rng: np.random.Generator, count: int, config: WorldConfig, excluded: set[str], distinct: bool
) -> list[WorldObject]:
    objects: list[WorldObject] = []
    seen: set[str] = set()
    for _ in range(count * _MAX_DRAWS_PER_OBJECT):
        if len(objects) == count:
            break
        obj = sample_object(rng, config)
        key = object_key(obj)
        if key in excluded or (distinct and key in seen):
            continue
        seen.add(key)
        objects.append(obj)
    if len(objects) < count:
        raise ValueError(f"could only draw {len(objects)} of {count} objects: the world config allows too few kinds")
    return objects


def sample_split(
    n_train: int, n_held_out: int, seed: int, config: WorldConfig | None = None
) -> tuple[list[WorldObject], list[WorldObject]]:
    """(train, held_out): held-out objects (distinct keys) from their own stream, then training objects
    redrawn until none shares a key with a held-out one. The same seed gives the same split."""
    if n_train < 0 or n_held_out < 0:
        raise ValueError(f"object counts must be >= 0, got n_train={n_train}, n_held_out={n_held_out}")
    config = config or WorldConfig()
    held_out = _draw_distinct(np.random.default_rng([seed, _HELD_OUT_STREAM]), n_held_out, config, set(), True)
    excluded = {object_key(obj) for obj in held_out}
    train = _draw_distinct(np.random.default_rng([seed, _TRAIN_STREAM]), n_train, config, excluded, False)
    return train, held_out


def held_out_objects(count: int, n_train: int, n_held_out: int, seed: int, config: WorldConfig | None = None) -> list[WorldObject]:
    """`count` objects that no training object of `sample_split(n_train, n_held_out, seed)` shares a key with:
    its `n_held_out` held-out objects first, then more from the same stream, each kept only when no training
    object has its key. For benchmarks that need more objects than the dataset held out."""
    config = config or WorldConfig()
    train, held_out = sample_split(n_train, n_held_out, seed, config)
    if count <= len(held_out):
        return held_out[:count]
    # the held-out stream never depends on the training set: its first objects are the dataset's held-out ones
    candidates = _draw_distinct(np.random.default_rng([seed, _HELD_OUT_STREAM]), 4 * count, config, set(), True)
    training_keys = {object_key(obj) for obj in train}
    more = [obj for obj in candidates[len(held_out) :] if object_key(obj) not in training_keys]
    if len(held_out) + len(more) < count:
        raise ValueError(f"only {len(held_out) + len(more)} of {count} held-out objects have keys no training object has")
    return held_out + more[: count - len(held_out)]
