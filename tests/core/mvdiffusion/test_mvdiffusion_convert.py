"""Converting MVDream's official checkpoint layout reproduces the official model's noise prediction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from dreamedit3d_core.mvdiffusion import MultiViewDiffusion, convert_mvdream_checkpoint
from tests.core.mvdiffusion.mvdream_reference import MultiViewUNetReference
from tests.core.mvdiffusion.official_checkpoint import TINY_UNET, official_checkpoint, official_yaml, relative_error


@pytest.fixture(scope="module")
def sd_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Stable Diffusion-style folder (vae/, text_encoder/, tokenizer/) with the tiny preset's parts.

    The text encoder is stored with the legacy `text_model.` key prefix, as real SD 2.1 folders are.
    """
    root = tmp_path_factory.mktemp("sd_base")
    tiny = MultiViewDiffusion.build_tiny(0)
    tiny.vae.save_pretrained(root / "vae")
    tiny.tokenizer.save_pretrained(root / "tokenizer")
    tiny.text_encoder.save_pretrained(root / "text_encoder")
    weights = root / "text_encoder" / "model.safetensors"
    save_file({f"text_model.{k}": v for k, v in load_file(weights).items()}, weights, metadata={"format": "pt"})
    return root


def write_official(directory: Path, unet_params: dict[str, Any], suffix: str = ".pt", seed: int = 0):
    torch.manual_seed(seed)
    reference = MultiViewUNetReference(**unet_params).eval()
    (directory / "sd-tiny-4view.yaml").write_text(yaml.safe_dump(official_yaml(unet_params)))
    state = official_checkpoint(reference)
    path = directory / f"sd-tiny-4view{suffix}"
    if suffix == ".safetensors":
        save_file(state, path)
    else:
        torch.save(state, path)
    return reference, path, directory / "sd-tiny-4view.yaml", state


@pytest.mark.parametrize(
    ("variant", "suffix"),
    [
        ({}, ".pt"),
        ({"use_linear_in_transformer": False, "transformer_depth": 2, "num_res_blocks": 1}, ".safetensors"),
    ],
    ids=["sd21-like-pt", "conv-proj-depth2-safetensors"],
)
def test_converted_unet_reproduces_official_prediction(
    tmp_path: Path, sd_base: Path, variant: dict[str, Any], suffix: str
) -> None:
    reference, checkpoint, config, _ = write_official(tmp_path, dict(TINY_UNET, **variant), suffix)
    model = convert_mvdream_checkpoint(checkpoint, config, sd_base, out_dir=tmp_path / "converted")
    assert model.num_views == 4 and model.config.image_size == 32 and model.config.latent_size == 8
    assert relative_error(reference, model) < 1e-5
    # the converted folder loads back (processors re-attached) and predicts the same
    reloaded = MultiViewDiffusion.from_pretrained(tmp_path / "converted")
    assert relative_error(reference, reloaded) < 1e-5
    # and is accepted as the checkpoint argument too
    again = convert_mvdream_checkpoint(tmp_path / "converted", None)
    assert relative_error(reference, again) < 1e-5


def test_leftover_official_weight_is_an_error(tmp_path: Path, sd_base: Path) -> None:
    _, path, config, state = write_official(tmp_path, TINY_UNET)
    state["model.diffusion_model.input_blocks.1.1.extra_gate.weight"] = torch.zeros(3)
    torch.save(state, path)
    expected = r"1 converted weights have no place in the UNet: .*official model\.diffusion_model\.input_blocks\.1\.1\."
    with pytest.raises(ValueError, match=expected):
        convert_mvdream_checkpoint(path, config, sd_base)


@pytest.mark.parametrize("removed", ["camera_embed.2.bias", "output_blocks.5.1.transformer_blocks.0.attn2.to_k.weight"])
def test_missing_official_weight_is_an_error(tmp_path: Path, sd_base: Path, removed: str) -> None:
    _, path, config, state = write_official(tmp_path, TINY_UNET)
    del state[f"model.diffusion_model.{removed}"]
    torch.save(state, path)
    with pytest.raises(ValueError, match="not filled|lacks the weights"):
        convert_mvdream_checkpoint(path, config, sd_base)


def test_unknown_top_level_weight_is_an_error(tmp_path: Path, sd_base: Path) -> None:
    _, path, config, state = write_official(tmp_path, TINY_UNET)
    state["model_ema.decay"] = torch.tensor(0.999)
    torch.save(state, path)
    with pytest.raises(ValueError, match="model_ema.decay"):
        convert_mvdream_checkpoint(path, config, sd_base)


def test_wrong_schedule_is_an_error(tmp_path: Path, sd_base: Path) -> None:
    _, path, config, state = write_official(tmp_path, TINY_UNET)
    state["alphas_cumprod"] = state["alphas_cumprod"] * 0.9
    torch.save(state, path)
    with pytest.raises(ValueError, match="alphas_cumprod do not match"):
        convert_mvdream_checkpoint(path, config, sd_base)


def test_config_mismatch_and_bad_inputs(tmp_path: Path, sd_base: Path) -> None:
    _, path, config, _ = write_official(tmp_path, TINY_UNET)
    wrong = official_yaml(dict(TINY_UNET, model_channels=64))
    (tmp_path / "wrong.yaml").write_text(yaml.safe_dump(wrong))
    with pytest.raises(ValueError, match="do not fit the UNet"):
        convert_mvdream_checkpoint(path, tmp_path / "wrong.yaml", sd_base)

    no_camera = official_yaml({k: v for k, v in TINY_UNET.items() if k != "camera_dim"})
    (tmp_path / "sd.yaml").write_text(yaml.safe_dump(no_camera))
    with pytest.raises(ValueError, match="camera_dim"):
        convert_mvdream_checkpoint(path, tmp_path / "sd.yaml", sd_base)

    with pytest.raises(ValueError, match="sd_base_dir"):
        convert_mvdream_checkpoint(path, config)
    with pytest.raises(ValueError, match="missing text_encoder/"):
        (tmp_path / "half_sd" / "vae").mkdir(parents=True)
        (tmp_path / "half_sd" / "tokenizer").mkdir()
        convert_mvdream_checkpoint(path, config, tmp_path / "half_sd")
    with pytest.raises(ValueError, match="does not exist"):
        convert_mvdream_checkpoint(tmp_path / "nope.pt", config, sd_base)


class TrainingCallback:
    """Stands for the arbitrary objects Lightning checkpoints pickle."""


def test_pickled_objects_are_refused(tmp_path: Path, sd_base: Path) -> None:
    _, _, config, _ = write_official(tmp_path, TINY_UNET)
    torch.save({"state_dict": {"a": torch.zeros(1)}, "callback": TrainingCallback()}, tmp_path / "bad.ckpt")
    with pytest.raises(ValueError, match="weights_only=True"):
        convert_mvdream_checkpoint(tmp_path / "bad.ckpt", config, sd_base)


def test_legacy_non_zip_pickle_and_lightning_wrapping(tmp_path: Path, sd_base: Path) -> None:
    reference, path, config, state = write_official(tmp_path, TINY_UNET)
    torch.save({"state_dict": state}, path, _use_new_zipfile_serialization=False)
    model = convert_mvdream_checkpoint(path, config, sd_base)
    assert relative_error(reference, model) < 1e-5
