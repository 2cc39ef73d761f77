"""Are the learned tokens one per part? The referee's separability tests on personalised held-out world objects.

    python benchmarks/bench_world_separability.py --half test --personalisations paper personalised

For each object of the half (the split of bench_world_edits.py) and each personalisation (its rows' settings),
the personalised model (phase 1 + 2, through the same store as bench_world_edits.py, so nothing is trained
twice) draws, from the same noise:
  plain     "a photo of <asset0> and <asset1>": the asset as it learned it (the reference)
  swapped   the same prompt with the embeddings of the first and the last token exchanged: do the two parts
            swap appearance? Scored on objects whose two parts have different colours with a hue: the share of
            each part's pixels (where the source shows it) in the *other* part's colour, against its own
  dropped   the prompt without the last token: does only that part disappear? The share of its pixels left
            empty (white) and the share of the other parts' pixels still drawn
and the attention isolation after phase 2 (the share of each token's cross-attention inside its own part).
Prints a table and writes it to benchmarks/results/world_separability.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench_world_edits as edits  # noqa: E402
from world_edit_objects import benchmark_objects, read_split  # noqa: E402
from world_edit_rows import PERSONALISATIONS, Row  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "world_separability.md"
EMPTY = 12  # a pixel within this of white in every channel is empty ground


def separability(job: edits.Job, personalisation: str) -> dict[str, Any]:
    import torch

    from dreamedit3d_core.evaluate.colour import colour_share
    from dreamedit3d_core.mvdiffusion import MultiViewDiffusion
    from dreamedit3d_core.mvdiffusion.sampling import sample_views
    from dreamedit3d_core.personalize import get_token_embeddings, set_token_embeddings
    from dreamedit3d_core.world import write_world_asset
    from storage import ArtifactStore
    from tasks.artifacts import CAMERAS, COMPONENTS, FINETUNED_MODEL, MASKS

    row = Row(personalisation, personalisation, "free")
    config = edits.row_config(row, job.model)
    glb = write_world_asset(job.obj, Path(job.work) / "objects" / f"object_{job.index:03d}.glb")
    store = str(Path(job.work) / "store")
    refs = edits.run_stages("finetune", glb, store, config)
    catalog = ArtifactStore(store)
    components = COMPONENTS.load(catalog.get(refs["mask"].key))
    tokens, parts = components["token"], components["part_ids"]
    masks = MASKS.load(catalog.get(refs["mask"].key))  # (K, V, H, W)
    cameras = torch.from_numpy(CAMERAS.load(catalog.get(refs["render"].key)).mvdream_vectors())
    model = MultiViewDiffusion.from_pretrained(FINETUNED_MODEL.load(catalog.get(refs["finetune"].key)))
    sampler = config.sample.model_copy(update={"local_edit": False, "regional_prompts": False})
    hues = edits.world_hues()

    def draw(prompt: str) -> np.ndarray:
        return sample_views(model, [prompt], cameras, sampler, torch.Generator().manual_seed(0)).views[0]

    first, last = tokens[0], tokens[-1]
    plain = draw("a photo of " + " and ".join(tokens))
    dropped = draw("a photo of " + " and ".join(tokens[:-1]))
    drawn = (255 - dropped.min(axis=-1)) > EMPTY  # (V, H, W)
    result: dict[str, Any] = {
        "object": job.index,
        "personalisation": personalisation,
        "dropped_part_empty": float((~drawn[masks[-1]]).mean()),
        "other_parts_drawn": float(drawn[masks[:-1].any(axis=0)].mean()),
    }
    colours = [job.obj.parts[p[0]].colour for p in parts]
    if colours[0] != colours[-1] and colours[0] in hues and colours[-1] in hues:
        embeddings = get_token_embeddings(model, [first, last])
        set_token_embeddings(model, {first: embeddings[last], last: embeddings[first]})
        swapped = draw("a photo of " + " and ".join(tokens))
        set_token_embeddings(model, embeddings)

        def share(views: np.ndarray, k: int, colour: str) -> float:
            return colour_share(views, masks[k], colour, hues=hues) or 0.0

        result.update(
            own_before=statistics.fmean([share(plain, 0, colours[0]), share(plain, -1, colours[-1])]),
            other_before=statistics.fmean([share(plain, 0, colours[-1]), share(plain, -1, colours[0])]),
            own_after=statistics.fmean([share(swapped, 0, colours[0]), share(swapped, -1, colours[-1])]),
            other_after=statistics.fmean([share(swapped, 0, colours[-1]), share(swapped, -1, colours[0])]),
        )
    isolation = catalog.get(refs["finetune"].key).table("finetune_attention_isolation").to_pylist()
    after = [r["attention_isolation"] for r in isolation if r["phase"] == "after_finetune"]
    result["isolation"] = statistics.fmean(after) if after else None
    return result


def run(job: edits.Job) -> list[dict[str, Any]]:
    import torch

    torch.set_num_threads(1)
    out = []
    for personalisation in job.rows:
        row = Row(personalisation, personalisation, "free")
        digest = edits.row_digest(row, edits.row_config(row, job.model), 1)
        cache = Path(job.work) / "separability" / f"{personalisation}-{digest}" / f"{job.index:03d}.json"
        if cache.is_file():
            out.append(json.loads(cache.read_text()))
            continue
        result = separability(job, personalisation)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(result))
        out.append(result)
        print(f"object {job.index:3d} {personalisation}: {json.dumps(result)}", flush=True)
    return out


def table(results: list[dict[str, Any]], personalisations: list[str]) -> str:
    def mean(values: list[Any]) -> str:
        present = [v for v in values if v is not None]
        return f"{statistics.fmean(present):.2f}" if present else "-"

    lines = [
        "| personalisation | objects | swap: own colour before -> after | swap: other part's colour before -> after | parts that swapped | drop: dropped part left empty | drop: other parts still drawn | attention isolation after phase 2 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in personalisations:
        rows = [r for r in results if r["personalisation"] == name]
        swaps = [r for r in rows if "own_after" in r]
        swapped = sum(r["other_after"] > r["own_after"] for r in swaps)
        lines.append(
            f"| {name} | {len(rows)} | {mean([r.get('own_before') for r in swaps])} -> {mean([r.get('own_after') for r in swaps])} "
            f"| {mean([r.get('other_before') for r in swaps])} -> {mean([r.get('other_after') for r in swaps])} | {swapped}/{len(swaps)} "
            f"| {mean([r['dropped_part_empty'] for r in rows])} | {mean([r['other_parts_drawn'] for r in rows])} | {mean([r['isolation'] for r in rows])} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--half", choices=("tuning", "test"), default="test")
    parser.add_argument("--objects", type=int, default=None)
    parser.add_argument("--personalisations", nargs="+", default=["paper", "personalised"], choices=[p for p in PERSONALISATIONS if p not in ("none", "preset")])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--work", default="world-edits-bench", help="the store of bench_world_edits.py (shared)")
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    split = read_split()
    objects = dict(benchmark_objects())
    jobs = [edits.Job(i, objects[i], args.personalisations, str(Path(args.work).resolve()), {p: 1 for p in args.personalisations}, args.model) for i in split[args.half][: args.objects]]
    started = time.perf_counter()
    results = edits.run_jobs(run, jobs, args.workers)
    text = (
        f"## Separability, {args.half} half ({len(jobs)} objects)\n\n"
        f"`python benchmarks/bench_world_separability.py --half {args.half} --personalisations {' '.join(args.personalisations)}`, "
        f"{time.perf_counter() - started:.0f} s. Free draws of the personalised model from one seed; swaps scored on objects whose "
        "first and last parts have different hued colours.\n\n" + table(results, args.personalisations) + "\n"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("# Token separability\n\nWritten by benchmarks/bench_world_separability.py.\n\n" + text)
    print(text)


if __name__ == "__main__":
    main()
