"""Conversion without a Stable Diffusion folder: VAE, text encoder and tokenizer from the checkpoint itself."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from dreamedit3d_core.mvdiffusion import MultiViewDiffusion, convert_mvdream_checkpoint
from dreamedit3d_core.mvdiffusion.official_parts import openclip_tokenizer
from tests.core.mvdiffusion.mvdream_reference import MultiViewUNetReference
from tests.core.mvdiffusion.official_checkpoint import TINY_UNET, official_checkpoint, official_yaml, relative_error
from tests.core.mvdiffusion.official_parts_reference import (
    VAE_DDCONFIG,
    ldm_vae_state_dict,
    open_clip_state_dict,
    penultimate_conditioning,
    tiny_open_clip_text,
    tiny_vae,
)


@pytest.fixture(scope="module")
def tokenizer():
    return openclip_tokenizer()


def test_openclip_tokenizer_matches_open_clip(tokenizer) -> None:
    from open_clip.tokenizer import SimpleTokenizer

    reference = SimpleTokenizer()
    texts = ["a photo of a duck wearing a red hat", "An astronaut riding a horse, 3d asset", "Ünïcode café 🦆"]
    for text in texts:
        assert tokenizer(text, add_special_tokens=False).input_ids == reference.encode(text)
    ids = tokenizer("a duck", padding="max_length", max_length=77).input_ids
    assert ids[:4] == [49406, 320, 6910, 49407] and set(ids[4:]) == {0}  # OpenCLIP pads with 0 ("!")


def write_full_checkpoint(directory: Path) -> tuple:
    """Tiny official checkpoint with UNet, VAE and OpenCLIP text tower, as sd-v2.1-base-4view.pt is laid out."""
    torch.manual_seed(0)
    unet = MultiViewUNetReference(**TINY_UNET).eval()
    vae, text = tiny_vae(1), tiny_open_clip_text(width=TINY_UNET["context_dim"], seed=2).eval()
    state = official_checkpoint(unet)
    state = {k: v for k, v in state.items() if not k.startswith(("first_stage_model.", "cond_stage_model."))}
    state |= ldm_vae_state_dict(vae) | open_clip_state_dict(text)
    config = official_yaml(TINY_UNET)
    config["model"]["params"]["first_stage_config"]["params"]["ddconfig"] = VAE_DDCONFIG
    (directory / "config.yaml").write_text(yaml.safe_dump(config))
    torch.save(state, directory / "model.pt")
    return unet, vae, text, state


@torch.no_grad()
def test_whole_checkpoint_converts_without_sd_folder(tmp_path: Path) -> None:
    unet, vae, text, _ = write_full_checkpoint(tmp_path)
    model = convert_mvdream_checkpoint(tmp_path / "model.pt", tmp_path / "config.yaml", out_dir=tmp_path / "out")
    assert relative_error(unet, model) < 1e-5

    ids = model.tokenize(["a photo of a duck wearing a red hat", "a blue chair"])
    expected = penultimate_conditioning(text, ids)
    assert model.text_encoder.config.num_hidden_layers == 2  # 3 blocks, the last one unused
    assert torch.allclose(model.encode_prompts(["a photo of a duck wearing a red hat", "a blue chair"]), expected,
                          atol=1e-5)  # fmt: skip

    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3)) * 2 - 1
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(4))
    assert torch.allclose(model.decode_latents(latents), vae.decode(latents / 0.18215).sample, atol=1e-5)
    assert torch.allclose(model.vae.encode(images).latent_dist.mean, vae.encode(images).latent_dist.mean, atol=1e-5)

    reloaded = MultiViewDiffusion.from_pretrained(tmp_path / "out")
    assert torch.equal(reloaded.encode_prompts(["a red hat"]), model.encode_prompts(["a red hat"]))
    assert reloaded.tokenizer.pad_token_id == 0


def test_leftover_vae_or_text_weight_is_an_error(tmp_path: Path) -> None:
    _, _, _, state = write_full_checkpoint(tmp_path)
    for extra, message in [
        ("first_stage_model.encoder.down.0.block.0.extra.weight", "VAE"),
        ("cond_stage_model.model.attn_pool.weight", "unknown OpenCLIP text weights"),
        ("cond_stage_model.model.transformer.resblocks.0.ls_1.gamma", "text encoder"),
    ]:
        broken = dict(state, **{extra: torch.zeros(4)})
        torch.save(broken, tmp_path / "broken.pt")
        with pytest.raises(ValueError, match=message):
            convert_mvdream_checkpoint(tmp_path / "broken.pt", tmp_path / "config.yaml")


def test_checkpoint_without_parts_needs_sd_base(tmp_path: Path) -> None:
    _, _, _, state = write_full_checkpoint(tmp_path)
    unet_only = {k: v for k, v in state.items() if k.startswith("model.")}
    torch.save(unet_only, tmp_path / "unet_only.pt")
    with pytest.raises(ValueError, match="pass sd_base_dir"):
        convert_mvdream_checkpoint(tmp_path / "unet_only.pt", tmp_path / "config.yaml")
