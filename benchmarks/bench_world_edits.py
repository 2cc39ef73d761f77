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
import statistics
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

RESULTS = Path(__file__).resolve().parent / "results" / "world_edits.md"
PICTURES = "pictures"  # per object and row, under the work folder; the sheets of chosen ones go beside the tables
SPLIT_FILE = Path(__file__).resolve().parent / "world_edit_split.json"
TUNING_OBJECTS, TEST_OBJECTS, SPLIT_SEED = 12, 32, 26
DEMO_SEED = 2026  # the demo object: drawn from the test half with this seed
ORACLE_MIN_SHARE = 0.15
SCORING_VERSION = 2  # bump when the scoring below changes: cached scores of an older one are not reused


def world_hues() -> dict[str, float]:
    """The hues of the world's own colours (brown has none): a pixel is told apart from these only, not from
    colours the world does not have (gold would narrow orange's window to 9 degrees)."""
    from dreamedit3d_core.evaluate.colour import COLOUR_HUES
    from dreamedit3d_core.world import COLOUR_WORDS

    return {colour: COLOUR_HUES[colour] for colour in COLOUR_WORDS if colour in COLOUR_HUES}

# Personalisations, each spelled out in full (the world preset's values change as it is tuned; a row does not)
PLAIN_PERSONALISATION: dict[str, Any] = {
    "personalize": True,
    "invert": {"attribute_words": False, "token_norm": "learned"},
    "finetune": {"prior_preservation": False, "attribute_words": False, "unet_weights": "all"},
}
PRIOR = {"finetune": {"prior_preservation": True}}
ATTRIBUTES = {"invert": {"attribute_words": True}, "finetune": {"attribute_words": True}}
NORM = {"invert": {"token_norm": "initializer"}}
KV = {"finetune": {"unet_weights": "cross_attention_kv"}}
FAST: dict[str, Any] = {
    "personalize": True,
    "invert": {"mixed_precision": "bf16", "steps": 100},
    "finetune": {"mixed_precision": "bf16", "steps": 150, "checkpoint_every": 50, "prior_images": 8, "prior_sample_steps": 25},
}


