"""The class samples of prior preservation are work every asset of a library shares: drawn by the first
asset's finetune, stored once, read by every other asset's (the ledger says so), and the same samples a
finetune would have drawn by itself."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from dreamedit3d_core.config import pipeline_config
from flows.status import stage_status
from storage import ArtifactStore
from tasks.artifacts import CAMERAS
from tasks.catalog import EDIT
from tasks.running import SHARED_ASSET, run_stage
from tests.helpers import FAST

PRIOR = {"prior_preservation": True, "prior_images": 2, "prior_sample_steps": 2}
CONFIG = pipeline_config("tiny", {**FAST, "finetune": {**FAST["finetune"], **PRIOR}})


def finetune(asset: str, store: str) -> None:
    refs = {}
    for stage in EDIT.until("finetune"):
        refs[stage.name] = run_stage(stage, EDIT.call(stage, store=store, config=CONFIG, upstream=refs, source=asset))


def test_a_librarys_second_asset_reads_the_prior_samples_the_first_one_drew(
    chair: Path, tmp_path: Path, shared_assets: Path
) -> None:
    store = str(tmp_path / "store")
    finetune(str(chair), store)
    finetune(str(shared_assets / "good" / "two_objects.obj"), store)

    ledger = ArtifactStore(store).ledger.read().to_pylist()
    prior_rows = [row for row in ledger if row["stage"] == "prior"]
    assert [row["status"] for row in prior_rows] == ["computed", "cached"], prior_rows
    assert {row["asset_id"] for row in prior_rows} == {SHARED_ASSET} and len({row["key"] for row in prior_rows}) == 1
    shared = next(row for row in stage_status(store) if row["asset_id"] == SHARED_ASSET)
    assert list(shared["stages"]) == ["prior"] and shared["stages"]["prior"]["state"] == "done"  # `status` lists it
    finetunes = [row for row in ledger if row["stage"] == "finetune"]
    assert [row["status"] for row in finetunes] == ["computed", "computed"]  # two assets, one set of samples
    # and one base model: a process that runs many stages loads it once, hands each stage a copy, and says so
    trained = [row for row in ledger if row["stage"] in ("invert", "finetune")]
    assert [json.loads(row["details"])["base_model"] for row in trained][1:] == ["reused"] * 3

    # what is shared is what a finetune draws by itself: the base model's samples for these settings
    from dreamedit3d_core.mvdiffusion.loading import load_base_model
    from dreamedit3d_core.personalize import prior_latents_for

    samples = ArtifactStore(store).get(prior_rows[0]["key"]).tensors("tensors")["latents"]
    render = next(row for row in ledger if row["stage"] == "render")

    camera_vectors = CAMERAS.load(ArtifactStore(store).get(render["key"])).mvdream_vectors()
    model = load_base_model(CONFIG.model)
    drawn = prior_latents_for(model, torch.as_tensor(camera_vectors, dtype=torch.float32), CONFIG.finetune)
    assert samples.shape == tuple(drawn.shape) and samples.shape[0] == PRIOR["prior_images"]
    assert torch.allclose(torch.from_numpy(samples), drawn, atol=1e-5)

    # other prior settings are other samples: a new shared artifact, computed, not read
    other = pipeline_config("tiny", {**FAST, "finetune": {**FAST["finetune"], **PRIOR, "prior_guidance_scale": 3.0}})
    refs = {}
    for stage in EDIT.until("finetune"):
        refs[stage.name] = run_stage(stage, EDIT.call(stage, store=store, config=other, upstream=refs, source=str(chair)))
    statuses = [row["status"] for row in ArtifactStore(store).ledger.read().to_pylist() if row["stage"] == "prior"]
    assert statuses == ["computed", "cached", "computed"]


def test_the_kept_base_model_is_never_the_one_a_stage_trains() -> None:
    from tasks.models import base_model

    first, _ = base_model(CONFIG.model)
    before = {name: p.detach().clone() for name, p in first.unet.named_parameters()}
    for p in first.unet.parameters():
        p.data.add_(1.0)  # a stage trains its copy in place
    second, how = base_model(CONFIG.model)
    assert how == "reused" and second is not first
    assert all(torch.equal(p, before[name]) for name, p in second.unet.named_parameters())
