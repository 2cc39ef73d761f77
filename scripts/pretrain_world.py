"""Pretrain the `world` preset's multi-view model from an exported parts-world dataset, core code only.

`dreamedit3d world train` does the same inside the artifact store (cached, resumable, with the dataset
rendered first). This script is for a machine that has torch, diffusers, transformers and pydantic but not
the pipeline's other dependencies (Blender, Prefect, Zarr), such as a lent GPU machine:

    dreamedit3d world export-data world.npz            # on the pipeline machine
    python scripts/pretrain_world.py --data world.npz --out world-small --device cuda --steps 20000

The dataset file is `np.savez` output (`.npz`, or `.npz.xz` compressed with lzma) read with allow_pickle=False: `images` (N, V, S, S, 3) uint8 on white,
`captions` (N, K) str, `cameras` (V, 16) float32, and optionally `preview_captions` (P,) str, prompts of
held-out objects sampled into `preview.png` after training.
"""

from __future__ import annotations

import argparse
import io
import json
import lzma
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dreamedit3d_core.mvdiffusion import MultiViewDiffusion, SampleConfig, sample_views  # noqa: E402
from dreamedit3d_core.mvdiffusion.architecture import MultiViewDiffusionConfig  # noqa: E402
from dreamedit3d_core.pretrain import PretrainConfig, PretrainData, pretrain  # noqa: E402
from dreamedit3d_core.world import tokenizer_words  # noqa: E402


def read_dataset(path: Path) -> tuple[PretrainData, list[str]]:
    source = io.BytesIO(lzma.open(path).read()) if path.suffix == ".xz" else path
    with np.load(source, allow_pickle=False) as arrays:
        captions = [[c for c in row if c] for row in arrays["captions"].tolist()]
        data = PretrainData(arrays["images"], captions, arrays["cameras"].astype(np.float32))
        preview = arrays["preview_captions"].tolist() if "preview_captions" in arrays.files else []
    return data, preview


def build_model(seed: int, device: str) -> MultiViewDiffusion:
    return MultiViewDiffusion.build_random(
        MultiViewDiffusionConfig.world_small(), seed=seed, device=device, words=tokenizer_words()
    )


def fitted_steps(data: PretrainData, config: PretrainConfig, args: argparse.Namespace) -> int:
    """Steps that fill `--fit-steps-to` seconds at the speed of 20 timed steps on a throw-away model."""
    probe = build_model(args.seed + 1, args.device)
    timing = config.model_copy(update={"steps": 10**6, "log_every": 1})
    stamps: dict[int, float] = {}
    pretrain(probe, data, timing, stop_after=25, progress=lambda step, *_: stamps.setdefault(step, time.perf_counter()))
    seconds = (stamps[25] - stamps[5]) / 20  # after 5 warm-up steps; set-up (data to the device) not counted
    del probe
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    steps = max(1, int(args.fit_steps_to / seconds))
    print(f"{seconds * 1000:.1f} ms per step: {steps} steps fill {args.fit_steps_to:.0f} s", flush=True)
    return steps


def preview_grid(model: MultiViewDiffusion, prompts: list[str], cameras: np.ndarray, path: Path, steps: int) -> None:
    from PIL import Image

    generator = torch.Generator(device=model.device).manual_seed(0)
    config = SampleConfig(steps=steps, guidance_scale=5.0, negative_prompt="")
    views = sample_views(model, prompts, torch.from_numpy(cameras), config, generator).views  # (E, V, H, W, 3)
    rows = [np.concatenate(list(object_views), axis=1) for object_views in views]  # (H, V*W, 3) per prompt
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="model folder to write (diffusers layout)")
    parser.add_argument("--checkpoints", type=Path, default=None, help="resume from / write checkpoints here")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--config", default="{}", help="PretrainConfig fields as JSON")
    parser.add_argument("--time-limit", type=float, default=None, help="seconds; end early (averaged) after this")
    parser.add_argument("--seed", type=int, default=0, help="random init of the model")
    parser.add_argument(
        "--init", type=Path, default=None,
        help="start the UNet from this world model folder (e.g. an earlier run); the text encoder stays fresh",
    )
    parser.add_argument("--preview-steps", type=int, default=50, help="DDIM steps of the held-out preview")
    parser.add_argument(
        "--fit-steps-to", type=float, default=None, metavar="SECONDS",
        help="time a few steps first, then set the step count so that training takes about this long",
    )
    args = parser.parse_args()

    data, preview = read_dataset(args.data)
    config = PretrainConfig.model_validate(json.loads(args.config))
    if args.fit_steps_to is not None:
        config = config.model_copy(update={"steps": fitted_steps(data, config, args)})
    model = build_model(args.seed, args.device)
    if args.init is not None:
        earlier = MultiViewDiffusion.from_pretrained(args.init)
        model.unet.load_state_dict(earlier.unet.state_dict())  # same architecture, or this raises
        print(f"UNet initialised from {args.init}", flush=True)
    sizes = {n: sum(p.numel() for p in getattr(model, n).parameters()) for n in ("unet", "text_encoder")}
    print(f"{data.num_objects} objects, {sizes} parameters, {config.steps} steps on {args.device}", flush=True)

    def report(step: int, total: int, loss: float | None) -> None:
        print(f"step {step}/{total} loss {loss:.4f} {time.perf_counter() - started:.0f} s", flush=True)

    started = time.perf_counter()
    result = pretrain(
        model, data, config, checkpoint_dir=args.checkpoints, progress=report, time_limit_s=args.time_limit
    )
    model.save_pretrained(args.out, dtype=torch.float16)
    summary = {
        "steps": result.steps,
        "stopped_early": result.stopped_early,
        "resumed_from_step": result.resumed_from_step,
        "seconds": round(result.seconds, 1),
        "device": torch.cuda.get_device_name() if model.device.type == "cuda" else "cpu",
        "final_loss": result.losses[-1][1] if result.losses else None,
        "config": config.model_dump(mode="json"),
        "losses": result.losses,
    }
    (args.out / "training.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "losses"}), flush=True)
    if preview:
        preview_grid(model, preview[:8], data.cameras, args.out / "preview.png", args.preview_steps)


if __name__ == "__main__":
    main()