def _with(*parts: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = PLAIN_PERSONALISATION
    for part in parts:
        result = merge(result, part)
    return result


PERSONALISATIONS: dict[str, dict[str, Any] | None] = {
    "none": None,  # the base model: no tokens, no fine-tuning
    "paper": _with(),
    "prior": _with(PRIOR),
    "attr": _with(PRIOR, ATTRIBUTES),
    "norm": _with(PRIOR, NORM),
    "kv": _with(PRIOR, KV),
    "attr+norm": _with(PRIOR, ATTRIBUTES, NORM),
    "attr+kv": _with(PRIOR, ATTRIBUTES, KV),
    "attr+norm+kv": _with(PRIOR, ATTRIBUTES, NORM, KV),
    "preset": {},  # the world preset as shipped (no personalisation: `personalize: false`)
    "personalised": {"personalize": True},  # the world preset's personalisation, turned on (the previous preset)
    # that personalisation made cheaper (the night's throughput): bf16 autocast in both phases, fewer steps,
    # fewer and shorter prior samples; judged here against the preset before a preset takes them
    "fast": FAST,
    "faster": merge(FAST, {"invert": {"steps": 50}, "finetune": {"steps": 75, "checkpoint_every": 25}}),
}
# Samplers, each spelled out in full over the paper's (the library's defaults), for the same reason
PAPER_SAMPLER: dict[str, Any] = {
    "local_edit": False, "regional_prompts": False, "region_words": "token", "known_region": "plain_prompt",
    "region_context": "object", "local_edit_grow": 1, "shape_edit_grow": 3, "guidance_scale": 5.0,
}  # fmt: skip
SAMPLERS: dict[str, dict[str, Any]] = {
    "free": {"local_edit": False, "regional_prompts": False},
    "local-plain": {"local_edit": True, "regional_prompts": False, "known_region": "plain_prompt"},
    "local-source": {"local_edit": True, "regional_prompts": False, "known_region": "source"},
    "regional-token-plain": {"local_edit": True, "regional_prompts": True, "region_words": "token", "known_region": "plain_prompt"},
    "regional-token-source": {"local_edit": True, "regional_prompts": True, "region_words": "token", "known_region": "source"},
    "regional-word-plain": {"local_edit": True, "regional_prompts": True, "region_words": "initializer", "known_region": "plain_prompt"},
    "regional-word-source": {"local_edit": True, "regional_prompts": True, "region_words": "initializer", "known_region": "source"},
    "regional-both-source": {"local_edit": True, "regional_prompts": True, "region_words": "token_and_initializer", "known_region": "source"},
    "preset": {},
}
WORD_SOURCE = SAMPLERS["regional-word-source"]
SAMPLERS.update({  # the regional sampler's own settings, tuned on the tuning half
    "word-grow0": {**WORD_SOURCE, "local_edit_grow": 0},
    "word-grow2": {**WORD_SOURCE, "local_edit_grow": 2},
    "word-g7.5": {**WORD_SOURCE, "guidance_scale": 7.5},
    "word-g10": {**WORD_SOURCE, "guidance_scale": 10.0},
    "word-shape1": {**WORD_SOURCE, "shape_edit_grow": 1},
    "word-shape2": {**WORD_SOURCE, "shape_edit_grow": 2},
    "word-alone": {**WORD_SOURCE, "region_context": "alone"},
    "word-alone-grow0": {**WORD_SOURCE, "region_context": "alone", "local_edit_grow": 0},
    "word-alone-grow0-shape1": {**WORD_SOURCE, "region_context": "alone", "local_edit_grow": 0, "shape_edit_grow": 1},
    "word-alone-grow0-shape2": {**WORD_SOURCE, "region_context": "alone", "local_edit_grow": 0, "shape_edit_grow": 2},
})
# the sampler chosen on the tuning half with the base model (regions drawn alone, new shapes grown one cell), with
# each kind of region words: the personalisations are compared under it
CHOSEN = {**WORD_SOURCE, "region_context": "alone", "local_edit_grow": 1, "shape_edit_grow": 1}
SAMPLERS.update({
    "chosen-word": CHOSEN,
    "chosen-token": {**CHOSEN, "region_words": "token"},
    "chosen-both": {**CHOSEN, "region_words": "token_and_initializer"},
    "chosen-word-25": {**CHOSEN, "steps": 25},  # half the sampling steps (the night's throughput)
})
SAMPLERS = {name: sampler if name == "preset" else {**PAPER_SAMPLER, **sampler} for name, sampler in SAMPLERS.items()}


@dataclass(frozen=True)
class Row:
    label: str
    personalisation: str
    sampler: str
    oracle: bool = False  # the base model draws the answer's caption freely


ROWS: dict[str, Row] = {
    "paper": Row("the paper's recipe (free draw of the edit prompt)", "paper", "free"),
    "paper+local": Row("paper + local edit (plain prompt outside)", "paper", "local-plain"),
    "prior": Row("paper + prior preservation", "prior", "free"),
    "prior+local": Row("paper + prior + local edit (the previous world preset)", "prior", "local-plain"),
    "prior+regional-token": Row("prior + regional prompts, token words, source outside", "prior", "regional-token-source"),
    "prior+regional-word": Row("prior + regional prompts, initializer words, source outside", "prior", "regional-word-source"),
    "attr+regional-token": Row("prior + attribute words + regional token, source outside", "attr", "regional-token-source"),
    "attr+regional-word": Row("prior + attribute words + regional word, source outside", "attr", "regional-word-source"),
    "norm+regional-token": Row("prior + token norm + regional token, source outside", "norm", "regional-token-source"),
    "kv+regional-token": Row("prior + K/V-only phase 2 + regional token, source outside", "kv", "regional-token-source"),
    "kv+regional-word": Row("prior + K/V-only phase 2 + regional word, source outside", "kv", "regional-word-source"),
    "attr+norm+regional-token": Row("prior + attribute words + token norm + regional token", "attr+norm", "regional-token-source"),
    "attr+kv+regional-token": Row("prior + attribute words + K/V-only + regional token", "attr+kv", "regional-token-source"),
    "all+regional-token": Row("prior + attribute words + token norm + K/V-only + regional token", "attr+norm+kv", "regional-token-source"),
    "all+regional-both": Row("prior + attribute words + token norm + K/V-only + regional token and word", "attr+norm+kv", "regional-both-source"),
    "kv+regional-both": Row("prior + K/V-only phase 2 + regional token and word, source outside", "kv", "regional-both-source"),
    "attr+regional-both": Row("prior + attribute words + regional token and word, source outside", "attr", "regional-both-source"),
    "all+regional-word": Row("prior + attribute words + token norm + K/V-only + regional word", "attr+norm+kv", "regional-word-source"),
    # the world preset as shipped (no personalisation) and its personalisation turned on, under the preset's sampler
    # and its other settings
    "preset": Row("the world preset (no personalisation)", "preset", "preset"),
    "personalised": Row("the world preset's personalisation (the previous world preset)", "personalised", "preset"),
    "personalised/free": Row("world preset's personalisation, free draw", "personalised", "free"),
    "personalised/local-plain": Row("world preset's personalisation, local edit, plain prompt outside", "personalised", "local-plain"),
    "personalised/local-source": Row("world preset's personalisation, local edit, source outside", "personalised", "local-source"),
    "personalised/token-plain": Row("world preset's personalisation, regional token, plain prompt outside", "personalised", "regional-token-plain"),
    "personalised/token-source": Row("world preset's personalisation, regional token, source outside", "personalised", "regional-token-source"),
    "personalised/word-plain": Row("world preset's personalisation, regional word, plain prompt outside", "personalised", "regional-word-plain"),
    "personalised/chosen-token": Row("world preset's personalisation, regions alone, token words", "personalised", "chosen-token"),
    "personalised/chosen-both": Row("world preset's personalisation, regions alone, token and initializer word", "personalised", "chosen-both"),
    "personalised/word-source": Row("world preset's personalisation, regional word, source outside", "personalised", "regional-word-source"),
    # no personalisation
    "base+regional-word": Row("no personalisation: base model, regional word, source outside", "none", "regional-word-source"),
    "base+word-grow0": Row("no personalisation, regional word, regions not grown", "none", "word-grow0"),
    "base+word-grow2": Row("no personalisation, regional word, regions grown 2 cells", "none", "word-grow2"),
    "base+word-g7.5": Row("no personalisation, regional word, guidance 7.5", "none", "word-g7.5"),
    "base+word-g10": Row("no personalisation, regional word, guidance 10", "none", "word-g10"),
    "base+word-shape1": Row("no personalisation, regional word, new shapes grown 1 cell", "none", "word-shape1"),
    "base+word-shape2": Row("no personalisation, regional word, new shapes grown 2 cells", "none", "word-shape2"),
    "base+word-alone": Row("no personalisation, regional word drawn alone", "none", "word-alone"),
    "base+word-alone-grow0": Row("no personalisation, regional word drawn alone, regions not grown", "none", "word-alone-grow0"),
    "base+word-alone-grow0-shape1": Row("no personalisation, regional word drawn alone, not grown, new shapes 1 cell", "none", "word-alone-grow0-shape1"),
    "base+word-alone-grow0-shape2": Row("no personalisation, regional word drawn alone, not grown, new shapes 2 cells", "none", "word-alone-grow0-shape2"),
    "fast": Row("the world preset's personalisation, bf16, invert 100 steps, finetune 150, prior 8 samples of 25 steps", "fast", "preset"),
    "faster": Row("the world preset's personalisation, bf16, invert 50 steps, finetune 75, prior 8 samples of 25 steps", "faster", "preset"),
    "fast/steps25": Row("the 'fast' personalisation, sampled in 25 steps", "fast", "chosen-word-25"),
    "faster/steps25": Row("the 'faster' personalisation, sampled in 25 steps", "faster", "chosen-word-25"),
    "base+chosen-word": Row("no personalisation: base model, regions alone, initializer words", "none", "chosen-word"),
    "prior+chosen-word": Row("prior + regions alone, initializer words", "prior", "chosen-word"),
    "attr+chosen-word": Row("prior + attribute words + regions alone, initializer words", "attr", "chosen-word"),
    "kv+chosen-word": Row("prior + K/V-only + regions alone, initializer words", "kv", "chosen-word"),
    "attr+kv+chosen-word": Row("prior + attribute words + K/V-only + regions alone, initializer words", "attr+kv", "chosen-word"),
    "all+chosen-word": Row("prior + attribute words + token norm + K/V-only + regions alone, initializer words", "attr+norm+kv", "chosen-word"),
    "kv+chosen-token": Row("prior + K/V-only + regions alone, token words", "kv", "chosen-token"),
    "attr+kv+chosen-token": Row("prior + attribute words + K/V-only + regions alone, token words", "attr+kv", "chosen-token"),
    "all+chosen-token": Row("prior + attribute words + token norm + K/V-only + regions alone, token words", "attr+norm+kv", "chosen-token"),
    "kv+chosen-both": Row("prior + K/V-only + regions alone, token and initializer word", "kv", "chosen-both"),
    "all+chosen-both": Row("prior + attribute words + token norm + K/V-only + regions alone, token and initializer word", "attr+norm+kv", "chosen-both"),
    "oracle": Row("oracle: base model draws the answer's caption (foreground colours)", "none", "free", oracle=True),
}
# the tuning half: the personalisations under the chosen sampler (the sampler's own rows: base+word-*, --list-rows)
TUNING_ROWS = ["base+chosen-word", "all+chosen-word", "kv+chosen-word", "attr+chosen-word", "prior+chosen-word",
               "all+chosen-token", "kv+chosen-token", "all+chosen-both", "kv+chosen-both", "paper", "paper+local", "prior",
               "prior+local"]  # fmt: skip
# the test half: the Done-when rows first (each object gets them all before the next object starts)
TEST_ROWS = ["preset", "personalised", "personalised/chosen-token", "base+chosen-word", "oracle", "paper", "paper+local", "personalised/chosen-both",
             "personalised/free", "personalised/local-plain", "personalised/local-source", "personalised/token-plain", "personalised/token-source",
             "personalised/word-plain", "personalised/word-source"]  # fmt: skip
TEXTURED_ROWS = ["base+chosen-word", "preset", "personalised", "personalised/chosen-token", "personalised/word-plain", "personalised/token-plain"]
# Samples per edit. On the test half the `world` preset gets 3 (the Done-when numbers); the other rows 1, the
# budget of a 2-core CPU (a sampling row costs about 25 minutes per sample over 32 objects there): `--samples 3`
# runs every row with 3 where there is the time (a GPU).
TEST_SAMPLES = {"preset": 3, "personalised": 3}


def default_samples(half: str, row: str) -> int:
    return TEST_SAMPLES.get(row, 1) if half == "test" else 1


# ---- objects and the split ---------------------------------------------------------------------------------


def benchmark_objects() -> list[tuple[int, Any]]:
    """(id, object): the first TUNING + TEST held-out objects with 2 or 3 parts (id = index among held-out objects;
    ids below 64 are the world dataset's own held-out objects, e.g. 44 is `dreamedit3d world example --index 44`)."""
    from dreamedit3d_core.world import WorldDatasetConfig
    from dreamedit3d_core.world.objects import held_out_objects

    dataset = WorldDatasetConfig()
    objects = held_out_objects(400, dataset.objects, dataset.held_out, dataset.seed, dataset.world)
    chosen = [(index, obj) for index, obj in enumerate(objects) if 2 <= len(obj.parts) <= 3]
    return chosen[: TUNING_OBJECTS + TEST_OBJECTS]


TEXTURED_OBJECTS = 4


def textured_objects() -> list[tuple[int, Any]]:
    """(id, object): the next held-out objects with 2 or 3 parts after the benchmark's, with their last part
    striped (bands of its colour and white): a look no colour word says, never in the world model's training."""
    import dataclasses

    from dreamedit3d_core.world import WorldDatasetConfig
    from dreamedit3d_core.world.objects import held_out_objects

    dataset = WorldDatasetConfig()
    objects = held_out_objects(400, dataset.objects, dataset.held_out, dataset.seed, dataset.world)
    chosen = [(index, obj) for index, obj in enumerate(objects) if 2 <= len(obj.parts) <= 3]
    later = chosen[TUNING_OBJECTS + TEST_OBJECTS : TUNING_OBJECTS + TEST_OBJECTS + TEXTURED_OBJECTS]
    return [
        (index, dataclasses.replace(obj, parts=(*obj.parts[:-1], dataclasses.replace(obj.parts[-1], pattern="striped"))))
        for index, obj in later
    ]


def compute_split() -> dict[str, Any]:
    """The split, drawn once with SPLIT_SEED: which object ids tune and which test, with their captions."""
    from dreamedit3d_core.world import canonical_caption

    objects = benchmark_objects()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(objects))
    tuning = sorted(objects[i][0] for i in order[:TUNING_OBJECTS])
    test = sorted(objects[i][0] for i in order[TUNING_OBJECTS:])
    captions = {str(index): canonical_caption(obj) for index, obj in objects}
    demo = int(np.random.default_rng(DEMO_SEED).choice(test))
    textured = [index for index, _ in textured_objects()]
    captions.update({str(index): canonical_caption(obj) + " (the last part striped)" for index, obj in textured_objects()})
    return {"seed": SPLIT_SEED, "tuning": tuning, "test": test, "textured": textured, "demo": demo, "captions": captions}


