"""Each stage's Prefect task on its own, called as a function (`task.fn(call)`): no flow, no server.

The stages run in catalog order on one tiny asset, each handed only the references of the stages it reads,
and every artifact they commit is read back through its noun, as the next stage reads it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dreamedit3d_core.config import pipeline_config
from dreamedit3d_core.ingest import IngestedAsset
from dreamedit3d_core.mvdiffusion import EditConfig
from storage import ArtifactStore
from tasks import artifacts as a
from tasks.catalog import EDIT
from tasks.prefect_task import prefect_task
from tasks.stage import StageRef
from tests.helpers import FAST

PROMPT = "a photo of <asset0> in red"


@pytest.fixture(scope="module")
def stages(tmp_path_factory: pytest.TempPathFactory, chair: Path) -> tuple[str, dict[str, StageRef]]:
    """Every stage of the chair, run once through its task's function; (store, stage name -> reference)."""
    store = f"memory://tasks-{tmp_path_factory.getbasetemp().name}"
    config = pipeline_config("tiny", FAST)
    refs: dict[str, StageRef] = {}
    for stage in EDIT.stages:
        call = EDIT.call(stage, store=store, config=config, upstream=refs, source=str(chair), edit=EditConfig(prompt=PROMPT))
        refs[stage.name] = prefect_task(stage).fn(call)
    return store, refs


def load(store: str, refs: dict[str, StageRef], noun: a.Noun) -> object:
    return noun.load(ArtifactStore(store).get(refs[EDIT.producer(noun).name].key))


def test_every_stage_computes_and_reports_its_artifacts(stages: tuple[str, dict[str, StageRef]]) -> None:
    store, refs = stages
    assert list(refs) == list(EDIT.stage_names)
    for name, ref in refs.items():
        assert ref.status == "computed" and ref.stage == name and ref.asset_id.startswith("chair-")
        assert set(ref.artifacts) == {noun.name for noun in EDIT.stage(name).makes}
        assert ArtifactStore(store).get(ref.key).digest == ref.digest


def test_ingest_and_render_give_the_asset_and_its_views(stages: tuple[str, dict[str, StageRef]]) -> None:
    store, refs = stages
    asset = IngestedAsset.read(load(store, refs, a.ASSET))
    assert len(asset.parts) == 6 and load(store, refs, a.PARTS)["name"] == [part.name for part in asset.parts]
    renders = load(store, refs, a.RENDERS)
    assert renders.rgba.shape == (4, 64, 64, 4) and set(np.unique(renders.part_id)) == {-1, 0, 1, 2, 3, 4, 5}
    cameras = load(store, refs, a.CAMERAS)
    assert cameras.num_views == 4 and list(cameras.azimuths) == [0.0, 90.0, 180.0, 270.0]
    assert load(store, refs, a.RENDERS_PREVIEW).startswith(b"\x89PNG")


def test_mask_invert_and_finetune_give_one_token_per_component(stages: tuple[str, dict[str, StageRef]]) -> None:
    store, refs = stages
    masks, components = load(store, refs, a.MASKS), load(store, refs, a.COMPONENTS)
    assert masks.shape == (6, 4, 64, 64) and masks.dtype == bool
    assert components["token"] == [f"<asset{i}>" for i in range(6)]
    tokens = sorted(path.name for path in Path(load(store, refs, a.TOKEN_EMBEDDINGS)).iterdir())
    assert tokens == sorted(f"asset{i}.safetensors" for i in range(6))
    assert set(load(store, refs, a.ATTENTION_ISOLATION)["token"]) == set(components["token"])
    assert (Path(load(store, refs, a.FINETUNED_MODEL)) / "multiview_diffusion.json").is_file()


def test_sample_reconstruct_and_evaluate_give_the_edit(stages: tuple[str, dict[str, StageRef]]) -> None:
    store, refs = stages
    views = load(store, refs, a.VIEWS)
    assert views.prompt == PROMPT and views.seed == 0 and views.views.shape == (1, 4, 64, 64, 3)
    assert refs["sample"].metadata == {"prompt": PROMPT, "samples": 1, "views": 4, "model": "personalised"}
    assert Path(load(store, refs, a.MESH)).read_bytes()[:4] == b"glTF"
    metrics = load(store, refs, a.METRICS)
    assert metrics["prompt"] == [PROMPT] and metrics["asset_id"] == [refs["ingest"].asset_id]
    report = Path(load(store, refs, a.REPORT)).read_text()
    assert "kept components" in report and "&lt;asset0&gt; main colour" in report  # the named part, escaped
    assert "kept parts, edited vs source (PSNR, dB)" in report and "higher is better" in report  # in words


def test_a_task_called_again_returns_the_committed_artifact(stages: tuple[str, dict[str, StageRef]]) -> None:
    store, refs = stages
    mask = EDIT.stage("mask")
    call = EDIT.call(mask, store=store, config=pipeline_config("tiny", FAST), upstream=refs)
    again = prefect_task(mask).fn(call)
    assert again.status == "cached" and again.key == refs["mask"].key and again.artifacts == refs["mask"].artifacts
