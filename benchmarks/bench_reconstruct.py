"""Round trip: reconstruct(render(asset)) against the asset, for every asset in ../shared/assets/good.

For each asset: ingest, render the 4 input views (MVDream orbit: elevation 15, azimuths 0/90/180/270,
256 px, Blender Cycles) and 8 novel views the reconstruction never sees (azimuths 45 + k*90 at elevations
0 and 30); reconstruct from the RGBA input views; re-render the reconstruction unlit (its texture holds
the input views' shading already) with the project's ray caster; score

  IoU in / IoU novel   silhouette IoU in the input / novel views (Blender alpha > 0.5 vs coverage >= 0.5)
  PSNR novel           dB on white over the union of both silhouettes (foreground only; misses count)
  PSNR overlap         the same over the intersection of the silhouettes: the texture alone
  Chamfer, F@0.02      surface samples against the ingested source mesh (unit-sphere frame)
  seconds              reconstruction wall time on this machine

A second table scores the plain visual hull (the same pipeline without the underside cut) on the same renders.

    .venv/bin/python benchmarks/bench_reconstruct.py [--resolution 128] [--method visual_hull] [--cache DIR]

--cache keeps the Blender renders in DIR (they take ~40 s an asset on 2 cores) for repeated runs.
Writes benchmarks/results/reconstruct.md. Exits 1 when the render stage is not available.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import trimesh

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dreamedit3d_core.evaluate import per_view_iou, surface_distance  # noqa: E402
from dreamedit3d_core.evaluate.image_metrics import on_white  # noqa: E402
from dreamedit3d_core.geometry.cameras import CameraSet, orbit_cameras  # noqa: E402
from dreamedit3d_core.reconstruct import ReconstructConfig, reconstruct, render_meshes  # noqa: E402

ASSETS = ROOT.parent / "shared" / "assets" / "good"
NAMES = ["Duck.glb", "fuze.obj", "nested.glb", "two_objects.obj", "TestScene.gltf"]
BASELINE_IOU = {
    "Duck.glb": 0.870,
    "fuze.obj": 0.924,
    "nested.glb": 0.960,
    "two_objects.obj": 0.960,
    "TestScene.gltf": 0.685,
}


def novel_cameras(image_size: int) -> CameraSet:
    azimuths = [45.0 + 90.0 * k for k in range(4)] * 2
    elevations = [0.0] * 4 + [30.0] * 4
    return orbit_cameras(azimuths, elevations, fov_deg=40.0, image_size=image_size)


def render_asset(name: str, cache: Path | None) -> dict[str, np.ndarray]:
    """Input and novel Blender renders of one asset plus its normalised mesh (cached if asked)."""
    cached = cache / f"{name}.npz" if cache else None
    if cached is not None and cached.is_file():
        with np.load(cached) as arrays:
            return dict(arrays)
    import tempfile

    from dreamedit3d_core.ingest import ingest_asset
    from dreamedit3d_core.render import RenderConfig, render_views

    config = RenderConfig()
    asset = ingest_asset(ASSETS / name)
    with tempfile.TemporaryDirectory(prefix="bench-reconstruct-") as tmp:
        folder = asset.write(Path(tmp) / "asset")
        inputs = render_views(folder, config.camera_set(), config)
        novel = render_views(folder, novel_cameras(config.image_size), config)
    vertices, faces, _ = asset.mesh_arrays()
    arrays = {"rgba": inputs.rgba, "nrgba": novel.rgba, "verts": vertices, "faces": faces}
    if cached is not None:
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(cached, **arrays)
    return arrays


def evaluate_asset(name: str, arrays: dict[str, np.ndarray], config: ReconstructConfig) -> dict[str, float]:
    from dreamedit3d_core.render import RenderConfig

    render_config = RenderConfig()
    cameras = render_config.camera_set()
    novel = novel_cameras(render_config.image_size)
    start = time.perf_counter()
    mesh = reconstruct(arrays["rgba"], cameras, config)
    seconds = time.perf_counter() - start
    surface = mesh.trimesh_world
    source = trimesh.Trimesh(arrays["verts"], arrays["faces"], process=False)

    seen = render_meshes(surface, cameras)
    unseen = render_meshes(surface, novel)
    iou_in = per_view_iou(seen.mask, arrays["rgba"][..., 3] > 127)
    source_novel = arrays["nrgba"][..., 3] > 127
    iou_novel = per_view_iou(unseen.mask, source_novel)
    union = unseen.mask | source_novel
    difference = (unseen.rgb.astype(np.float64) - on_white(arrays["nrgba"]).astype(np.float64)) / 255.0
    psnr = float(10 * np.log10(1.0 / np.mean(difference[union] ** 2)))
    both = unseen.mask & source_novel  # texture quality alone, where both silhouettes agree
    psnr_overlap = float(10 * np.log10(1.0 / np.mean(difference[both] ** 2)))
    distance = surface_distance(surface, source, threshold=0.02, samples=50_000)
    return {
        "iou_in": float(iou_in.mean()),
        "iou_novel": float(iou_novel.mean()),
        "psnr_novel": psnr,
        "psnr_overlap": psnr_overlap,
        "chamfer": distance.chamfer,
        "f_score": distance.f_score,
        "seconds": seconds,
        "faces": int(len(mesh.faces)),
        "seen": float(mesh.info.get("texture_seen_fraction", float("nan"))),
    }


def table(rows: dict[str, dict[str, float]], config: ReconstructConfig) -> str:
    lines = [
        f"# Reconstruction round trip ({config.method}, grid {config.grid_resolution}^3, "
        f"texture {config.texture.size} px)",
        "",
        "Blender (Cycles) renders of each ingested asset; 4 input views (elevation 15, azimuths 0/90/180/270, "
        "256 px) -> mesh; scored in 8 novel views (azimuths 45 + k*90 at elevations 0 and 30). PSNR: on white, "
        "over the union (novel) or the intersection (overlap) of the silhouettes. Chamfer: mean of both "
        "directions' mean nearest distance, 50k samples each. Times on this machine (2 shared CPU cores).",
        "",
        "| asset | IoU in | IoU novel (baseline) | PSNR novel dB | PSNR overlap dB | Chamfer | F@0.02 | faces "
        "| seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        lines.append(
            f"| {name} | {row['iou_in']:.3f} | {row['iou_novel']:.3f} ({BASELINE_IOU[name]:.3f}) | "
            f"{row['psnr_novel']:.2f} | {row['psnr_overlap']:.2f} | {row['chamfer']:.4f} | {row['f_score']:.3f} | "
            f"{row['faces']} | "
            f"{row['seconds']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="visual_hull", choices=["visual_hull", "lgm"])
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--texture-size", type=int, default=1024)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--assets", nargs="*", default=NAMES)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "reconstruct.md")
    args = parser.parse_args()
    try:
        import dreamedit3d_core.ingest  # noqa: F401
        import dreamedit3d_core.render  # noqa: F401
    except ImportError as error:
        print(f"the render stage is not available yet ({error}): nothing to benchmark")
        return 1
    overrides: dict = {
        "method": args.method,
        "grid_resolution": args.resolution,
        "texture": {"size": args.texture_size},
    }
    config = ReconstructConfig.model_validate(overrides)
    # the same pipeline without the underside cut: the plain visual hull, scored on the same renders
    plain = config.model_copy(update={"cut_unseen_underside": False})
    rows, plain_rows = {}, {}
    for name in args.assets:
        arrays = render_asset(name, args.cache)
        rows[name] = evaluate_asset(name, arrays, config)
        print(name, {key: round(value, 4) for key, value in rows[name].items()}, flush=True)
        if args.method == "visual_hull":
            plain_rows[name] = evaluate_asset(name, arrays, plain)
    text = table(rows, config)
    if plain_rows:
        reference = table(plain_rows, plain).replace("# Reconstruction round trip", "## Reference: plain visual hull")
        text += "\n" + reference.split("\n\n", 1)[0] + " (no underside cut)\n\n" + reference.split("\n\n", 2)[2]
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
