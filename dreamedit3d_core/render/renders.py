"""What the render stage produces: per-view images and passes, the camera table, a preview sheet."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dreamedit3d_core.geometry.cameras import CameraSet


@dataclass
class Renders:
    """V views of one asset, pixel (u, v) with the origin at the top-left (cameras.py conventions)."""

    rgba: np.ndarray  # (V, H, W, 4) uint8 sRGB, straight (not premultiplied) alpha, transparent background
    rgb_white: np.ndarray  # (V, H, W, 3) uint8 sRGB composited over RenderConfig.background (white)
    depth: np.ndarray  # (V, H, W) float32 planar depth along the viewing axis, 0.0 on background
    normals: np.ndarray  # (V, H, W, 3) float32 world-space unit normals of the visible side, 0 on background
    part_id: np.ndarray  # (V, H, W) int32 part ids of the ingested asset, -1 on background
    # (V, H, W, 3) uint8 sRGB: the surface's own colour (base colour x texture x vertex colour) before any
    # light, white on background; the colour render divided by it is the lighting
    albedo: np.ndarray
    stats: dict[str, float] = field(default_factory=dict)  # timings (s), peak memory (MB)

    @property
    def num_views(self) -> int:
        return int(self.rgba.shape[0])

    @property
    def image_size(self) -> int:
        return int(self.rgba.shape[1])

    @property
    def foreground(self) -> np.ndarray:
        """(V, H, W) bool: pixels whose centre ray hits the asset."""
        return self.part_id >= 0


def camera_table(cameras: CameraSet) -> dict[str, list]:
    """One row per view; `mvdream_camera` is the 16-number condition MVDream's get_camera builds."""
    vectors = cameras.mvdream_vectors()
    return {
        "view": list(range(cameras.num_views)),
        "azimuth": [float(a) for a in cameras.azimuths],
        "elevation": [float(e) for e in cameras.elevations],
        "cam2world": [m.tolist() for m in np.asarray(cameras.cam2world, dtype=np.float64)],
        "K": [k.tolist() for k in np.asarray(cameras.K, dtype=np.float64)],
        "fov_deg": [float(cameras.fov_deg)] * cameras.num_views,
        "image_size": [int(cameras.image_size)] * cameras.num_views,
        "mvdream_camera": [[float(x) for x in v] for v in vectors],
    }


def _palette(count: int) -> np.ndarray:
    """(count, 3) uint8 distinct colours (golden-ratio hues)."""
    hues = (np.arange(count) * 0.618033988749895) % 1.0
    k = (np.array([5.0, 3.0, 1.0]) + hues[:, None] * 6.0) % 6.0  # HSV -> RGB with s=0.75, v=0.95
    rgb = 0.95 - 0.95 * 0.75 * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    return np.round(rgb * 255.0).astype(np.uint8)


def contact_sheet(renders: Renders) -> np.ndarray:
    """(4H, V*W, 3) uint8 preview: rows are colour (over the background), depth, normals, part ids."""
    foreground = renders.foreground
    depth = renders.depth
    near, far = (depth[foreground].min(), depth[foreground].max()) if foreground.any() else (0.0, 1.0)
    shade = 1.0 - 0.8 * (depth - near) / max(far - near, 1e-6)  # near bright, far dark
    depth_rgb = np.where(foreground[..., None], np.round(shade * 255.0)[..., None], 0).repeat(3, axis=-1)
    normal_rgb = np.where(foreground[..., None], np.round((renders.normals + 1.0) * 127.5), 0)
    palette = _palette(max(int(renders.part_id.max()) + 1, 1))
    id_rgb = np.where(foreground[..., None], palette[np.maximum(renders.part_id, 0)], 0)
    rows = [renders.rgb_white, depth_rgb, normal_rgb, id_rgb]  # each (V, H, W, 3)
    # (V, H, W, 3) -> (H, V*W, 3): views side by side
    strips = [np.concatenate(list(np.clip(row, 0, 255).astype(np.uint8)), axis=1) for row in rows]
    return np.concatenate(strips, axis=0)