def read_split() -> dict[str, Any]:
    """The written-down split; refuses to run when the objects no longer match it."""
    split = json.loads(SPLIT_FILE.read_text())
    if split != compute_split():
        raise SystemExit(f"{SPLIT_FILE} does not match the objects drawn now: the world or its held-out stream changed")
    return split


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
    from dreamedit3d_core.world.edits import benchmark_edits, truth_asset

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


def save_sheet(job: Job, name: str, edits: Sequence[Any], truths: Sequence[Any], sampled: Sequence[Any], merged: dict) -> None:
    """One picture per object and row: per edit, the answer, the first sample's views, its merged asset."""
    from PIL import Image, ImageDraw

    rows = []
    for e, (edit, prompt, views, _) in enumerate(sampled):
        strip = [np.concatenate(list(truths[e].rgb_white), axis=1), np.concatenate(list(views[0]), axis=1)]
        if (e, 0) in merged:
            strip.append(np.concatenate(list(merged[(e, 0)][1].rgb_white), axis=1))
        rows.append(np.concatenate(strip, axis=0))
    sheet = Image.fromarray(np.concatenate(rows, axis=0))
    sheet = sheet.resize((sheet.width * 2, sheet.height * 2), Image.NEAREST)
    canvas = Image.new("RGB", (sheet.width + 220, sheet.height), "white")
    canvas.paste(sheet, (220, 0))
    draw = ImageDraw.Draw(canvas)
    band = sheet.height // len(rows)
    for e, (edit, prompt, _, _) in enumerate(sampled):
        draw.text((4, e * band + 4), f"{edit.kind}", fill="black")
        for k, label in enumerate(("answer", "sampled views", "merged asset")):
            draw.text((4, e * band + 20 + k * band // 3), label, fill="black")
    path = Path(job.work) / PICTURES / name.replace("/", "_") / f"object_{job.index:03d}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


def results_sheet(results: Sequence[dict[str, Any]], row: str, work: Path, path: Path, count: int = 1, seed: int = 0) -> Path:
    """Successes and failures of one row side by side, drawn at random (seeded), from the per-object pictures:
    per edit the answer, the first sample's views and its merged asset, with the scores."""
    from PIL import Image, ImageDraw

    chosen = [r for r in results if r.get("row") == row and r.get("sample") == 0 and "success" in r and "merged" in r]
    rng = np.random.default_rng(seed)
    picks = []
    for kind in ("recolour", "recolour2", "swap"):  # of each kind of edit, a success and a failure where there are
        for outcome in (True, False):
            pool = [r for r in chosen if r["edit"] == kind and r["success"] == outcome]
            picks += [pool[i] for i in sorted(rng.choice(len(pool), size=min(count, len(pool)), replace=False))]
    bands = []
    for r in picks:
        sheet = Image.open(work / PICTURES / row.replace("/", "_") / f"object_{r['object']:03d}.png").convert("RGB")
        band = (sheet.height) // 3
        e = ["recolour", "recolour2", "swap"].index(r["edit"])
        crop = sheet.crop((220, e * band, sheet.width, (e + 1) * band))
        label = Image.new("RGB", (crop.width + 300, crop.height), "white")
        label.paste(crop, (300, 0))
        draw = ImageDraw.Draw(label)
        m = r["merged"]
        lines = [
            f"object {r['object']}: {'SUCCEEDED' if r['success'] else 'FAILED'}",
            r["prompt"].replace("a photo of ", ""),
            f"asked colour {m['colour_share']:.2f}",
            f"kept {m['kept_psnr']:.1f} dB" if m["kept_psnr"] is not None else "no kept part",
            f"shape IoU {m['shape_iou']:.2f}" if m["shape_iou"] is not None else "",
            "rows: answer, sampled views, merged asset",
        ]
        for k, text in enumerate(lines):
            draw.text((6, 10 + 18 * k), text, fill="black")
        bands.append(label)
    out = Image.new("RGB", (max(b.width for b in bands), sum(b.height for b in bands)), "white")
    y = 0
    for b in bands:
        out.paste(b, (0, y))
        y += b.height
    path.parent.mkdir(parents=True, exist_ok=True)
    out.save(path)
    return path


# ---- tables --------------------------------------------------------------------------------------------------


def summarise(rows: Sequence[dict[str, Any]]) -> str:
    done = [r for r in rows if "success" in r]
    return f"{sum(r['success'] for r in done)}/{len(done)} succeeded"


def _mean(values: Sequence[float | None], digits: int = 2) -> str:
    present = [v for v in values if v is not None]
    return f"{statistics.fmean(present):.{digits}f}" if present else "-"


def count(rows: Sequence[dict[str, Any]], kind: str, key: str = "success") -> str:
    chosen = [r for r in rows if r.get("edit") == kind and key in r]
    if not chosen:
        return "-"
    wins = sum(bool(r[key]) for r in chosen)
    return f"{wins}/{len(chosen)} ({wins / len(chosen):.0%})"


def table(results: Sequence[dict[str, Any]], rows: Sequence[str]) -> str:
    lines = [
        "| row | objects x samples | recolour: succeeded | two-part recolour: succeeded | shape swap: succeeded | asked colour, merged (views) | edited parts vs answer dB, merged (views) | kept PSNR dB, merged (views) | swap IoU, merged (views) | sampling s per edit |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in rows:
        chosen = [r for r in results if r.get("row") == name and "skipped" not in r]
        if not chosen:
            continue
        size = f"{len({r['object'] for r in chosen})} x {max(r.get('sample', 0) for r in chosen) + 1}"
        if ROWS[name].oracle:
            lines.append(
                f"| {ROWS[name].label} | {size} | {count(chosen, 'recolour')} | {count(chosen, 'recolour2')} | {count(chosen, 'swap')} | (foreground shares) | - | - | - | {_mean([r['sample_seconds'] for r in chosen], 1)} |"
            )
            continue

        def both(key: str, digits: int = 2, kinds: Sequence[str] = ("recolour", "recolour2", "swap")) -> str:
            picked = [r for r in chosen if r["edit"] in kinds]
            return f"{_mean([r['merged'].get(key) for r in picked], digits)} ({_mean([r['views'].get(key) for r in picked], digits)})"

        lines.append(
            f"| {ROWS[name].label} | {size} | {count(chosen, 'recolour')} | {count(chosen, 'recolour2')} | {count(chosen, 'swap')} "
            f"| {both('colour_share', kinds=('recolour', 'recolour2'))} | {both('edited_psnr', 1, kinds=('recolour', 'recolour2'))} "
            f"| {both('kept_psnr', 1)} | {both('shape_iou', kinds=('swap',))} "
            f"| {_mean([r['sample_seconds'] for r in chosen], 1)} |"
        )
    return "\n".join(lines)


def per_object(results: Sequence[dict[str, Any]], rows: Sequence[str]) -> str:
    lines = ["| object | caption | row | recolour | two-part recolour | shape swap |", "| --- | --- | --- | --- | --- | --- |"]
    for index in sorted({r["object"] for r in results}):
        for name in rows:
            chosen = [r for r in results if r["object"] == index and r.get("row") == name and "success" in r]
            if not chosen:
                continue

            def wins(kind: str) -> str:
                picked = [r for r in chosen if r["edit"] == kind]
                return f"{sum(r['success'] for r in picked)}/{len(picked)}" if picked else "-"

            lines.append(f"| {index} | {chosen[0]['caption']} | {name} | {wins('recolour')} | {wins('recolour2')} | {wins('swap')} |")
    return "\n".join(lines)


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
