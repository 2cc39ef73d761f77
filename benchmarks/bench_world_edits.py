"""Does personalisation work? Colour edits of held-out parts-world objects, with the method's parts on and off.

    python benchmarks/bench_world_edits.py                    # 4 held-out objects, six settings
    python benchmarks/bench_world_edits.py --objects 8 --workers 2
    python benchmarks/bench_world_edits.py --all-settings     # and phase 2 as LoRA adapters
    python benchmarks/bench_world_edits.py --indices 44       # chosen held-out objects (44: the demo's)

For each held-out object of the procedural parts world (never trained on) with 2 or 3 parts, the whole
pipeline runs with the `world` preset (shipped weights unless `--model`), and one edit recolours the last
part: "a photo of <asset0> and <asset1> in green" (a colour no part has). The paper's recipe in four
settings: attention alignment on (lambda = the preset's) or off (lambda = 0), phase 2 fine-tuning on or off
(0 steps). Then what the world preset adds, not the paper's recipe: prior preservation in phase 2, and on
top of it local edits (the shipped preset). `--all-settings` adds rank-8 LoRA adapters in phase 2.
Both outputs of every edit are measured on the same objects and cameras: the merged asset (the merge stage: the
source with only the edited part re-textured from the views, the pipeline's output) and the full reconstruction
(the paper's: the whole object lifted from the four views to a new mesh). Measured on Blender renders from 8
cameras, against renders of the source:
  colour share   share of the edited part's pixels whose hue is the asked colour (before -> after the edit),
                 and the same share on the reconstruction of the plain prompt "a photo of <asset0> and <asset1>":
                 an "after" no higher than this is no edit (the part came out that colour with or without the words)
  kept PSNR      masked PSNR of the parts the prompt does not edit (merged: where no edited part hides them)
  no-edit PSNR   masked PSNR of every part of the reconstruction for "a photo of <asset0> and <asset1>" (does the
                 personalised model give the asset back?)
  merge s        seconds of the merge itself (baking the edited part's texture), per edit
  isolation      attention isolation per token after phase 1 and after phase 2 (share of each token's
                 cross-attention inside its own component's mask)
  no mesh        prompts whose sampled views had no common silhouette, so no mesh to measure (the means
                 above leave them out)
Prints a table and writes it to benchmarks/results/world_edits.md, with a picture per object (its source
views, then each setting's sampled views for the plain prompt and for the edit) in
benchmarks/results/world_edits/.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dreamedit3d_core.config import merge  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "world_edits.md"
PICTURES = RESULTS.parent / "world_edits"  # object_NN.png: source views and each setting's edited views
EDIT_COLOURS = ("green", "blue", "red", "yellow", "purple")
# the paper's recipe: the world preset without its two additions (prior preservation in phase 2, local edits)
PAPER = {"finetune": {"prior_preservation": False}, "sample": {"local_edit": False}}
NO_ALIGNMENT = {"invert": {"attention_weight": 0.0}, "finetune": {"attention_weight": 0.0}}
NO_PHASE2 = {"finetune": {"steps": 0}}
SETTINGS: dict[str, tuple[str, dict[str, Any]]] = {  # --settings name -> (the table's label, preset overrides)
    "method": ("alignment on, phase 2 on (the paper's method)", PAPER),
    "no-alignment": ("alignment off, phase 2 on", merge(PAPER, NO_ALIGNMENT)),
    "no-phase2": ("alignment on, phase 2 off", merge(PAPER, NO_PHASE2)),
    "neither": ("alignment off, phase 2 off", merge(PAPER, merge(NO_ALIGNMENT, NO_PHASE2))),
    # not the paper's recipe: phase 2 trains rank-8 LoRA adapters (peft) instead of every UNet weight
    "lora": ("method, phase 2 as LoRA rank 8", merge(PAPER, {"finetune": {"lora_rank": 8, "lora_lr": 1e-3}})),
    # not the paper's recipe: DreamBooth's prior preservation in phase 2 (base-model samples of 16 world captions)
    "prior": ("method + prior preservation", {"sample": {"local_edit": False}}),
    # the world preset as shipped: prior preservation and local edits (outside the edited part's masks the views
    # are the plain prompt's)
    "preset": ("method + prior preservation + local edit (world preset)", {}),
}
DEFAULT_SETTINGS = ["method", "no-alignment", "no-phase2", "neither", "prior", "preset"]  # the four, then ours


def choose_objects(count: int, seed: int, indices: list[int] | None = None) -> list[tuple[int, Any, str]]:
    """(held-out index, object, edit colour): the first `count` objects of 2-3 parts (or those at `indices`);
    the colour is one no part has."""
    from dreamedit3d_core.world import WorldDatasetConfig, sample_split

    defaults = WorldDatasetConfig(seed=seed)
    _, held_out = sample_split(0, defaults.held_out, seed, defaults.world)
    chosen = []
    for index, obj in enumerate(held_out):
        colours = {p.colour for p in obj.parts}
        if (indices is None and 2 <= len(obj.parts) <= 3) or (indices is not None and index in indices):
            target = next(c for c in EDIT_COLOURS[len(chosen) % len(EDIT_COLOURS) :] + EDIT_COLOURS if c not in colours)
            chosen.append((index, obj, target))
        if indices is None and len(chosen) == count:
            break
    return chosen


def run_object(job: dict[str, Any]) -> list[dict[str, Any]]:
    """Every setting for one object, in a process of its own (one torch thread)."""
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    import flows  # noqa: F401  (Prefect's offline settings)
    from dreamedit3d_core.config import pipeline_config
    from dreamedit3d_core.world import canonical_caption, write_world_asset
    from flows.edit_asset import edit_asset
    from storage import ArtifactStore

    index, obj, colour = job["index"], job["object"], job["colour"]
    glb = write_world_asset(obj, Path(job["work"]) / f"held_out_{index:02d}.glb")
    tokens = " and ".join(f"<asset{i}>" for i in range(len(obj.parts)))
    prompt = f"a photo of {tokens} in {colour}"
    rows = []
    for setting in job["settings"]:
        name, setting_overrides = SETTINGS[setting]
        overrides: dict[str, Any] = {}
        if job["invert_steps"] is not None:
            overrides["invert"] = {"steps": job["invert_steps"]}
        if job["finetune_steps"] is not None:
            overrides["finetune"] = {"steps": job["finetune_steps"]}
        overrides = merge(overrides, setting_overrides)
        overrides = merge(overrides, {"reconstruct": {"enabled": True}})  # both outputs, side by side
        phase2 = overrides.get("finetune", {}).get("steps") != 0
        if job["model"]:
            overrides["model"] = {"source": "world", "path": job["model"]}
        config = pipeline_config("world", overrides)
        started = time.perf_counter()
        # the edit, and the plain prompt of the learned tokens (does the personalised model give the asset
        # back?), one run each: sampled views without a common silhouette give no mesh, and that is a result too
        edit, plain = (
            run_edit(edit_asset, glb, text, job, config) for text in (prompt, f"a photo of {tokens}")
        )
        refs = (edit or plain or {}).get("shared", {})
        store = ArtifactStore(job["store"])
        isolation = {}
        for stage, item in (("invert", "attention_isolation"), ("finetune", "finetune_attention_isolation")):
            if stage not in refs:
                isolation[stage] = None
                continue
            table = store.get(refs[stage].key).table(item).to_pylist()
            after = [r for r in table if r["phase"].startswith("after")]
            isolation[stage] = statistics.fmean(r["attention_isolation"] for r in after) if after else None
        metrics = edit["evaluate"].metadata if edit else {}
        # the same share on the plain prompt's reconstruction: a part that is already the colour without the edit
        # words (a wrong colour the personalised model gives back) is not an edit
        plain_metrics = plain["evaluate"].metadata if plain else {}
        plain_share = None
        if plain and plain["reconstructed"]:
            shares = store.get(plain["evaluate"].key).table("component_colours").to_pylist()
            edited_token = f"<asset{len(obj.parts) - 1}>"
            plain_share = next(
                r["result_share"] for r in shares
                if r["output"] == "reconstruction" and r["token"] == edited_token and r["colour"] == colour
            )
        pictures = {  # contact sheets the stages wrote: the source renders (colour row first), the sampled views
            "source": str(store.get(refs["render"].key).local_path("renders_preview")) if "render" in refs else None,
            "views": str(store.get(edit["sample"].key).local_path("views_preview")) if edit else None,
            "plain_views": str(store.get(plain["sample"].key).local_path("views_preview")) if plain else None,
        }
        rows.append(
            {
                "object": index,
                "caption": canonical_caption(obj),
                "edited part": f"{obj.parts[-1].colour} {obj.parts[-1].shape}",
                "colour": colour,
                "setting": name,
                "share_before": metrics.get("edited_colour_share_before"),
                "share_after": metrics.get("edited_colour_share"),
                "reconstruction_share_after": metrics.get("reconstruction_edited_colour_share"),
                "share_without_edit": plain_share,
                "kept_psnr": metrics.get("preserved_psnr"),
                "reconstruction_kept_psnr": metrics.get("reconstruction_preserved_psnr"),
                "reproduction_psnr": plain_metrics.get("reconstruction_preserved_psnr"),  # every part
                "merge_seconds": edit["merge"].metadata.get("seconds") if edit else None,
                "no_mesh": [what for what, run in (("edit", edit), ("no edit", plain)) if not run["reconstructed"]],
                "isolation_phase1": isolation["invert"],
                "isolation_phase2": isolation["finetune"] if phase2 else None,
                "seconds": time.perf_counter() - started,
                **pictures,
            }
        )
    return rows


def run_edit(edit_asset: Any, glb: Path, prompt: str, job: dict[str, Any], config: Any) -> dict[str, Any] | None:
    """Every stage for one prompt: {"shared": refs of the per-asset stages, "sample"/"merge"/"evaluate": this
    prompt's, "reconstructed": False when the sampled views had no common silhouette to reconstruct (the merged
    output needs none: it runs again without the full reconstruction)}."""
    from dreamedit3d_core.reconstruct.surface import EmptyReconstructionError

    reconstructed = True
    try:
        result = edit_asset(asset_path=str(glb), edits=[prompt], store=job["store"], config=config, seed=job["seed"])
    except EmptyReconstructionError:
        reconstructed = False
        config = config.model_copy(update={"reconstruct": config.reconstruct.model_copy(update={"enabled": False})})
        result = edit_asset(asset_path=str(glb), edits=[prompt], store=job["store"], config=config, seed=job["seed"])
    refs = {ref.stage: ref for ref in result.stages}
    return {"shared": refs, "sample": refs["sample"], "merge": refs["merge"], "evaluate": refs["evaluate"], "reconstructed": reconstructed}


def figure(rows: list[dict[str, Any]], path: Path) -> None:
    """One object's picture: its source views, then the edit's sampled views under every setting, labelled."""
    from PIL import Image, ImageDraw

    def views_or_blank(views: str | None, like: Image.Image) -> Image.Image:  # blank where no mesh came out
        return Image.open(views).convert("RGB") if views else Image.new("RGB", like.size, "lightgrey")

    source_path = next(row["source"] for row in rows if row["source"])
    source = Image.open(source_path).convert("RGB")
    source = source.crop((0, 0, source.width, source.width // 4))  # the colour row of the contact sheet
    strips = [("source", source)]
    for row in rows:
        setting = row["setting"].split(" (")[0]
        strips.append((f"{setting}: no edit{' (no mesh)' * (row['plain_views'] is None)}", views_or_blank(row["plain_views"], source)))
        strips.append((f"{setting}: edit{' (no mesh)' * (row['views'] is None)}", views_or_blank(row["views"], source)))
    label_width, width = 300, max(strip.width for _, strip in strips)
    height = sum(strip.height for _, strip in strips)
    sheet = Image.new("RGB", (label_width + width, height), "white")
    draw, y = ImageDraw.Draw(sheet), 0
    for label, strip in strips:
        sheet.paste(strip, (label_width, y))
        draw.text((4, y + strip.height // 2 - 6), label, fill="black")
        y += strip.height
    draw.text((4, 4), f"{rows[0]['edited part']} -> {rows[0]['colour']}", fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def mean(values: list[float | None], digits: int = 3) -> str:
    present = [v for v in values if v is not None]
    return f"{statistics.fmean(present):.{digits}f}" if present else "-"


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| setting | merged: colour before -> after | merged: kept PSNR (dB) | reconstruction: colour after | reconstruction: kept PSNR (dB) | without the edit words | no-edit PSNR (dB) | isolation after phase 1 / 2 | merge (s) | no mesh (edit / no edit) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in dict.fromkeys(r["setting"] for r in rows):
        chosen = [r for r in rows if r["setting"] == name]
        lines.append(
            f"| {name} | {mean([r['share_before'] for r in chosen])} -> {mean([r['share_after'] for r in chosen])} "
            f"| {mean([r['kept_psnr'] for r in chosen])} "
            f"| {mean([r['reconstruction_share_after'] for r in chosen])} "
            f"| {mean([r['reconstruction_kept_psnr'] for r in chosen])} "
            f"| {mean([r['share_without_edit'] for r in chosen])} | {mean([r['reproduction_psnr'] for r in chosen])} "
            f"| {mean([r['isolation_phase1'] for r in chosen])} / {mean([r['isolation_phase2'] for r in chosen])} "
            f"| {mean([r['merge_seconds'] for r in chosen], 2)} "
            f"| {sum('edit' in r['no_mesh'] for r in chosen)} / {sum('no edit' in r['no_mesh'] for r in chosen)} |"
        )
    detail = [
        "",
        "| object | caption | edit | setting | merged: colour after | merged: kept PSNR | reconstruction: colour after | reconstruction: kept PSNR | without the edit words | no-edit PSNR |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        missing = "no mesh" if "edit" in r["no_mesh"] else None
        plain_missing = "no mesh" if "no edit" in r["no_mesh"] else None
        detail.append(
            f"| {r['object']} | {r['caption']} | {r['edited part']} -> {r['colour']} | {r['setting']} "
            f"| {number(r['share_after'], 3)} | {number(r['kept_psnr'], 2)} "
            f"| {missing or number(r['reconstruction_share_after'], 3)} | {missing or number(r['reconstruction_kept_psnr'], 2)} "
            f"| {plain_missing or number(r['share_without_edit'], 3)} | {plain_missing or number(r['reproduction_psnr'], 2)} |"
        )
    return "\n".join(lines + detail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=4)
    parser.add_argument("--indices", type=int, nargs="+", default=None, help="held-out objects to run instead")
    parser.add_argument("--workers", type=int, default=1, help="objects run in parallel processes")
    parser.add_argument("--store", default=None, help="artifact store (default: a temporary folder)")
    parser.add_argument("--model", default=None, help="a world model folder (default: the shipped weights)")
    parser.add_argument("--invert-steps", type=int, default=None, help="override the preset's phase 1 steps")
    parser.add_argument("--finetune-steps", type=int, default=None, help="override the preset's phase 2 steps")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampled views")
    parser.add_argument(
        "--settings", nargs="+", default=DEFAULT_SETTINGS, choices=list(SETTINGS),
        help="settings to run (default: all but lora, which trains LoRA adapters in phase 2)",
    )
    parser.add_argument("--all-settings", action="store_true", help="run every setting, the LoRA one too")
    args = parser.parse_args()
    settings = list(SETTINGS) if args.all_settings else args.settings

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dreamedit3d-world-bench-") as tmp:
        store = args.store or str(Path(tmp) / "store")
        jobs = [
            {
                "index": index, "object": obj, "colour": colour, "work": tmp, "store": store, "seed": args.seed,
                "model": args.model, "invert_steps": args.invert_steps, "finetune_steps": args.finetune_steps,
                "settings": settings,
            }
            for index, obj, colour in choose_objects(args.objects, seed=0, indices=args.indices)
        ]
        rows: list[dict[str, Any]] = []
        if args.workers > 1:
            import multiprocessing

            with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                for object_rows in pool.map(run_object, jobs):
                    rows += object_rows
        else:
            for job in jobs:
                rows += run_object(job)
        for index in sorted({r["object"] for r in rows}):  # while the store (maybe temporary) is still there
            figure([r for r in rows if r["object"] == index], PICTURES / f"object_{index:02d}.png")
    import torch

    from dreamedit3d_core.config import pipeline_config

    preset = pipeline_config("world")
    heading = (
        f"## world preset, {len(jobs)} held-out objects\n\n"
        f"phase 1: {args.invert_steps or preset.invert.steps} steps, lambda {preset.invert.attention_weight}; "
        f"phase 2: {args.finetune_steps or preset.finetune.steps} steps; sampling {preset.sample.steps} DDIM steps, "
        f"guidance {preset.sample.guidance_scale}; CPU, torch {torch.__version__}, {args.workers} worker(s), "
        f"{time.perf_counter() - started:.0f} s in all.\n\n"
    )
    text = heading + table(rows) + "\n"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("# Edits of held-out parts-world objects\n\nWritten by benchmarks/bench_world_edits.py.\n\n" + text)
    print(text)


if __name__ == "__main__":
    main()
