"""The mask stage: an asset's renders in, its components (masks, tokens, initializer words) out.

Component k is token `<asset{k}>` and mask k in every view, whichever way the masks were made:
from part ids (exact), the whole foreground, or Segment Anything prompted in 3D.
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dreamedit3d_core.geometry.cameras import CameraSet
from dreamedit3d_core.masks.colours import component_colours
from dreamedit3d_core.masks.config import MaskConfig
from dreamedit3d_core.masks.parts import PartsTable, part_components, read_parts_table
from dreamedit3d_core.masks.prompts import ViewPrompt, gather_view_prompts
from dreamedit3d_core.masks.words import initializer_word

if TYPE_CHECKING:
    from segment_anything import SamPredictor

TOKEN_FORMAT = "<asset{}>"


@dataclass(frozen=True)
class Components:
    """One row of `table` and one mask per component; row k belongs to token `<asset{k}>`."""

    masks: np.ndarray  # (K, V, H, W) bool; each pixel in at most one mask unless the config allowed overlap
    table: list[dict[str, Any]]  # component, token, name, initializer_word, source, part_ids, coverage, colour, ...
    warnings: list[str]
    statistics: dict[str, Any]  # flat scalars for the ledger

    @property
    def tokens(self) -> list[str]:
        return [row["token"] for row in self.table]

    @property
    def coverage(self) -> np.ndarray:
        """(K, V) share of each view's pixels in each component's mask."""
        return np.array([row["coverage"] for row in self.table], dtype=np.float64)

    def table_columns(self) -> dict[str, list[Any]]:
        """The table as a dict of lists (one list per column)."""
        return {key: [row[key] for row in self.table] for key in self.table[0]}


@dataclass
class _Draft:
    """A component before the quality gates: its name, mask, where it came from, words to name it."""

    name: str
    mask: np.ndarray  # (V, H, W) bool
    source: str
    part_ids: list[int]
    word_candidates: list[str]
    prompts: list[ViewPrompt | None] | None = None  # SAM only, per view
    scores: np.ndarray | None = None  # (V,) SAM's predicted IoU, SAM only


def build_components(
    rgb: np.ndarray,
    depth: np.ndarray,
    part_id: np.ndarray,
    cameras: CameraSet,
    parts_table: Mapping[str, Sequence] | Sequence[Mapping],
    config: MaskConfig | None = None,
    *,
    sam_predictor: SamPredictor | None = None,
    vocabulary: Container[str] | None = None,
    albedo: np.ndarray | None = None,
) -> Components:
    """Components of one asset from its renders.

    rgb (V, H, W, 3) uint8 (shown to SAM: the white-background render), depth (V, H, W) planar with
    background 0, part_id (V, H, W) int with background -1, the renders' cameras and parts table (dict of
    lists with 'part_id', 'name' and optionally 'material'). Foreground is part_id >= 0. SAM mode uses
    `sam_predictor` when given (a segment_anything.SamPredictor), else loads config.sam.checkpoint.
    `vocabulary` restricts initializer words (e.g. to a tokenizer's single-token words). With the albedo
    renders (V, H, W, 3) uint8, each component's colour is named (`colours.py`; else its `colour` is None).
    """
    config = config or MaskConfig()
    table = read_parts_table(parts_table)
    _check_inputs(rgb, depth, part_id, cameras, table)
    foreground = part_id >= 0
    mode, warnings = _resolve_mode(config, table)

    if mode == "parts":
        drafts, part_warnings = _part_drafts(part_id, table, config)
        warnings += part_warnings
    elif mode == "whole":
        drafts = [_whole_draft(foreground, table)]
    else:
        drafts, sam_warnings = _sam_drafts(rgb, depth, part_id, foreground, cameras, table, config, sam_predictor)
        warnings += sam_warnings

    masks = np.stack([draft.mask for draft in drafts])  # (K, V, H, W)
    overlap_pixels = int((masks.sum(axis=0) > 1).sum())
    if overlap_pixels and not config.allow_overlap:
        _resolve_overlaps(masks, drafts, config.sam.overlap_rule)
        warnings.append(f"{overlap_pixels} pixels claimed by several components were given to one each")
    for draft, mask in zip(drafts, masks, strict=True):
        if not mask.any():
            raise ValueError(f"component '{draft.name}' is visible in no view (its mask is empty everywhere)")

    table_rows, statistics = _summarise(masks, foreground, drafts, config, vocabulary)
    colours = component_colours(albedo, masks) if albedo is not None else [None] * len(table_rows)
    for row, colour in zip(table_rows, colours, strict=True):
        row["colour"] = colour
    statistics.update(mode=mode, overlap_pixels=overlap_pixels, num_warnings=len(warnings))
    return Components(masks=masks, table=table_rows, warnings=warnings, statistics=statistics)


def _check_inputs(
    rgb: np.ndarray, depth: np.ndarray, part_id: np.ndarray, cameras: CameraSet, table: PartsTable
) -> None:
    if depth.ndim != 3:
        raise ValueError(f"depth must be (V, H, W), got shape {depth.shape}")
    if part_id.shape != depth.shape or not np.issubdtype(part_id.dtype, np.integer):
        raise ValueError(
            f"part_id must be an integer array shaped like depth {depth.shape}, got {part_id.shape} {part_id.dtype}"
        )
    if rgb.shape != (*depth.shape, 3) or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be uint8 {(*depth.shape, 3)}, got {rgb.dtype} {rgb.shape}")
    num_views, height, width = depth.shape
    if cameras.num_views != num_views or (height, width) != (cameras.image_size, cameras.image_size):
        raise ValueError(
            f"cameras ({cameras.num_views} views of {cameras.image_size} px) do not match the renders "
            f"({num_views} views of {height}x{width})"
        )
    unknown = sorted(set(np.unique(part_id).tolist()) - set(table.ids) - {-1})
    if unknown:
        raise ValueError(f"part ids {unknown} in the renders are not in the parts table {table.ids}")
    if not (part_id >= 0).any():
        raise ValueError("the renders show no foreground: every part_id is -1")


def _resolve_mode(config: MaskConfig, table: PartsTable) -> tuple[str, list[str]]:
    has_prompts = bool(config.sam.prompts or config.sam.view_prompts)
    mode = config.mode
    if mode == "auto":
        mode = "parts" if len(table) > 1 else "sam" if has_prompts else "whole"
    warnings = []
    if has_prompts and mode != "sam":
        warnings.append(f"SAM prompts ignored in mask mode '{mode}' (set mode: sam to use them)")
    if config.groups and mode != "parts":
        warnings.append(f"part groups ignored in mask mode '{mode}'")
    return mode, warnings


def _part_drafts(part_id: np.ndarray, table: PartsTable, config: MaskConfig) -> tuple[list[_Draft], list[str]]:
    components, warnings = part_components(part_id, table, config)
    drafts = []
    for component in components:
        names = [table.name_of(part) for part in component.part_ids]
        materials = [table.material_of(part) for part in component.part_ids]
        # A 'rest' of unrelated small parts is named by the class word, not by whichever part came first.
        is_rest = component.name == config.rest_name and component.name not in config.groups
        drafts.append(
            _Draft(
                name=component.name,
                mask=np.isin(part_id, component.part_ids),
                source="parts: " + ", ".join(names),
                part_ids=list(component.part_ids),
                word_candidates=[] if is_rest else [component.name, *names, *materials],
            )
        )
    if not drafts:
        raise ValueError("no component left: every part was dropped (lower min_coverage or use mode 'whole')")
    return drafts, warnings


def _whole_draft(foreground: np.ndarray, table: PartsTable) -> _Draft:
    # With several parts no single name speaks for the object: only the class word then.
    candidates = [table.names[0], table.materials[0]] if len(table) == 1 else []
    return _Draft(
        name=table.names[0] if len(table) == 1 else "object",
        mask=foreground.copy(),
        source="whole: " + ", ".join(table.names),
        part_ids=list(table.ids),
        word_candidates=candidates,
    )


def _sam_drafts(
    rgb: np.ndarray,
    depth: np.ndarray,
    part_id: np.ndarray,
    foreground: np.ndarray,
    cameras: CameraSet,
    table: PartsTable,
    config: MaskConfig,
    sam_predictor: SamPredictor | None,
) -> tuple[list[_Draft], list[str]]:
    from dreamedit3d_core.masks.sam import load_sam_predictor, predict_masks

    names, prompts, warnings = gather_view_prompts(config.sam, depth, part_id, cameras, table)
    if sam_predictor is None:
        if config.sam.checkpoint is None:
            raise ValueError("mask mode 'sam' needs sam.checkpoint (a local path) or a sam_predictor")
        sam_predictor = load_sam_predictor(config.sam.checkpoint, config.sam.model_type, config.sam.device)
    masks, scores = predict_masks(sam_predictor, rgb, prompts, foreground)
    drafts = []
    for k, name in enumerate(names):
        sources = [
            str(list(entry)) if not isinstance(entry, str) else f"part {entry}"
            for entry in config.sam.prompts.get(name, [])
        ]
        sources += [f"view {view} prompt" for view in config.sam.view_prompts.get(name, {})]
        drafts.append(
            _Draft(
                name=name,
                mask=masks[k],
                source="sam: " + "; ".join(sources),
                part_ids=[],
                word_candidates=[name],
                prompts=prompts[k],
                scores=scores[k],
            )
        )
    return drafts, warnings


def _resolve_overlaps(masks: np.ndarray, drafts: list[_Draft], rule: str) -> None:
    """Give every pixel several masks claim to one of them, in place: nearest prompt or best SAM score."""
    num_components, num_views = masks.shape[:2]
    for view in range(num_views):
        contested = masks[:, view].sum(axis=0) > 1  # (H, W)
        if not contested.any():
            continue
        rows, cols = np.nonzero(contested)
        centres = np.stack([cols + 0.5, rows + 0.5], axis=1)  # (P, 2) (u, v)
        cost = np.full((num_components, len(rows)), np.inf)
        for k, draft in enumerate(drafts):
            claims = masks[k, view, rows, cols]
            prompt = draft.prompts[view] if draft.prompts is not None else None
            if rule == "score" or prompt is None or len(prompt.anchors) == 0:
                value = -draft.scores[view] if draft.scores is not None else 0.0
                cost[k, claims] = value
            else:
                distances = np.linalg.norm(centres[:, None, :] - prompt.anchors[None, :, :], axis=-1)  # (P, M)
                cost[k, claims] = distances.min(axis=1)[claims]
        winner = np.argmin(cost, axis=0)  # (P,)
        masks[:, view, rows, cols] = False
        masks[winner, view, rows, cols] = True


def _summarise(
    masks: np.ndarray,
    foreground: np.ndarray,
    drafts: list[_Draft],
    config: MaskConfig,
    vocabulary: Container[str] | None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    num_components, num_views, height, width = masks.shape
    foreground_pixels = int(foreground.sum())
    coverage = masks.reshape(num_components, num_views, height * width).mean(axis=2)  # (K, V, H*W) -> (K, V)
    component_share = masks.reshape(num_components, -1).sum(axis=1) / foreground_pixels  # (K, V*H*W) -> (K,)
    rows = [
        {
            "component": k,
            "token": TOKEN_FORMAT.format(k),
            "name": draft.name,
            "initializer_word": initializer_word(draft.word_candidates, config.class_word, vocabulary),
            "source": draft.source,
            "part_ids": draft.part_ids,
            "coverage": [float(value) for value in coverage[k]],
            "foreground_share": float(component_share[k]),
        }
        for k, draft in enumerate(drafts)
    ]
    statistics = {
        "num_components": num_components,
        "num_views": num_views,
        "foreground_share": foreground_pixels / foreground.size,
        "assigned_share": float((masks.any(axis=0) & foreground).sum()) / foreground_pixels,
        "min_component_share": float(component_share.min()),
        "empty_component_views": int((coverage == 0).sum()),  # (component, view) pairs with no pixel
    }
    return rows, statistics


def component_descriptions(table: list[dict[str, Any]], parts: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Which token is which: per component its token, name, the names of its parts (from the parts table's
    columns), initializer word, how its mask was made and its mean coverage of the views."""
    names = dict(zip(parts["part_id"], parts["name"], strict=True))
    return [
        {
            "token": row["token"],
            "name": row["name"],
            "parts": [str(names.get(part, part)) for part in row["part_ids"]],
            "initializer_word": row["initializer_word"],
            "colour": row.get("colour"),
            "source": row["source"],
            "coverage": float(np.mean(row["coverage"])),
        }
        for row in table
    ]
