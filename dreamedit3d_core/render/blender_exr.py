"""The scene script's reading of Blender's renders: a multilayer OpenEXR file parsed with numpy, its passes picked
by name and its colour turned into 8-bit sRGB images.

Part of the scene script (blender_scene.py imports it from its own folder): numpy and the standard library only, so
it also runs inside a standalone Blender 4.5.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

_EXR_BYTES = {0: 4, 1: 2, 2: 4}  # UINT, HALF, FLOAT
_EXR_DTYPES = {0: "<u4", 1: "<f2", 2: "<f4"}

def read_exr(path: Path) -> dict[str, np.ndarray]:
    """Channels of an uncompressed scanline OpenEXR file as (H, W) float32 arrays, row 0 at the top."""
    data = path.read_bytes()
    magic, version = struct.unpack_from("<ii", data, 0)
    if magic != 20000630 or version & 0x1A00:  # tiled (0x200), deep (0x800), multi-part (0x1000)
        raise ValueError(f"{path}: not a single-part scanline OpenEXR file")
    pos, header = 8, {}
    while data[pos] != 0:
        name_end = data.index(b"\0", pos)
        type_end = data.index(b"\0", name_end + 1)
        (size,) = struct.unpack_from("<i", data, type_end + 1)
        header[data[pos:name_end].decode()] = data[type_end + 5 : type_end + 5 + size]
        pos = type_end + 5 + size
    pos += 1
    if header["compression"] != b"\0":
        raise ValueError(f"{path}: compressed OpenEXR (write it with codec NONE)")
    channels, chlist = [], header["channels"]
    offset = 0
    while chlist[offset] != 0:
        name_end = chlist.index(b"\0", offset)
        (pixel_type,) = struct.unpack_from("<i", chlist, name_end + 1)
        channels.append((chlist[offset:name_end].decode(), pixel_type))
        offset = name_end + 1 + 16
    xmin, ymin, xmax, ymax = struct.unpack("<iiii", header["dataWindow"])
    width, height = xmax - xmin + 1, ymax - ymin + 1
    # one scanline per chunk: y, byte count, then each channel's row in channel-list order
    row = np.dtype([("y", "<i4"), ("size", "<i4")] + [(n, _EXR_DTYPES[t], (width,)) for n, t in channels])
    offsets = np.frombuffer(data, "<u8", height, pos)
    if not np.array_equal(np.diff(offsets), np.full(height - 1, row.itemsize)):
        raise ValueError(f"{path}: scanlines are not stored in order")
    table = np.frombuffer(data, row, height, int(offsets[0]))
    order = np.argsort(table["y"])
    return {name: table[name][order].astype(np.float32) for name, _ in channels}


def pass_channels(exr: dict[str, np.ndarray], layer: str, names: str) -> np.ndarray:
    """The channels `names` (e.g. "XYZ") of the pass `layer` (e.g. "Normal") of a read_exr result, as (H, W, C)."""
    found = [k for k in exr if k.endswith(f".{layer}.{names[0]}")]
    if not found:
        raise KeyError(f"pass {layer!r} missing from the render (channels: {sorted(exr)})")
    prefix = found[0][: -len(names[0])]
    return np.stack([exr[prefix + c] for c in names], axis=-1)  # (H, W, C)


def to_srgb(linear: np.ndarray) -> np.ndarray:
    """Linear values, clipped to [0, 1], sRGB-encoded."""
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(linear, 1.0 / 2.4) - 0.055)


def _to_linear(srgb: np.ndarray) -> np.ndarray:
    return np.where(srgb <= 0.04045, srgb / 12.92, np.power((srgb + 0.055) / 1.055, 2.4))


def colour_images(combined: np.ndarray, background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Premultiplied linear RGBA (H, W, 4) -> straight-alpha sRGB uint8 RGBA and RGB over `background`."""
    alpha = np.clip(combined[..., 3:], 0.0, 1.0)
    straight = np.where(alpha > 0, combined[..., :3] / np.maximum(alpha, 1e-6), 0.0)
    over = combined[..., :3] + (1.0 - alpha) * _to_linear(background)
    rgba = np.concatenate([to_srgb(straight), alpha], axis=-1)
    return (np.round(rgba * 255.0).astype(np.uint8), np.round(to_srgb(over) * 255.0).astype(np.uint8))
