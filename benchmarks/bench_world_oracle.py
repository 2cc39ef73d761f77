"""Can the base world model draw an edited object at all? The oracle of a recolour edit, no personalisation.

    python benchmarks/bench_world_oracle.py                  # the held-out objects with 2-3 parts, 3 seeds
    python benchmarks/bench_world_oracle.py --objects 8 --seeds 1 --steps 20

For each held-out object of the procedural parts world with 2 or 3 parts, its last part is recoloured to a
colour no part has ("a cone in green and a torus in blue" for a green cone and a green torus), and the shipped
`world` model (no personalisation) samples that caption with the `world` preset's sampler. The views cannot
be compared pixel for pixel with the object (the model draws an object of its own), so what is scored is
whether the colours are there: the asked colour's share of the foreground, and each kept part's own colour's
share (brown has no hue of its own and is not scored). A draw counts when the asked colour and every scored
kept colour each cover at least `--min-share` of the foreground. An edit of a personalised model can hardly
succeed where this fails: the oracle bounds what personalisation can reach with this base model.

Prints a table and writes it to benchmarks/results/world_oracle.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dreamedit3d_core.config import pipeline_config  # noqa: E402
from dreamedit3d_core.evaluate.colour import COLOUR_HUES, colour_share  # noqa: E402
from dreamedit3d_core.mvdiffusion import MultiViewDiffusion  # noqa: E402
from dreamedit3d_core.mvdiffusion.settings import WORLD_MODEL_DIR  # noqa: E402
from dreamedit3d_core.mvdiffusion.sampling import sample_views  # noqa: E402
from dreamedit3d_core.world import DEFAULT_COLOURS, WorldDatasetConfig, canonical_caption, sample_split  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "world_oracle.md"
EDIT_COLOURS = ("green", "blue", "red", "yellow", "purple")
FOREGROUND_TOLERANCE = 30  # a pixel darker than white by more than this (0-255) in some channel is the object


def edited_objects(count: int | None) -> list[tuple[int, object, str]]:
    """(held-out index, the object with its last part recoloured, the new colour) for objects of 2-3 parts."""
    defaults = WorldDatasetConfig()
    _, held_out = sample_split(0, defaults.held_out, 0, defaults.world)
    chosen = []
    for index, obj in enumerate(held_out):
        if not 2 <= len(obj.parts) <= 3:
            continue
        colour = next(c for c in EDIT_COLOURS if c not in {p.colour for p in obj.parts})
        last = dataclasses.replace(obj.parts[-1], colour=colour, rgb=DEFAULT_COLOURS[colour])
        chosen.append((index, dataclasses.replace(obj, parts=(*obj.parts[:-1], last)), colour))
    return chosen[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=None, help="the first N objects (default: all)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the world preset's)")
    parser.add_argument("--min-share", type=float, default=0.15)
    args = parser.parse_args()

    torch.manual_seed(0)
    model = MultiViewDiffusion.from_pretrained(WORLD_MODEL_DIR, device=torch.device("cpu"))
    preset = pipeline_config("world")
    config = preset.sample.model_copy(update={"local_edit": False, **({"steps": args.steps} if args.steps else {})})
    cameras = torch.from_numpy(preset.render.camera_set().mvdream_vectors())  # the world orbit (V, 16)
    rows, started = [], time.perf_counter()
    for index, obj, colour in edited_objects(args.objects):
        prompt = canonical_caption(obj)
        for seed in range(args.seeds):
            views = sample_views(model, [prompt], cameras, config, torch.Generator().manual_seed(seed)).views[0]
            foreground = (255 - views.min(axis=-1)) > FOREGROUND_TOLERANCE  # (V, H, W)
            asked = colour_share(views, foreground, colour) or 0.0
            kept = {p.colour: colour_share(views, foreground, p.colour) or 0.0 for p in obj.parts[:-1] if p.colour in COLOUR_HUES}
            success = asked >= args.min_share and all(share >= args.min_share for share in kept.values())
            rows.append({"object": index, "seed": seed, "caption": prompt, "asked": colour, "share": asked, "kept": kept, "success": success})
            print(f"object {index:2d} seed {seed}: {'drawn' if success else '-    '} {prompt}", flush=True)
    wins = sum(row["success"] for row in rows)
    lines = [
        f"## The base world model on edited captions ({len({r['object'] for r in rows})} held-out objects x {args.seeds} seeds)",
        "",
        f"{config.steps} DDIM steps, guidance {config.guidance_scale}; a draw counts when the asked colour and every "
        f"scored kept colour cover at least {args.min_share:.2f} of the foreground; CPU, {time.perf_counter() - started:.0f} s.",
        "",
        f"**Oracle: {wins} of {len(rows)} draws ({wins / max(len(rows), 1):.0%})**",
        "",
        "| object | seed | caption | asked colour's share | kept colours' shares | drawn |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        kept = ", ".join(f"{c} {s:.2f}" for c, s in row["kept"].items()) or "(not scored)"
        lines.append(
            f"| {row['object']} | {row['seed']} | {row['caption']} | {row['asked']} {row['share']:.2f} | {kept} | "
            f"{'yes' if row['success'] else 'no'} |"
        )
    text = "\n".join(lines) + "\n"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("# Oracle of recolour edits\n\nWritten by benchmarks/bench_world_oracle.py.\n\n" + text)
    print(text)


if __name__ == "__main__":
    main()
