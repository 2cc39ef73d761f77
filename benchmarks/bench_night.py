"""A night's throughput: a library of held-out world objects edited by `dreamedit3d batch`, as a studio runs it.

    .venv/bin/python benchmarks/bench_night.py [--objects 6] [--edits 2] [--concurrency 1 2] [--preset world]

The library: the first `--objects` objects of the edit benchmark's test half (benchmarks/world_edit_split.json,
never used to tune anything), each written as a GLB with `--edits` of its benchmark edits (one part recoloured,
two parts recoloured) in a YAML manifest. For each concurrency, from an empty store, the command line runs the
batch on the shared local Prefect server (`dreamedit3d batch MANIFEST --preset P --max-concurrency C`), then:
- the same batch again (every stage cached: what a re-run after a crash costs),
- the same library with one new edit per asset (the asset's own stages are reused: only the edit's stages run).
Measured per run: wall time, assets per hour, the ledger's compute seconds (each stage's own work: reading
inputs, the core, writing) and what is left of `wall x concurrency` (orchestration: Prefect, the store,
process start-up, waiting), per stage the compute seconds per asset, and the share of assets whose edits were
applied. The local server is started (`dreamedit3d server start`) before the first run and its start-up reported
on its own: a night starts it once, whatever the number of batches. Prints a table and writes it to
benchmarks/results/night.md (--results to change).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
CLI = [str(ROOT / ".venv" / "bin" / "dreamedit3d")]
EXTRA_COLOURS = ("purple", "orange", "teal", "pink", "brown")
STAGES = ("ingest", "render", "mask", "invert", "finetune", "prior", "sample", "merge", "evaluate")  # prior: inside finetune


def write_library(folder: Path, objects: int, edits: int, extra_edit: bool = False) -> Path:
    """GLBs of the first `objects` test-half objects and a manifest with `edits` prompts each (one more with
    `extra_edit`: its last part in a colour none of its prompts names)."""
    from world_edit_objects import benchmark_objects, read_split

    from dreamedit3d_core.world import write_world_asset
    from dreamedit3d_core.world.edits import benchmark_edits

    test = read_split()["test"][:objects]
    chosen = dict(benchmark_objects())
    rows = []
    for index in test:
        obj = chosen[index]
        glb = write_world_asset(obj, folder / f"object_{index:03d}.glb")
        tokens = [f"<asset{k}>" for k in range(len(obj.parts))]  # component k is part k for world objects
        prompts = [edit.prompt(tokens) for edit in benchmark_edits(obj, index)[:edits]]
        if extra_edit:  # the last part in a colour no prompt of the object asked for: a new edit
            colour = next(c for c in EXTRA_COLOURS if all(c not in prompt for prompt in prompts))
            prompts.append(f"a photo of {tokens[-1]} in {colour}")
        rows.append({"asset": glb.name, "edits": prompts})
    manifest = folder / ("manifest-more.yaml" if extra_edit else "manifest.yaml")
    manifest.write_text(yaml.safe_dump({"assets": rows}, sort_keys=False))
    return manifest


def run_batch(manifest: Path, store: Path, preset: str, concurrency: int, out: Path) -> dict[str, Any]:
    """One `dreamedit3d batch` through the command line; its wall time and summary."""
    command = [*CLI, "batch", str(manifest), "--preset", preset, "--store", str(store),
               "--max-concurrency", str(concurrency), "--out", str(out), "--json"]  # fmt: skip
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy(), timeout=6 * 3600)
    wall = time.perf_counter() - started
    if result.returncode not in (0, 3):  # 3: an edit was not applied (--fail-on-unapplied is off anyway)
        raise SystemExit(f"batch failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return {"wall_s": wall, "summary": json.loads(result.stdout)}


def start_server() -> str:
    """The shared local server up before any run is timed: how long that took, or that it was running."""
    status = subprocess.run([*CLI, "server", "status", "--json"], capture_output=True, text=True, timeout=60)
    if status.returncode == 0 and json.loads(status.stdout or "{}").get("running"):
        return "The local Prefect server was already running."
    started = time.perf_counter()
    subprocess.run([*CLI, "server", "start"], capture_output=True, text=True, timeout=300, check=True)
    return f"The local Prefect server was started first ({time.perf_counter() - started:.0f} s, once a night: not in the table)."


def ledger_since(store: Path, since: float) -> list[dict[str, Any]]:
    from storage import ArtifactStore

    rows = ArtifactStore(str(store)).ledger.read().to_pylist()
    return [row for row in rows if row["end"].timestamp() >= since]


def measure(name: str, manifest: Path, store: Path, preset: str, concurrency: int, work: Path) -> dict[str, Any]:
    since = time.time()
    outcome = run_batch(manifest, store, preset, concurrency, work / f"out-{name}")
    rows = ledger_since(store, since)
    computed = [row for row in rows if row["status"] == "computed"]
    assets = outcome["summary"]["completed"]
    # the shared prior samples are drawn inside the first finetune: its seconds are counted there already
    compute = sum(row["seconds"] for row in computed if row["stage"] != "prior")
    per_stage = {stage: sum(r["seconds"] for r in computed if r["stage"] == stage) / max(assets, 1) for stage in STAGES}
    verdicts = outcome["summary"].get("verdicts", {})
    applied, asked = verdicts.get("applied", 0), sum(verdicts.values())
    wall = outcome["wall_s"]
    return {
        "run": name, "concurrency": concurrency, "assets": assets, "wall_s": wall,
        "assets_per_hour": 3600 * assets / wall if wall else 0.0, "compute_s": compute,
        "orchestration_share": max(0.0, 1.0 - compute / (wall * concurrency)) if wall else 0.0,
        "per_stage": per_stage, "applied": f"{applied}/{asked}" if asked else "-",
        "prior_rows": [row["status"] for row in rows if row["stage"] == "prior"],
    }  # fmt: skip


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| run | concurrency | assets | wall s | assets / hour | compute s | orchestration share | applied | "
        + " | ".join(f"{stage} s/asset" for stage in STAGES) + " |",
        "| " + " | ".join(["---"] * (8 + len(STAGES))) + " |",
    ]
    for r in results:
        stages = " | ".join(f"{r['per_stage'][stage]:.1f}" for stage in STAGES)
        lines.append(
            f"| {r['run']} | {r['concurrency']} | {r['assets']} | {r['wall_s']:.0f} | {r['assets_per_hour']:.1f} | "
            f"{r['compute_s']:.0f} | {100 * r['orchestration_share']:.0f}% | {r['applied']} | {stages} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=6)
    parser.add_argument("--edits", type=int, default=2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--preset", default="world")
    parser.add_argument("--work", default=None, help="folder for the library and the stores, kept afterwards (default: a "
                        "temporary one); a store left there by an earlier run is emptied first")
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()

    header = (
        f"# A night's throughput\n\nWritten by `benchmarks/bench_night.py --objects {args.objects} --edits {args.edits} "
        f"--concurrency {' '.join(map(str, args.concurrency))} --preset {args.preset}` on {platform.machine()} with "
        f"{os.cpu_count()} CPU cores; `dreamedit3d batch` through the command line on the local Prefect server.\n\n"
    )
    header += start_server() + "\n\n"
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="dreamedit3d-night-") as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        manifest = write_library(work, args.objects, args.edits)
        more = write_library(work, args.objects, args.edits, extra_edit=True)
        for concurrency in args.concurrency:
            store = work / f"store-{concurrency}"
            if store.exists():  # this benchmark's own store from an earlier run in the same --work folder
                shutil.rmtree(store)
            for name, which in (("empty store", manifest), ("again, all cached", manifest), ("one new edit per asset", more)):
                result = measure(name, which, store, args.preset, concurrency, work)
                results.append(result)
                print(f"{name}, concurrency {concurrency}: {result['wall_s']:.0f} s, "
                      f"{result['assets_per_hour']:.1f} assets/h, orchestration {100 * result['orchestration_share']:.0f}%, "
                      f"prior {result['prior_rows']}", flush=True)  # fmt: skip
                write_results(Path(args.results), header, results)  # after every run: a stopped run keeps its rows
    print(write_results(Path(args.results), header, results))


def write_results(folder: Path, header: str, results: list[dict[str, Any]]) -> str:
    first = [r for r in results if r["run"] == "empty store"]
    text = header + table(results)
    if len(first) > 1 and first[0]["assets_per_hour"]:
        speedup = first[1]["assets_per_hour"] / first[0]["assets_per_hour"]
        text += f"\nA second concurrent asset: {speedup:.2f}x the assets per hour of one.\n"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "night.md").write_text(text)
    return text


if __name__ == "__main__":
    main()
