"""Components from an asset's parts: configured groups, single parts, and what happens to tiny ones.

Masks made from the rendered part ids agree across views exactly, because the render gives each part
the same id in every view. Tiny parts that are copies of one another (the same vertex and face counts, the
same surface area and material: the bolts of a machine, the buttons of a coat) become one component before any
tiny part is merged away, so that "the bolts" survive as something to edit instead of vanishing into their
neighbours one by one.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from dreamedit3d_core.masks.config import MaskConfig


@dataclass(frozen=True)
class PartsTable:
    """The columns of the render stage's parts table that the mask stage reads."""

    ids: list[int]
    names: list[str]
    materials: list[str]
    # (vertices, faces, surface area rounded) per part where the table has them: copies share it
    shapes: list[tuple[int, int, float] | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def name_of(self, part: int) -> str:
        return self.names[self.ids.index(part)]

    def material_of(self, part: int) -> str:
        return self.materials[self.ids.index(part)]


def read_parts_table(table: Mapping[str, Sequence] | Sequence[Mapping]) -> PartsTable:
    """A dict of lists (or a list of row dicts) with at least `part_id` and `name`; `material` optional."""
    if not isinstance(table, Mapping):
        rows = list(table)
        keys = ("part_id", "name", "material", "num_vertices", "num_faces", "surface_area")
        columns = {key: [row.get(key) for row in rows] for key in keys if any(key in row for row in rows)}
    else:
        columns = dict(table)
    for required in ("part_id", "name"):
        if required not in columns:
            raise ValueError(f"parts table has no '{required}' column (columns: {sorted(columns)})")
    ids = [int(part) for part in columns["part_id"]]
    names = ["" if name is None else str(name) for name in columns["name"]]
    materials = columns.get("material") or [None] * len(ids)
    if "name" in columns and "material" not in columns:
        materials = [None] * len(ids)
    if not (len(ids) == len(names) == len(materials)):
        raise ValueError("parts table columns 'part_id', 'name' and 'material' differ in length")
    if len(set(ids)) != len(ids):
        raise ValueError(f"parts table repeats part ids: {ids}")
    shapes: list[tuple[int, int, float] | None] = [None] * len(ids)
    if all(key in columns for key in ("num_vertices", "num_faces", "surface_area")):
        shapes = [
            (int(v), int(f), float(f"{a:.4g}"))
            for v, f, a in zip(columns["num_vertices"], columns["num_faces"], columns["surface_area"], strict=True)
        ]
    return PartsTable(ids, names, ["" if material is None else str(material) for material in materials], shapes)


def match_parts(pattern: str | int, table: PartsTable) -> list[int]:
    """Part ids an entry names: an id, an exact name or a glob pattern (case-insensitive)."""
    if isinstance(pattern, int):
        return [pattern] if pattern in table.ids else []
    return [
        part
        for part, name in zip(table.ids, table.names, strict=True)
        if fnmatch.fnmatchcase(name.lower(), pattern.lower())
    ]


def resolve_groups(groups: Mapping[str, Sequence[str | int]], table: PartsTable) -> dict[str, list[int]]:
    """Group name -> part ids; every entry must match a part and no part may sit in two groups."""
    owner: dict[int, str] = {}
    resolved: dict[str, list[int]] = {}
    for group, entries in groups.items():
        if not entries:
            raise ValueError(f"group '{group}' is empty: list the part names or patterns it holds")
        members: list[int] = []
        for entry in entries:
            matched = match_parts(entry, table)
            if not matched:
                raise ValueError(f"group '{group}': {entry!r} matches no part; the asset's parts are {table.names}")
            for part in matched:
                if part in owner and owner[part] != group:
                    raise ValueError(f"part '{table.name_of(part)}' is in two groups: '{owner[part]}' and '{group}'")
                owner[part] = group
                if part not in members:
                    members.append(part)
        resolved[group] = sorted(members)
    return resolved


@dataclass
class PartComponent:
    name: str
    part_ids: list[int]
    configured: bool  # a group from the config: never merged away, however small
    merged_names: list[str] = field(default_factory=list)  # small components merged into this one


def part_components(
    part_id: np.ndarray, table: PartsTable, config: MaskConfig
) -> tuple[list[PartComponent], list[str]]:
    """Components of a parts-mode asset and the warnings about parts merged or dropped on the way."""
    groups = resolve_groups(config.groups, table)
    grouped = {part for members in groups.values() for part in members}
    for group in groups:
        clashing = [part for part in table.ids if part not in grouped and table.name_of(part) == group]
        if clashing:
            raise ValueError(f"group name '{group}' is also the name of a part outside that group")
    components = [PartComponent(group, members, configured=True) for group, members in groups.items()]
    components += [PartComponent(table.name_of(p), [p], configured=False) for p in table.ids if p not in grouped]
    components.sort(key=lambda component: min(component.part_ids))

    pixels_per_part = np.bincount(part_id[part_id >= 0].ravel(), minlength=max(table.ids) + 1)
    foreground = max(int(pixels_per_part.sum()), 1)
    warnings: list[str] = []
    components = _group_small_copies(components, table, pixels_per_part, foreground, config, warnings)
    visible: list[PartComponent] = []
    for component in components:
        if component.configured or pixels_per_part[component.part_ids].sum() > 0:
            visible.append(component)
        else:
            warnings.append(f"part '{component.name}' is visible in no view: dropped")
    return _merge_small(visible, part_id, pixels_per_part, foreground, config, warnings), warnings


def _group_small_copies(
    components: list[PartComponent],
    table: PartsTable,
    pixels_per_part: np.ndarray,
    foreground: int,
    config: MaskConfig,
    warnings: list[str],
) -> list[PartComponent]:
    """Tiny single parts with the same shape and material, two or more, as one component named after them."""
    copies: dict[tuple, list[PartComponent]] = {}
    for component in components:
        if component.configured or len(component.part_ids) != 1 or not table.shapes:
            continue
        part = component.part_ids[0]
        shape = table.shapes[table.ids.index(part)]
        if shape is not None and pixels_per_part[part] / foreground < config.min_coverage:
            copies.setdefault((shape, table.material_of(part)), []).append(component)
    grouped = {id(c) for members in copies.values() if len(members) > 1 for c in members}
    result = [component for component in components if id(component) not in grouped]
    for members in copies.values():
        if len(members) < 2:
            continue
        name = _common_name([member.name for member in members])
        parts = sorted(part for member in members for part in member.part_ids)
        warnings.append(f"{len(members)} small copies of one shape ({', '.join(m.name for m in members)}) form one component '{name}'")
        result.append(PartComponent(name, parts, configured=False, merged_names=[m.name for m in members]))
    result.sort(key=lambda component: min(component.part_ids))
    return result


def _common_name(names: list[str]) -> str:
    """'bolt.001', 'bolt.002' -> 'bolt'; names with nothing in common keep the first one's."""
    prefix = names[0]
    for name in names[1:]:
        while not name.startswith(prefix):
            prefix = prefix[:-1]
    prefix = prefix.rstrip("0123456789._- ")
    return prefix or names[0]


def _merge_small(
    components: list[PartComponent],
    part_id: np.ndarray,
    pixels_per_part: np.ndarray,
    foreground: int,
    config: MaskConfig,
    warnings: list[str],
) -> list[PartComponent]:
    def share(component: PartComponent) -> float:
        return float(pixels_per_part[component.part_ids].sum()) / foreground

    def is_small(component: PartComponent) -> bool:
        return not component.configured and share(component) < config.min_coverage

    if config.small_parts == "drop":
        for component in filter(is_small, components):
            warnings.append(f"part '{component.name}' covers {share(component):.2%} of the foreground: dropped")
        return [component for component in components if not is_small(component)]

    if config.small_parts == "rest":
        small = [component for component in components if is_small(component)]
        kept = [component for component in components if not is_small(component)]
        if not small:
            return kept
        rest = next((c for c in kept if c.name == config.rest_name), None)
        if rest is None:
            rest = PartComponent(config.rest_name, [], configured=True)
            kept.append(rest)
        for component in small:
            warnings.append(
                f"part '{component.name}' covers {share(component):.2%} of the foreground: merged into '{rest.name}'"
            )
            rest.part_ids = sorted(rest.part_ids + component.part_ids)
            rest.merged_names.append(component.name)
        return kept

    # neighbour: repeatedly give the smallest small component to the component it shares most outline with
    components = list(components)
    while True:
        small = [component for component in components if is_small(component)]
        if not small:
            return components
        smallest = min(small, key=share)
        index = components.index(smallest)
        boundary = _shared_outline(part_id, [c.part_ids for c in components])[index]
        boundary[index] = 0
        components.pop(index)
        if boundary.max() == 0:
            warnings.append(
                f"part '{smallest.name}' covers {share(smallest):.2%} of the foreground and touches no "
                "other part: dropped"
            )
            continue
        neighbour = components[int(np.argmax(np.delete(boundary, index)))]
        warnings.append(
            f"part '{smallest.name}' covers {share(smallest):.2%} of the foreground: merged into its "
            f"neighbour '{neighbour.name}'"
        )
        neighbour.part_ids = sorted(neighbour.part_ids + smallest.part_ids)
        neighbour.merged_names += [smallest.name, *smallest.merged_names]


def _shared_outline(part_id: np.ndarray, members: list[list[int]]) -> np.ndarray:
    """(K, K) counts of 4-adjacent pixel pairs between components, summed over views."""
    largest = max([int(part_id.max())] + [part for parts in members for part in parts])
    lookup = np.full(largest + 2, -1, dtype=np.int64)  # part id -> component; the last entry serves id -1
    for component, parts in enumerate(members):
        lookup[parts] = component
    labels = lookup[part_id]  # (V, H, W), background part id -1 reads lookup[-1] = -1
    count = len(members)
    outline = np.zeros((count, count), dtype=np.int64)
    for a, b in ((labels[:, :, :-1], labels[:, :, 1:]), (labels[:, :-1, :], labels[:, 1:, :])):
        touching = (a >= 0) & (b >= 0) & (a != b)
        pairs = np.bincount(a[touching] * count + b[touching], minlength=count * count)
        outline += pairs.reshape(count, count)  # (K*K,) -> (K, K)
    return outline + outline.T
