"""Multi-view diffusion speed and memory.

    python benchmarks/bench_mvdiffusion.py                          # tiny preset on the CPU
    python benchmarks/bench_mvdiffusion.py --full --device cuda     # full-size random-init MVDream on a GPU

Measures seconds per denoising step (4 views, classifier-free guidance: one UNet call on 2 x 4 images),
seconds per training step (forward + backward of one 4-view object with the cross-attention recorder on,
as the personalisation stage runs it), peak memory, the SDPA vs stock-attention ratio of the denoising step,
and a whole 4-view DDIM sample. Prints a table and writes it to benchmarks/results/mvdiffusion.md, in a
section per preset and device (other sections are kept).
"""

from __future__ import annotations

import argparse
import platform
import re
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from dreamedit3d_core.geometry.cameras import mvdream_orbit
from dreamedit3d_core.mvdiffusion import (
    CrossAttentionRecorder,
    MultiViewDiffusion,
    MultiViewDiffusionConfig,
    PerformanceConfig,
    SampleConfig,
    sample_views,
)

RESULTS = Path(__file__).resolve().parent / "results" / "mvdiffusion.md"
PROMPT = "a photo of a duck wearing a red hat"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int = 1) -> float:
    """Median seconds of `fn` over `repeats` runs after `warmup` runs."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB (CUDA, this phase)"
    # Linux reports KiB; the process-wide peak only grows, so later rows include earlier phases
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB (process RSS so far)"


def denoising_step(model: MultiViewDiffusion, cameras: torch.Tensor, guidance: float = 7.5) -> Callable[[], object]:
    views, size = model.num_views, model.config.latent_size
    g = torch.Generator(device="cpu").manual_seed(0)
    latents = torch.randn(views, model.config.latent_channels, size, size, generator=g).to(model.device)
    with torch.no_grad():
        embeds = model.encode_prompts(["", PROMPT]).repeat_interleave(views, dim=0)  # (2*V, L, D)
    camera_batch = cameras.repeat(2, 1)
    model.scheduler.set_timesteps(50)
    t = model.scheduler.timesteps[10]

    @torch.no_grad()
    def step() -> torch.Tensor:
        noise = model.noise_prediction(torch.cat([latents, latents]), t, embeds, camera_batch).float()
        uncond, text = noise.chunk(2)
        return model.scheduler.step(uncond + guidance * (text - uncond), t, latents).prev_sample

    return step


def training_step(model: MultiViewDiffusion, cameras: torch.Tensor) -> Callable[[], object]:
    views, size = model.num_views, model.config.latent_size
    g = torch.Generator(device="cpu").manual_seed(1)
    latents = torch.randn(views, model.config.latent_channels, size, size, generator=g).to(model.device)
    noise = torch.randn(latents.shape, generator=g).to(model.device)
    with torch.no_grad():
        embeds = model.encode_prompts([PROMPT] * views)
    t = torch.full((views,), 500, device=model.device)
    resolution = min(16, model.config.latent_size)
    recorder = CrossAttentionRecorder(model.unet, token_indices=[5, 9], resolution=resolution)
    model.unet.train()
    model.unet.requires_grad_(True)

    def step() -> None:
        model.unet.zero_grad(set_to_none=True)
        with recorder:
            noisy = model.scheduler.add_noise(latents, noise, t)
            prediction = model.noise_prediction(noisy, t, embeds, cameras).float()
            loss = (prediction - noise).square().mean() + 1e-2 * recorder.maps().float().square().mean()
            loss.backward()

    return step


def run(args: argparse.Namespace) -> list[tuple[str, str]]:
    device = torch.device(args.device)
    torch.manual_seed(0)
    config = MultiViewDiffusionConfig() if args.full else MultiViewDiffusionConfig.tiny()
    dtype = args.dtype or ("bfloat16" if device.type == "cuda" else "float32")
    build_start = time.perf_counter()
    model = MultiViewDiffusion.build_random(config, seed=0, device=device)
    model.to(device)
    model.apply_performance(PerformanceConfig(dtype=dtype, attention="sdpa", compile=args.compile))
    build_seconds = time.perf_counter() - build_start
    cameras = torch.from_numpy(mvdream_orbit(config.num_views, image_size=config.image_size).mvdream_vectors())
    cameras = cameras.to(device)
    params = sum(p.numel() for p in model.unet.parameters())
    if device.type == "cuda":
        device_name = torch.cuda.get_device_name(device)
    else:
        device_name = f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"
    size = config.latent_size
    rows: list[tuple[str, str]] = [
        ("preset", "full-size MVDream (sd-2.1-base sizes), random init" if args.full else "tiny"),
        ("device", device_name),
        ("torch", torch.__version__),
        ("UNet parameters", f"{params / 1e6:.1f} M"),
        ("image / latent size", f"{config.image_size} px / {size}x{size}, {config.num_views} views"),
        ("dtype, attention", f"{dtype}, SDPA{' + torch.compile' if args.compile else ''}"),
        ("build (random init)", f"{build_seconds:.2f} s"),
    ]

    reset_peak(device)
    step = denoising_step(model, cameras)
    sdpa_step = timed(step, device, args.repeats, warmup=3 if args.compile else 1)
    rows.append(("denoising step (4 views, CFG)", f"{sdpa_step * 1e3:.1f} ms"))
    rows.append(("peak memory, denoising", peak_memory(device)))

    if not args.compile:
        # interleaved, so that load from other processes hits both backends alike
        sdpa_times, stock_times = [], []
        for _ in range(args.repeats):
            for backend, times in (("sdpa", sdpa_times), ("stock", stock_times)):
                model.set_attention_backend(backend)
                times.append(timed(step, device, repeats=1, warmup=0))
        model.set_attention_backend("sdpa")
        stock_step, sdpa_paired = statistics.median(stock_times), statistics.median(sdpa_times)
        rows.append(("denoising step, stock attention (diffusers AttnProcessor)", f"{stock_step * 1e3:.1f} ms"))
        rows.append(("stock / SDPA time ratio (interleaved runs)", f"{stock_step / sdpa_paired:.2f}x"))

    reset_peak(device)
    train = training_step(model, cameras)
    train_seconds = timed(train, device, max(1, args.repeats // 2))
    rows.append(("training step (1 object x 4 views, fwd+bwd, recorder on)", f"{train_seconds * 1e3:.1f} ms"))
    rows.append(("peak memory, training", peak_memory(device)))
    if not args.compile:
        model.unet.enable_gradient_checkpointing()
        reset_peak(device)
        ckpt_seconds = timed(train, device, max(1, args.repeats // 2))
        rows.append(("training step, gradient checkpointing", f"{ckpt_seconds * 1e3:.1f} ms"))
        rows.append(("peak memory, training with checkpointing", peak_memory(device)))
        model.unet.disable_gradient_checkpointing()
    model.unet.eval().requires_grad_(False)

    reset_peak(device)
    generator = torch.Generator(device="cpu").manual_seed(0)
    sample_config = SampleConfig(steps=args.sample_steps)
    start = time.perf_counter()
    sample_views(model, [PROMPT], cameras, sample_config, generator)
    synchronize(device)
    sample_seconds = time.perf_counter() - start
    rows.append((f"{args.sample_steps}-step 4-view sample (1 prompt, CFG, VAE decode)", f"{sample_seconds:.2f} s"))
    rows.append(("peak memory, sampling", peak_memory(device)))
    return rows


def write_results(rows: list[tuple[str, str]], section: str) -> str:
    table = "\n".join(["| measure | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])
    block = f"## {section}\n\n{table}\n"
    header = "# Multi-view diffusion benchmark\n\nWritten by benchmarks/bench_mvdiffusion.py.\n"
    text = RESULTS.read_text() if RESULTS.is_file() else header
    pattern = re.compile(rf"^## {re.escape(section)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: block + "\n", text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + block
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text.rstrip("\n") + "\n")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="full-size MVDream (sd-2.1-base-4view sizes)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default=None,
                        help="default: bfloat16 on CUDA, float32 on the CPU")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sample-steps", type=int, default=50)
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile the UNet (skips the stock-attention rows)"
    )
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda was requested but CUDA is not available")
    rows = run(args)
    section = f"{'full' if args.full else 'tiny'} / {torch.device(args.device).type}"
    section += " / compiled" if args.compile else ""
    print(write_results(rows, section))
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
