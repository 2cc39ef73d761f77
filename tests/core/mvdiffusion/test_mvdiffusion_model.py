"""The bundle: tiny preset, tokenizer, save/load, helpers the personalisation stage uses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dreamedit3d_core.geometry.cameras import mvdream_orbit
from dreamedit3d_core.mvdiffusion import (
    CrossAttnProcessor,
    MultiViewAttnProcessor,
    MultiViewDiffusion,
    MultiViewDiffusionConfig,
    PerformanceConfig,
    build_word_tokenizer,
)
from dreamedit3d_core.mvdiffusion.vocabulary import PROMPT_WORDS


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    latents = torch.randn(8, 4, 16, 16, generator=g)  # 2 objects x 4 views
    cameras = torch.from_numpy(mvdream_orbit().mvdream_vectors()).repeat(2, 1)
    return latents, torch.tensor([999] * 4 + [10] * 4), cameras


def test_tokenizer_maps_real_words_to_distinct_single_ids() -> None:
    tokenizer = build_word_tokenizer()
    words = sorted(set(PROMPT_WORDS))
    ids = [tokenizer(w, add_special_tokens=False).input_ids for w in words]
    assert all(len(i) == 1 for i in ids), [w for w, i in zip(words, ids, strict=True) if len(i) != 1]
    assert len({i[0] for i in ids}) == len(words)
    assert tokenizer.unk_token_id not in {i[0] for i in ids} and tokenizer.pad_token_id not in {i[0] for i in ids}
    encoded = tokenizer("a photo of a duck wearing a red hat").input_ids
    assert tokenizer.convert_ids_to_tokens(encoded)[1:-1] == [
        "a</w>", "photo</w>", "of</w>", "a</w>", "duck</w>", "wearing</w>", "a</w>", "red</w>", "hat</w>"
    ]  # fmt: skip
    # unknown words fall back to letters rather than to the unknown token
    assert tokenizer.unk_token_id not in tokenizer("zyx", add_special_tokens=False).input_ids


def test_build_tiny_is_seeded() -> None:
    a, b, c = MultiViewDiffusion.build_tiny(0), MultiViewDiffusion.build_tiny(0), MultiViewDiffusion.build_tiny(1)
    for name, tensor in a.unet.state_dict().items():
        assert torch.equal(tensor, b.unet.state_dict()[name]), name
    assert torch.equal(a.text_encoder.get_input_embeddings().weight, b.text_encoder.get_input_embeddings().weight)
    assert not torch.equal(a.unet.conv_in.weight, c.unet.conv_in.weight)
    state = torch.random.get_rng_state()
    MultiViewDiffusion.build_tiny(5)
    assert torch.equal(state, torch.random.get_rng_state()), "building must not move the global RNG"


def test_tiny_preset_shapes() -> None:
    model = MultiViewDiffusion.build_tiny(0)
    assert model.num_views == 4 and model.config.image_size == 64 and model.config.latent_size == 16
    assert model.unet.class_embedding.linear_1.in_features == 16
    embeds = model.encode_prompts(["a photo of a duck", "a red hat"])
    assert embeds.shape == (2, 77, 32)
    images = torch.rand(4, 3, 64, 64) * 2 - 1
    latents = model.encode_images(images, generator=torch.Generator().manual_seed(0))
    assert latents.shape == (4, 4, 16, 16)
    assert model.decode_latents(latents).shape == (4, 3, 64, 64)


@torch.no_grad()
def test_save_and_load_round_trip(tmp_path: Path) -> None:
    model = MultiViewDiffusion.build_tiny(3)
    latents, t, cameras = _inputs()
    embeds = model.encode_prompts(["a photo of a duck"] * 4 + ["a blue chair"] * 4)
    expected = model.noise_prediction(latents, t, embeds, cameras)

    model.save_pretrained(tmp_path / "bundle")
    for part in ("unet", "vae", "text_encoder"):
        assert list((tmp_path / "bundle" / part).glob("*.safetensors")), part
    assert load_file(tmp_path / "bundle" / "unet" / "diffusion_pytorch_model.safetensors")
    saved = json.loads((tmp_path / "bundle" / "multiview_diffusion.json").read_text())
    assert saved["num_views"] == 4 and saved["image_size"] == 64

    loaded = MultiViewDiffusion.from_pretrained(tmp_path / "bundle")
    processors = loaded.unet.attn_processors
    assert all(isinstance(p, MultiViewAttnProcessor) for n, p in processors.items() if "attn1" in n)
    assert all(isinstance(p, CrossAttnProcessor) for n, p in processors.items() if "attn2" in n)
    assert torch.equal(loaded.encode_prompts(["a photo of a duck"] * 4 + ["a blue chair"] * 4), embeds)
    assert torch.equal(loaded.noise_prediction(latents, t, embeds, cameras), expected)
    assert loaded.config == model.config


def test_from_pretrained_names_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "unet").mkdir()
    with pytest.raises(ValueError, match="missing vae/, text_encoder/, tokenizer/, scheduler/"):
        MultiViewDiffusion.from_pretrained(tmp_path)


def test_noise_prediction_checks_shapes() -> None:
    model = MultiViewDiffusion.build_tiny(0)
    latents, t, cameras = _inputs()
    embeds = torch.zeros(8, 77, 32)
    with pytest.raises(ValueError, match="V=4"):
        model.noise_prediction(latents[:6], 10, embeds[:6], cameras[:6])
    with pytest.raises(ValueError, match="same first dimension"):
        model.noise_prediction(latents, 10, embeds[:4], cameras)
    with pytest.raises(ValueError, match=r"cameras must be \(B\*V, 16\)"):
        model.noise_prediction(latents, 10, embeds, cameras[:, :12])


def test_config_round_trip_and_validation(tmp_path: Path) -> None:
    config = MultiViewDiffusionConfig.tiny()
    config.save(tmp_path)
    assert MultiViewDiffusionConfig.load(tmp_path) == config
    assert MultiViewDiffusionConfig().latent_size == 32  # sd-v2.1-base-4view: 256 px, VAE factor 8
    with pytest.raises(ValueError, match="attention_levels"):
        MultiViewDiffusionConfig(attention_levels=(True,))
    with pytest.raises(ValueError, match="head_channels"):
        MultiViewDiffusionConfig(head_channels=48)
    with pytest.raises(ValueError, match="multiview_diffusion.json is missing"):
        MultiViewDiffusionConfig.load(tmp_path / "nowhere")


@torch.no_grad()
def test_bfloat16_and_checkpointing_options() -> None:
    model = MultiViewDiffusion.build_tiny(0)
    latents, t, cameras = _inputs()
    embeds = model.encode_prompts(["a photo of a duck"] * 8)
    reference = model.noise_prediction(latents, t, embeds, cameras)
    model.apply_performance(PerformanceConfig(dtype="bfloat16", gradient_checkpointing=True, sdpa_kernels=("math",)))
    assert model.unet.dtype == torch.bfloat16 and model.unet.is_gradient_checkpointing
    low = model.noise_prediction(latents, t, embeds, cameras)
    assert low.dtype == torch.bfloat16
    assert ((low.float() - reference).norm() / reference.norm()) < 0.05


@torch.no_grad()
def test_new_tokens_survive_save_and_load(tmp_path: Path) -> None:
    """What the personalisation stage does: add <asset0>, give it a row, save, load."""
    model = MultiViewDiffusion.build_tiny(0)
    model.tokenizer.add_tokens(["<asset0>"])
    model.text_encoder.resize_token_embeddings(len(model.tokenizer))
    new_id = model.tokenizer.convert_tokens_to_ids("<asset0>")
    embeddings = model.text_encoder.get_input_embeddings().weight
    embeddings[new_id] = embeddings[model.tokenizer.convert_tokens_to_ids("duck</w>")]
    ids = model.tokenize(["a photo of <asset0> wearing a hat"])[0]
    assert new_id in ids.tolist()
    expected = model.encode_prompts(["a photo of <asset0> wearing a hat"])

    model.save_pretrained(tmp_path)
    loaded = MultiViewDiffusion.from_pretrained(tmp_path)
    assert torch.equal(loaded.tokenize(["a photo of <asset0> wearing a hat"])[0], ids)
    assert torch.equal(loaded.encode_prompts(["a photo of <asset0> wearing a hat"]), expected)
    assert loaded.text_encoder.config.vocab_size == len(loaded.tokenizer) == len(model.tokenizer)
