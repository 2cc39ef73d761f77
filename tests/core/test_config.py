"""One preset mechanism: YAML files in the package, and `PipelineConfig` always starts from one of them."""

from __future__ import annotations

import pytest
import yaml

from dreamedit3d_core.config import PRESETS_DIR, PipelineConfig, pipeline_config, preset_names, preset_settings
from dreamedit3d_core.execution import execution_paths, key_settings
from dreamedit3d_core.world.captions import world_captions


def test_the_default_config_is_the_tiny_preset() -> None:
    assert PipelineConfig() == pipeline_config("tiny")
    assert PipelineConfig().preset == "tiny"
    assert PipelineConfig().invert.steps == 4  # the preset's, not the class default (400)


def test_presets_are_the_yaml_files_of_the_package() -> None:
    assert preset_names() == sorted(path.stem for path in PRESETS_DIR.glob("*.yaml")) == ["mvdream", "tiny", "world"]
    for name in preset_names():
        assert preset_settings(name) == yaml.safe_load((PRESETS_DIR / f"{name}.yaml").read_text())


def test_naming_a_preset_in_the_config_is_the_same_as_choosing_it() -> None:
    world = pipeline_config("world")
    assert PipelineConfig(preset="world") == world
    assert pipeline_config("tiny", {"preset": "world"}) == world  # an override file may name its preset
    assert PipelineConfig.model_validate(world.model_dump()) == world  # a dumped config reads back unchanged


def test_overrides_merge_into_the_preset_section_by_section() -> None:
    config = pipeline_config("world", {"invert": {"steps": 3}})
    assert config.invert.steps == 3
    assert config.invert.lr == pipeline_config("world").invert.lr  # the rest of the section is the preset's
    assert config.finetune == pipeline_config("world").finetune


def test_the_world_presets_prior_prompts_are_the_reproducible_world_captions() -> None:
    assert list(pipeline_config("world").finetune.prior_prompts) == world_captions(16, seed=1)


def test_without_personalisation_only_the_word_sampler_is_accepted() -> None:
    """The world preset skips personalisation; turned on, its personalisation settings are there to run."""
    assert pipeline_config("world").personalize is False and pipeline_config("tiny").personalize is True
    assert pipeline_config("world", {"personalize": True}).finetune.prior_preservation
    with pytest.raises(ValueError, match=r"personalize: false .* knows no tokens.*got sample.region_words: 'token'"):
        pipeline_config("world", {"sample": {"region_words": "token"}})
    with pytest.raises(ValueError, match=r"got sample.local_edit: False, sample.regional_prompts: False"):
        pipeline_config("tiny", {"personalize": False})


def test_an_unknown_preset_or_key_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="unknown preset 'huge'; choose one of mvdream, tiny, world"):
        pipeline_config("huge")
    with pytest.raises(ValueError, match="image_sise"):
        pipeline_config("tiny", {"render": {"image_sise": 128}})


def test_every_preset_validates() -> None:
    for name in preset_names():
        extra = {"model": {"path": "/models/mvdream"}} if name == "mvdream" else {}
        assert pipeline_config(name, extra).preset == name


def test_execution_only_settings_are_marked_on_the_config_classes_and_left_out_of_keys() -> None:
    paths = set(execution_paths(PipelineConfig))
    assert {"render.threads", "render.device", "render.blender_executable", "render.timeout_s"} <= paths
    assert {"model.device", "finetune.checkpoint_every"} <= paths
    keyed = key_settings(PipelineConfig())
    assert "threads" not in keyed["render"] and "checkpoint_every" not in keyed["finetune"]
    assert keyed["render"]["image_size"] == 64 and "device" not in keyed["mask"]["sam"]
