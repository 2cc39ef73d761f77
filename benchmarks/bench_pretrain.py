"""Pretraining throughput of the `world` preset's model (MultiViewDiffusionConfig.world_small).

    python benchmarks/bench_pretrain.py                       # CPU, small batches
    python benchmarks/bench_pretrain.py --device cuda         # GPU, batches up to 256 objects

Synthetic data (random 64 px objects, fixed captions) through `pretrain()` exactly as a real run: for each
batch size, objects per second, steps per second and peak memory, after warm-up steps. Prints a table and
writes it to benchmarks/results/pretrain.md, in a section per device (other sections are kept).
"""

from __future__ import annotations

import argparse
import platform
import re
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dreamedit3d_core.geometry.cameras import mvdream_orbit  # noqa: E402
from dreamedit3d_core.mvdiffusion import MultiViewDiffusion  # noqa: E402
from dreamedit3d_core.mvdiffusion.architecture import MultiViewDiffusionConfig  # noqa: E402
from dreamedit3d_core.pretrain import PretrainConfig, PretrainData, pretrain  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "pretrain.md"


def measure(device: str, batch: int, steps: int, warmup: int) -> dict[str, float]:
    config = MultiViewDiffusionConfig.world_small()
    model = MultiViewDiffusion.build_random(config, device=device)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (max(2 * batch, 64), 4, 64, 64, 3), dtype=np.uint8)
    cameras = mvdream_orbit(4, image_size=64).mvdream_vectors().astype(np.float32)
    data = PretrainData(images, [["a photo of a cube in red and a sphere in blue"]] * len(images), cameras)
    settings = PretrainConfig(steps=warmup + steps, batch_objects=batch, warmup_steps=1, log_every=10**6)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    pretrain(model, data, settings, stop_after=warmup)  # warm-up: kernels chosen, allocator filled
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    pretrain(model, data, settings.model_copy(update={"seed": 1}), stop_after=steps)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None
    return {"batch": batch, "s_per_step": seconds, "objects_per_s": batch / seconds, "peak_gib": peak}


def write_results(table: str, section: str, path: Path = RESULTS) -> str:
    text = path.read_text() if path.is_file() else "# Pretraining throughput (world_small)\n"
    block = f"## {section}\n\n{table}\n"
    pattern = re.compile(rf"^## {re.escape(section)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(block, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip("\n") + "\n")
    return block


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batches", type=int, nargs="+", default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--results", type=Path, default=RESULTS.parent, help=f"folder for {RESULTS.name}")
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    batches = args.batches or ([32, 64, 128, 256] if cuda else [2, 8])
    steps = args.steps or (30 if cuda else 3)
    rows = [measure(args.device, b, steps, warmup=5 if cuda else 1) for b in batches]
    name = torch.cuda.get_device_name() if cuda else f"{platform.processor() or 'CPU'}, {torch.get_num_threads()} threads"
    lines = ["| objects per step | s per step | objects per s | peak GPU memory (GiB) |", "| --- | --- | --- | --- |"]
    for r in rows:
        peak = "-" if r["peak_gib"] is None else f"{r['peak_gib']:.2f}"
        lines.append(f"| {r['batch']} | {r['s_per_step']:.4f} | {r['objects_per_s']:.1f} | {peak} |")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    table = "\n".join(lines) + f"\n\n{steps} timed steps after warm-up; bf16 autocast on CUDA; peak RSS {rss:.1f} GiB."
    print(write_results(table, f"{args.device} ({name}), torch {torch.__version__}", args.results / RESULTS.name))


if __name__ == "__main__":
    main()
