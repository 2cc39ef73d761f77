"""Ingest and render benchmark over the shared good assets and the demo chair.

    .venv/bin/python benchmarks/bench_render.py [--image-size 256] [--samples 32] [--repeats 1]

Per asset: ingest seconds (read, check, normalise, write the asset folder); render stage seconds (the whole
`render_views` call: starting Python + bpy, building the scene, 4 colour views with Cycles + OpenImageDenoise
and their depth/normal/id passes), also as CPU seconds; seconds per view (colour render + passes render);
passes-only seconds per view (1 sample, no denoiser); peak memory of the Blender child process.
Targets: render stage under 6 s per asset, passes-only under 0.1 s a view.
Writes the table to benchmarks/results/render.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from dreamedit3d_core.ingest import SUPPORTED_SUFFIXES, ingest_asset, make_example_asset
from dreamedit3d_core.render import RenderConfig, render_views

ROOT = Path(__file__).resolve().parents[1]
GOOD = ROOT / ".." / "shared" / "assets" / "good"
COLUMNS = ["asset", "parts", "faces", "ingest s", "render stage s", "render stage CPU s", "scene build s",
           "s / view", "passes-only s / view", "peak RSS MB"]  # fmt: skip


def bench(source: Path, work: Path, config: RenderConfig, repeats: int) -> list[str]:
    start = time.perf_counter()
    asset = ingest_asset(source)
    asset_dir = asset.write(work / source.stem)
    ingest_s = time.perf_counter() - start
    cameras = config.camera_set()
    full = min((render_views(asset_dir, cameras, config) for _ in range(repeats)), key=lambda r: r.stats["wall_s"])
    passes_config = config.model_copy(update={"passes_only": True})
    passes = min(
        (render_views(asset_dir, cameras, passes_config) for _ in range(repeats)),
        key=lambda r: r.stats["passes_s_per_view"],
    )
    stats = full.stats
    return [
        source.name,
        str(len(asset.parts)),
        str(sum(len(p.faces) for p in asset.parts)),
        f"{ingest_s:.3f}",
        f"{stats['wall_s']:.2f}",
        f"{stats['cpu_s']:.2f}",
        f"{stats['build_s']:.2f}",
        f"{stats['colour_s_per_view'] + stats['passes_s_per_view']:.2f}",
        f"{passes.stats['passes_s_per_view']:.3f}",
        f"{max(stats['peak_rss_mb'], passes.stats['peak_rss_mb']):.0f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1, help="keep the fastest of this many runs")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "render.md")
    args = parser.parse_args()
    if not GOOD.is_dir():
        raise FileNotFoundError(f"shared assets missing: {GOOD.resolve()}")
    config = RenderConfig(image_size=args.image_size, samples=args.samples, device="cpu")
    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-render-") as tmp:
        work = Path(tmp)
        sources = sorted(p for p in GOOD.iterdir() if p.suffix.lower() in SUPPORTED_SUFFIXES)
        sources.append(make_example_asset(work / "example_chair.glb"))
        for source in sources:
            rows.append(bench(source, work, config, args.repeats))
            print(" | ".join(rows[-1]), flush=True)
    load_after = os.getloadavg()[0]

    lines = [
        "# Render benchmark",
        "",
        f"{len(config.azimuths)} views at {config.image_size} px, Cycles {config.samples} samples + OpenImageDenoise "
        f"(prefilter {config.denoise_prefilter}), max bounces {config.max_bounces}, device cpu; "
        f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"load average {load_before:.1f} before, {load_after:.1f} after; best of {args.repeats}.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
        "Targets: render stage under 6 s per asset; passes-only under 0.1 s a view. Wall times depend on what",
        "else runs on the machine; CPU s (all threads of the Blender process) do much less: on an idle machine",
        "the wall time is about CPU s / number of cores.",
    ]
    table = "\n".join(lines) + "\n"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(table)
    print()
    print(table)


if __name__ == "__main__":
    main()
