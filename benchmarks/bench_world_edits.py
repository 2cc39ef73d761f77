"""Do edits work? Held-out parts-world objects edited by the pipeline, scored against the exact answer.

    python benchmarks/bench_world_edits.py --half tuning --rows paper prior attr ...   # 12 objects, 1 sample
    python benchmarks/bench_world_edits.py --half test --workers 2 --sheet preset        # 32 objects, 3 samples
    python benchmarks/bench_world_edits.py --half test --objects 2 --rows preset        # a quick look
    python benchmarks/bench_world_edits.py --list-rows

The objects: held-out objects of the procedural parts world (`held_out_objects`: no training object shares
their description) with 2 or 3 parts, split once into a tuning half (12) and a test half (32), written down in
benchmarks/world_edit_split.json (never tune on the test half). Each object gets three edits with an exact
answer (`dreamedit3d_core/world/edits.py`): its last part recoloured to a colour no part has, its last two parts
recoloured, and a part with nothing on it swapped to a shape the object lacks. The answer is the edited object,
rendered by Blender from the pipeline's own cameras.

A row is a personalisation (invert + finetune settings, or none: the base model) and a sampler setting. The
pipeline runs through an artifact store under --work (so an interrupted run resumes and a re-run is cached):
ingest, render, mask, invert, finetune, then sample each edit (3 samples for the preset on the test half, 1 otherwise; `--samples`). Every sample is scored:
  views      the sampled views against the answer's renders (same cameras and size)
  merged     the sample merged into the source asset (the merge stage's own function: only the edited parts
             change) and rendered by Blender, against the answer's renders
Scores (`dreamedit3d_core/evaluate/ground_truth.py`): the edited parts' share of pixels in the asked colour (the
lowest over the edit's parts), the kept parts' masked PSNR, a swapped part's silhouette IoU. An edit succeeds
when every edited part has its colour on >= 0.5 of its pixels, the kept parts are >= 35 dB from the answer and
a swapped part's silhouette has IoU >= 0.6, all on the merged asset's renders.
The free-draw oracle (the base model drawing the answer's own caption, no personalisation) draws an object of
its own, so it is scored by colours in its foreground instead: each asked colour and each kept colour on at
least 0.15 of it (brown has no hue and is not scored).

Prints the table and writes it to benchmarks/results/world_edits_{half}.md (and .json; --results elsewhere);
one picture per object and row goes under --work/pictures, and --sheet ROW draws a row's successes and failures
into one picture beside the table. --cached-only reports what is cached while a run goes on.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dreamedit3d_core.config import merge  # noqa: E402
from world_edit_objects import SPLIT_FILE, benchmark_objects, compute_split, read_split, textured_objects  # noqa: E402
from world_edit_rows import PERSONALISATIONS, ROWS, SAMPLERS, TEST_ROWS, TEXTURED_ROWS, TUNING_ROWS, Row, default_samples  # noqa: E402
from world_edit_tables import per_object, results_sheet, save_sheet, summarise, table  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "world_edits.md"
ORACLE_MIN_SHARE = 0.15
SCORING_VERSION = 2  # bump when the scoring below changes: cached scores of an older one are not reused


def world_hues() -> dict[str, float]:
    """The hues of the world's own colours (brown has none): a pixel is told apart from these only, not from
    colours the world does not have (gold would narrow orange's window to 9 degrees)."""
    from dreamedit3d_core.evaluate.colour import COLOUR_HUES
    from dreamedit3d_core.world import COLOUR_WORDS

    return {colour: COLOUR_HUES[colour] for colour in COLOUR_WORDS if colour in COLOUR_HUES}


def run_jobs(work: Any, jobs: Sequence[Job], workers: int) -> list[dict[str, Any]]:
    """`work(job)` for every job (a list of result rows each), in `workers` processes of their own above 1."""
    if workers <= 1:
        return [row for job in jobs for row in work(job)]
    import multiprocessing

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return [row for rows in pool.map(work, jobs) for row in rows]


# ---- one object, every row -----------------------------------------------------------------------------------


@dataclass
class Job:
    index: int
    obj: Any
    rows: list[str]
    work: str
    samples: dict[str, int]  # per row
    model: str | None = None
    cached_only: bool = False  # report what is cached, compute nothing


def row_config(row: Row, model: str | None) -> Any:
    from dreamedit3d_core.config import pipeline_config

    # a row without personalisation calls the sampler on the base model itself, not through the pipeline's stages:
    # `personalize` only keeps its config valid for samplers the pipeline refuses without tokens (the oracle's)
    personalisation = {"personalize": True} if row.personalisation == "none" else PERSONALISATIONS[row.personalisation]
    overrides = merge(personalisation, {"sample": SAMPLERS[row.sampler]})
    if model:
        overrides = merge(overrides, {"model": {"source": "world", "path": model}})
    return pipeline_config("world", overrides)


RUN_STAGES = ("ingest", "render", "mask", "invert", "finetune", "sample", "merge")  # what the benchmark runs (not evaluate)


def row_digest(row: Row, config: Any, samples: int) -> str:
    """What a row's cached scores depend on: its settings, the samples, the code of the stages it runs."""
    from tasks.catalog import EDIT

    personalised = row.personalisation != "none" and config.personalize
    used = ("model", "sample", "merge", "render", "mask") + (("invert", "finetune") if personalised else ())
    sections = {name: config.model_dump(mode="json")[name] for name in used}
    if row.personalisation != "none" and not personalised:
        sections["personalize"] = False  # the pipeline's own sample stage on the base model
    code = {s.name: s.code_version for s in EDIT.stages if s.name in RUN_STAGES}
    text = json.dumps({"row": row.__dict__, "config": sections, "samples": samples, "code": code, "scoring": SCORING_VERSION}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def run_stages(until: str, glb: Path, store: str, config: Any, edit: Any = None, refs: dict | None = None) -> dict[str, Any]:
    """The pipeline's stages up to `until` through the store (cached when committed), without Prefect."""
    from tasks.catalog import EDIT
    from tasks.running import run_stage

    refs = dict(refs or {})
    for stage in EDIT.until(until):
        if not EDIT.runs(stage, config) or (stage.per_edit and edit is None) or (stage.name in refs and not stage.per_edit):
            continue
        call = EDIT.call(stage, store=store, config=config, upstream=refs, edit=edit, source=str(glb))
        refs[stage.name] = run_stage(stage, call)
    return refs


def run_object(job: Job) -> list[dict[str, Any]]:
    """Every row of one object, in a process of its own (one torch thread)."""
    import torch

    torch.set_num_threads(1)
    from dreamedit3d_core.world import canonical_caption, world_asset, write_world_asset
    from dreamedit3d_core.world.edits import benchmark_edits

    work = Path(job.work)
    glb = write_world_asset(job.obj, work / "objects" / f"object_{job.index:03d}.glb")
    source = world_asset(job.obj)
    edits = benchmark_edits(job.obj, job.index)
    truths = None
    results = []
    for name in job.rows:
        row = ROWS[name]
        config = row_config(row, job.model)
        samples = job.samples[name]
        cache = work / "scores" / f"{name.replace('/', '_')}-{row_digest(row, config, samples)}" / f"{job.index:03d}.json"
        if cache.is_file():
            results += json.loads(cache.read_text())
            continue
        if job.cached_only:
            continue
        if truths is None:
            truths = render_truths(edits, source, config)
        started = time.perf_counter()
        rows = run_row(job, name, row, config, glb, edits, truths, samples)
        for result in rows:
            result.update(object=job.index, caption=canonical_caption(job.obj), row=name, row_seconds=time.perf_counter() - started)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.with_suffix(".tmp").write_text(json.dumps(rows))
        cache.with_suffix(".tmp").replace(cache)
        results += rows
        print(f"object {job.index:3d} {name:28s} {summarise(rows)}", flush=True)
    return results


def render_truths(edits: Sequence[Any], source: Any, config: Any) -> list[Any]:
    """Blender renders of each edit's answer, from the pipeline's cameras."""
    from dreamedit3d_core.world.edits import truth_asset

    return render_assets([truth_asset(edit, source) for edit in edits], config)


def render_assets(assets: Sequence[Any], config: Any) -> list[Any]:
    import tempfile

    from dreamedit3d_core.render import render_many

    with tempfile.TemporaryDirectory(prefix="dreamedit3d-bench-render-") as tmp:
        folders = [asset.write(Path(tmp) / f"{i:04d}") for i, asset in enumerate(assets)]
        return list(render_many(folders, config.render.camera_set(), config.render))


def run_row(
    job: Job, name: str, row: Row, config: Any, glb: Path, edits: Sequence[Any], truths: Sequence[Any], samples: int
) -> list[dict[str, Any]]:
    """Sample every edit of the object under one row, merge every sample, score views and merged renders."""
    from dreamedit3d_core.evaluate.ground_truth import edit_succeeded, score_edit
    from dreamedit3d_core.ingest import IngestedAsset
    from dreamedit3d_core.merge import merge_edit
    from dreamedit3d_core.mvdiffusion import EditConfig
    from tasks.artifacts import ASSET, CAMERAS, COMPONENTS, MASKS, RENDERS, VIEWS

    store = str(Path(job.work) / "store")
    through_store = row.personalisation != "none"  # "none": the sampler called on the base model directly
    refs = run_stages("finetune" if through_store and config.personalize else "mask", glb, store, config)
    seconds = {stage: ref.seconds for stage, ref in refs.items() if ref.status == "computed"}
    artifact = {stage: refs[stage] for stage in refs}
    from storage import ArtifactStore

    catalog = ArtifactStore(store)
    components = COMPONENTS.load(catalog.get(artifact["mask"].key))
    part_token = {part: token for token, parts in zip(components["token"], components["part_ids"], strict=True) for part in parts}
    if sorted(part_token) != list(range(len(job.obj.parts))) or any(len(parts) != 1 for parts in components["part_ids"]):
        return [{"edit": e.kind, "skipped": "the components are not one per part"} for e in edits]
    tokens = [part_token[i] for i in range(len(job.obj.parts))]
    renders = RENDERS.load(catalog.get(artifact["render"].key))
    cameras = CAMERAS.load(catalog.get(artifact["render"].key))
    masks = MASKS.load(catalog.get(artifact["mask"].key))
    asset = IngestedAsset.read(ASSET.load(catalog.get(artifact["ingest"].key)))

    sampled = []
    for edit in edits:
        prompt = edit.prompt(tokens)
        began = time.perf_counter()
        if row.oracle:
            from dreamedit3d_core.world import canonical_caption

            views = draw_base(config, canonical_caption(edit.target), cameras, samples)
        elif through_store:
            edit_refs = run_stages("sample", glb, store, config, EditConfig(prompt=prompt, seed=0, samples=samples), refs)
            views = VIEWS.load(catalog.get(edit_refs["sample"].key)).views
        else:
            views = sample_base(config, prompt, cameras, masks, components, renders, samples)
        sampled.append((edit, prompt, views, time.perf_counter() - began))

    results = []
    merged_assets, merged_index = [], []
    for e, (edit, prompt, views, _) in enumerate(sampled):
        if row.oracle:
            continue
        for s, sample in enumerate(views):
            result = merge_edit(asset, sample, cameras, renders, masks, components["part_ids"], components["token"], prompt, config.merge)
            merged_assets.append(result.asset)
            merged_index.append((e, s, result))
    merged_renders = render_assets(merged_assets, config) if merged_assets else []
    by_edit: dict[tuple[int, int], tuple[Any, Any]] = {(e, s): (r, m) for (e, s, r), m in zip(merged_index, merged_renders, strict=True)}
    for e, (edit, prompt, views, sample_seconds) in enumerate(sampled):
        truth = truths[e]
        wanted = {part: colour for part, colour in zip(edit.parts, edit.colours, strict=True)}
        reshaped = list(edit.parts) if edit.kind == "swap" else []
        for s, sample in enumerate(views):
            entry: dict[str, Any] = {"edit": edit.kind, "prompt": prompt, "sample": s, "sample_seconds": sample_seconds / len(views)}
            if row.oracle:
                entry.update(oracle_scores(sample, edit))
            else:
                entry["views"] = score_edit(sample, truth.rgb_white, truth.part_id, wanted, edit.kept, reshaped=reshaped, hues=world_hues())
                merged, renders_m = by_edit[(e, s)]
                entry["merged"] = score_edit(renders_m.rgb_white, truth.rgb_white, truth.part_id, wanted, edit.kept, part_id=renders_m.part_id, reshaped=reshaped, hues=world_hues())
                entry["merge_kinds"] = {row_["token"]: row_["kind"] for row_ in merged.components if row_["edited"]}
                entry["success"] = edit_succeeded(entry["merged"])
                entry["views_success"] = edit_succeeded(entry["views"])
            entry["stage_seconds"] = seconds
            results.append(entry)
        if e == 0 and not row.oracle:
            save_sheet(job, name, edits, truths, sampled, by_edit)
    return results


_BASE_MODEL: dict[str, Any] = {}


def base_model(config: Any) -> Any:
    from dreamedit3d_core.mvdiffusion.loading import load_base_model

    key = json.dumps(config.model.model_dump(mode="json"), sort_keys=True)
    if key not in _BASE_MODEL:
        _BASE_MODEL.clear()
        _BASE_MODEL[key] = load_base_model(config.model)
    return _BASE_MODEL[key]


def draw_base(config: Any, caption: str, cameras: Any, samples: int) -> np.ndarray:
    """The base model's free draw of a caption: (S, V, H, W, 3)."""
    from dreamedit3d_core.mvdiffusion import EditConfig
    from dreamedit3d_core.mvdiffusion.sampling import sample_edit

    sampler = config.sample.model_copy(update={"local_edit": False, "regional_prompts": False})
    return sample_edit(base_model(config), EditConfig(prompt=caption, seed=0, samples=samples), cameras.mvdream_vectors(), sampler).views


def sample_base(config: Any, prompt: str, cameras: Any, masks: Any, components: Any, renders: Any, samples: int) -> np.ndarray:
    """The sampler on the base model (no tokens: initializer words only), as the sample stage runs it."""
    from dreamedit3d_core.mvdiffusion import EditConfig
    from dreamedit3d_core.mvdiffusion.sampling import sample_edit

    return sample_edit(
        base_model(config), EditConfig(prompt=prompt, seed=0, samples=samples), cameras.mvdream_vectors(), config.sample,
        component_masks=masks, tokens=components["token"],
        initializer_words=dict(zip(components["token"], components["initializer_word"], strict=True)),
        source_views=renders.rgb_white,
    ).views  # fmt: skip


def oracle_scores(views: np.ndarray, edit: Any) -> dict[str, Any]:
    """A free draw of the answer's caption: is each asked colour, and each kept colour, on its foreground?"""
    from dreamedit3d_core.evaluate.colour import colour_share
    from dreamedit3d_core.evaluate.image_metrics import silhouette

    foreground = silhouette(views)
    hues = world_hues()
    asked = {colour: colour_share(views, foreground, colour, hues=hues) or 0.0 for colour in edit.colours if colour in hues}
    kept = {edit.source.parts[i].colour: 0.0 for i in edit.kept if edit.source.parts[i].colour in hues}
    kept = {colour: colour_share(views, foreground, colour, hues=hues) or 0.0 for colour in kept}
    success = all(share >= ORACLE_MIN_SHARE for share in (*asked.values(), *kept.values()))
    return {"oracle": {"asked": asked, "kept": kept}, "success": success}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--half", choices=("tuning", "test", "textured"), default="tuning")
    parser.add_argument("--objects", type=int, default=None, help="only the first N objects of the half")
    parser.add_argument("--rows", nargs="+", default=None, help="rows to run (default: the half's; --list-rows)")
    parser.add_argument("--samples", type=int, default=None, help="samples per edit, every row (default: default_samples)")
    parser.add_argument("--workers", type=int, default=1, help="objects run in parallel processes")
    parser.add_argument("--work", default="world-edits-bench", help="store and cached scores (resumable)")
    parser.add_argument("--model", default=None, help="a world model folder (default: the shipped weights)")
    parser.add_argument("--list-rows", action="store_true")
    parser.add_argument("--sheet", default=None, metavar="ROW", help="also draw ROW's successes and failures into one picture")
    parser.add_argument("--write-split", action="store_true", help=f"write {SPLIT_FILE.name} (once)")
    parser.add_argument("--cached-only", action="store_true", help="report the scores already cached (while a run goes on), compute nothing")
    parser.add_argument("--results", default=str(RESULTS.parent), help="folder for the tables and the picture sheet")
    args = parser.parse_args()
    if args.list_rows:
        for name, row in ROWS.items():
            print(f"{name:28s} {row.label}")
        return
    if args.write_split:
        SPLIT_FILE.write_text(json.dumps(compute_split(), indent=1) + "\n")
        print(f"wrote {SPLIT_FILE}")
        return
    split = read_split()
    rows = args.rows or {"tuning": TUNING_ROWS, "test": TEST_ROWS, "textured": TEXTURED_ROWS}[args.half]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; --list-rows lists them")
    samples = {row: args.samples or default_samples(args.half, row) for row in rows}
    ids = split[args.half][: args.objects]
    objects = dict(benchmark_objects() + textured_objects())
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    jobs = [Job(index, objects[index], rows, str(Path(args.work).resolve()), samples, args.model, cached_only=args.cached_only) for index in ids]
    started = time.perf_counter()
    results = run_jobs(run_object, jobs, args.workers)
    elapsed = time.perf_counter() - started
    heading = (
        f"## {args.half} half: {len(jobs)} objects x 3 edits, samples per row as in the table\n\n"
        f"`python benchmarks/bench_world_edits.py --half {args.half}{f' --samples {args.samples}' if args.samples else ''} --rows {' '.join(rows)}`, "
        f"{args.workers} worker(s), {elapsed:.0f} s (cached rows cost nothing). Success: every edited part in its asked "
        "colour on >= 0.5 of its pixels, kept parts >= 35 dB, a swapped part's silhouette IoU >= 0.6, on Blender renders of the "
        "merged asset against the answer's; in brackets the same scores on the sampled views.\n\n"
    )
    text = heading + table(results, rows) + "\n\n" + per_object(results, rows) + "\n"
    folder = Path(args.results)
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"world_edits_{args.half}.md"
    out.write_text("# Edits of held-out parts-world objects, against the exact answer\n\nWritten by benchmarks/bench_world_edits.py.\n\n" + text)
    (folder / f"world_edits_{args.half}.json").write_text(json.dumps(results))
    if args.sheet:
        sheet = folder / f"world_edits_{args.half}_{args.sheet.replace('/', '_')}.png"
        print(f"wrote {results_sheet(results, args.sheet, Path(args.work), sheet)}")
    print(text)


if __name__ == "__main__":
    main()
