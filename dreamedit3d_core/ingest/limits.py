"""How big an asset may be: limits the readers check before they allocate, so no file can make ingest slow or
large by what it claims (a count far beyond its data, a chain of thousands of nodes, a small PNG that decodes
to gigabytes).

Every limit is a setting (`ingest.limits.*`) with a default a real studio asset does not reach; a file past
one is refused with an AssetError naming the limit, so raising it is one line of config. Limits are
execution-only settings: an asset that passes them is ingested the same whatever they are, so changing them
recomputes nothing.
"""

from __future__ import annotations

import io
import json
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from dreamedit3d_core.ingest.asset import AssetError


class IngestLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_file_bytes: int = Field(2 * 2**30, gt=0)  # each file the reader opens (main file, buffers, libraries, images)
    max_json_bytes: int = Field(256 * 2**20, gt=0)  # a glTF's JSON (a .gltf file, or a GLB's JSON chunk)
    max_json_depth: int = Field(64, gt=0)  # nesting of arrays and objects in that JSON (real files: under 12)
    max_nodes: int = Field(100_000, gt=0)  # glTF scene nodes
    max_node_depth: int = Field(256, gt=0)  # parents above the deepest glTF node
    max_vertices: int = Field(10_000_000, gt=0)  # over the whole asset, instances counted
    max_faces: int = Field(10_000_000, gt=0)  # triangles over the whole asset, instances counted
    max_textures: int = Field(256, gt=0)  # images the asset's used materials name
    max_texture_pixels: int = Field(8192 * 8192, gt=0)  # width x height of one texture, read from its header
    max_ply_rows: int = Field(20_000_000, gt=0)  # rows of all elements of a PLY together, read from its header
    max_ply_header_bytes: int = Field(2**20, gt=0)  # a PLY's header up to 'end_header' (real files: a few KB)
    max_parts: int = Field(10_000, gt=0)  # parts of the asset (OBJ objects or groups with faces, glTF meshes placed)
    max_material_libraries: int = Field(256, gt=0)  # OBJ `mtllib` references (each name of each line counts)
    max_materials: int = Field(10_000, gt=0)  # materials an OBJ's libraries define, all libraries together
    max_texture_references: int = Field(10_000, gt=0)  # `map_Kd` statements in an OBJ's libraries
    max_memory_bytes: int = Field(8 * 2**30, ge=2**30)  # address space of the process reading the file (RLIMIT_AS)


def check_count(limits: IngestLimits, name: str, count: int, where: str, what: str) -> None:
    """Refuse `count` above the limit `name` ("max_faces"), naming the file and what was counted."""
    limit = getattr(limits, name)
    if count > limit:
        raise AssetError(
            f"{where}: {count:,} {what}, more than the limit ingest.limits.{name}={limit:,} "
            "(raise it in the config if the asset is meant to be this large)"
        )


def load_json(text: bytes, limits: IngestLimits, where: str, what: str = "JSON document") -> object:
    """JSON text within the size and nesting limits; anything else (invalid, too large, too deep) an AssetError
    ("{where}: not a {what} (invalid JSON: ...)" when it does not parse)."""
    check_count(limits, "max_json_bytes", len(text), where, "bytes of JSON")
    try:
        document = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise AssetError(f"{where}: not a {what} (invalid JSON: {error})") from None
    except RecursionError:  # the parser stops at Python's recursion limit, long before memory runs short
        document, depth = None, sys.getrecursionlimit()
    else:
        depth = nesting_depth(document)
    if depth > limits.max_json_depth:
        raise AssetError(
            f"{where}: JSON nested {depth}{'+' if document is None else ''} levels deep, more than the limit "
            f"ingest.limits.max_json_depth={limits.max_json_depth}"
        )
    return document


def nesting_depth(document: object) -> int:
    """How deeply arrays and objects nest in a parsed JSON document (a scalar is 0), without recursion."""
    deepest, stack = 0, [(document, 1)]
    while stack:
        value, level = stack.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


@contextmanager
def pillow_pixel_limit(limits: IngestLimits) -> Iterator[None]:
    """Pillow's own decompression-bomb guard set to our texture limit (checked before decoding) while
    reading, so raising `max_texture_pixels` past Pillow's default is enough for a larger texture to load."""
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max(previous or 0, limits.max_texture_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def image_size(blob: bytes, where: str) -> tuple[int, int]:
    """(width, height) from an image's header, without decoding it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS, previous = None, Image.MAX_IMAGE_PIXELS  # the header only: no bomb to fear
            try:
                with Image.open(io.BytesIO(blob)) as image:
                    return image.size
            finally:
                Image.MAX_IMAGE_PIXELS = previous
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise AssetError(f"{where}: not a readable image ({type(error).__name__}: {error})") from None


def check_texture(limits: IngestLimits, count: int, size: tuple[int, int], where: str) -> None:
    """Refuse the `count`-th used texture when there are too many, or when its (width, height) from the
    header is larger than `max_texture_pixels`, before it is decoded."""
    check_count(limits, "max_textures", count, where, "textures")
    width, height = size
    if width * height > limits.max_texture_pixels:
        raise AssetError(
            f"{where} is {width} x {height} pixels, more than the limit "
            f"ingest.limits.max_texture_pixels={limits.max_texture_pixels:,} (checked before decoding)"
        )


def decode_texture(blob: bytes, limits: IngestLimits, where: str) -> np.ndarray:
    """An image as (H, W, 3 or 4) uint8; call `check_textures` on it first."""
    try:
        with pillow_pixel_limit(limits), Image.open(io.BytesIO(blob)) as image:
            return np.asarray(image.convert("RGBA" if "A" in image.getbands() else "RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise AssetError(f"{where}: cannot decode the image ({type(error).__name__}: {error})") from None
