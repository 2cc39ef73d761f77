"""Sample a world model from captions: one row of 4 views per caption, labelled, as a PNG.

    python scripts/world_samples.py docs/images/world_model_captions.png \
        "a photo of a sphere in green" "a photo of a cylinder in brown and a sphere in green"

The model is the shipped `world` model unless `--model` names another folder; the cameras are the world
orbit at the model's resolution; sampling is the `world` preset's (DDIM, guidance 5, empty negative prompt).
Same seed, same picture.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dreamedit3d_core.config import pipeline_config  # noqa: E402
from dreamedit3d_core.mvdiffusion import MultiViewDiffusion, sample_views  # noqa: E402
from dreamedit3d_core.mvdiffusion.settings import WORLD_MODEL_DIR  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="PNG to write")
    parser.add_argument("captions", nargs="+")
    parser.add_argument("--model", type=Path, default=WORLD_MODEL_DIR)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the world preset's)")
    args = parser.parse_args()

    from PIL import Image, ImageDraw

    preset = pipeline_config("world")
    # captions name no learned tokens, so there is no part to edit locally: plain sampling
    config = preset.sample.model_copy(update={"local_edit": False, **({"steps": args.steps} if args.steps else {})})
    model = MultiViewDiffusion.from_pretrained(args.model)
    cameras = preset.render.model_copy(update={"image_size": model.config.image_size}).camera_set()
    vectors = torch.from_numpy(cameras.mvdream_vectors().astype(np.float32))
    generator = torch.Generator().manual_seed(args.seed)
    views = sample_views(model, args.captions, vectors, config, generator).views  # (E, V, H, W, 3) uint8

    size, label = model.config.image_size, 6 * max(len(c) for c in args.captions) + 8
    sheet = Image.new("RGB", (label + size * views.shape[1], size * len(args.captions)), "white")
    draw = ImageDraw.Draw(sheet)
    for row, (caption, object_views) in enumerate(zip(args.captions, views, strict=True)):
        sheet.paste(Image.fromarray(np.concatenate(list(object_views), axis=1)), (label, row * size))
        draw.text((4, row * size + size // 2 - 6), caption, fill="black")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out}: {len(args.captions)} captions x {views.shape[1]} views")


if __name__ == "__main__":
    main()
