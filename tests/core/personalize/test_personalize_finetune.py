"""Phase 2: what trains, what stays, LoRA, resuming from a checkpoint, saving the fine-tuned model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dreamedit3d_core.mvdiffusion import MultiViewDiffusion
from dreamedit3d_core.personalize import (
    FinetuneConfig,
    PersonalizationCancelled,
    TrainingData,
    finetune_model,
    get_token_embeddings,
    prepare_training_data,
    set_token_embeddings,
)
from tests.core.personalize.personalize_scenes import TOKENS, tiny_finetune, tiny_model, two_part_views

EMBEDDING = "embeddings.token_embedding.weight"


def _model_with_tokens(seed: int = 0) -> MultiViewDiffusion:
    """A base model holding two learned tokens, as phase 1 leaves it (fixed random embeddings)."""
    model = tiny_model(seed)
    g = torch.Generator().manual_seed(7)
    set_token_embeddings(model, {token: torch.randn(1, 32, generator=g) * 0.1 for token in TOKENS})
    return model


def _data(model: MultiViewDiffusion) -> TrainingData:
    return prepare_training_data(model, *two_part_views(32))


def _weights(model: MultiViewDiffusion, part: str) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in getattr(model, part).state_dict().items()}


def _changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> list[str]:
    return [k for k in before if not torch.equal(before[k], after[k])]


def test_full_finetuning_trains_unet_and_text_encoder_and_keeps_the_tokens() -> None:
    model = _model_with_tokens()
    data = _data(model)
    unet, text, vae = _weights(model, "unet"), _weights(model, "text_encoder"), _weights(model, "vae")
    tokens_before = get_token_embeddings(model, TOKENS)
    result = finetune_model(model, data, TOKENS, tiny_finetune(steps=2, lr=1e-4))
    assert result.model is model and result.resumed_from_step is None
    assert len(_changed(unet, _weights(model, "unet"))) == len(unet)  # every UNet weight trains
    text_changed = _changed(text, _weights(model, "text_encoder"))
    assert EMBEDDING not in text_changed and len(text_changed) == len(text) - 1
    assert _changed(vae, _weights(model, "vae")) == []
    for token, row in get_token_embeddings(model, TOKENS).items():
        assert torch.equal(row, tokens_before[token])
    assert not any(p.requires_grad for p in model.unet.parameters()) and not model.unet.training
    assert [row["step"] for row in result.log] == [1, 2] and result.log[0]["lr"] == 1e-4
    assert {row["phase"] for row in result.isolation_before} == {"before_finetune"}
    assert len(result.isolation_after) == 8 and result.attention_preview.dtype == np.uint8


def test_unet_only_leaves_the_text_encoder_alone_and_the_probe_loss_falls() -> None:
    model = _model_with_tokens()
    data = _data(model)
    text = _weights(model, "text_encoder")
    result = finetune_model(model, data, TOKENS, tiny_finetune(steps=6, lr=2e-3, train_text_encoder=False))
    assert _changed(text, _weights(model, "text_encoder")) == []
    assert all(name.startswith("unet.") for name in result.trained_parameters)
    assert result.probe_after["diffusion_loss"] < result.probe_before["diffusion_loss"]


def test_lora_trains_only_adapters_and_merges_them(tmp_path: Path) -> None:
    model = _model_with_tokens()
    data = _data(model)
    unet, text = _weights(model, "unet"), _weights(model, "text_encoder")
    result = finetune_model(model, data, TOKENS, tiny_finetune(steps=2, lora_rank=2, lora_lr=1e-2))
    assert result.trained_parameters and all("lora_" in name for name in result.trained_parameters)
    assert any(n.startswith("text_encoder.") for n in result.trained_parameters)
    # merged: the modules are plain again, with the same names; only attention projections moved
    after_unet, after_text = _weights(model, "unet"), _weights(model, "text_encoder")
    assert set(after_unet) == set(unet) and set(after_text) == set(text)
    projections = (".to_q.", ".to_k.", ".to_v.", ".to_out.0.", ".q_proj.", ".k_proj.", ".v_proj.", ".out_proj.")
    moved = _changed(unet, after_unet) + _changed(text, after_text)
    assert moved and all(any(p in name for p in projections) for name in moved)
    assert all(name.endswith(".weight") for name in moved)  # LoRA leaves biases alone
    # the merged model saves and loads as a standard folder, tokens included
    model.save_pretrained(tmp_path / "finetuned")
    loaded = MultiViewDiffusion.from_pretrained(tmp_path / "finetuned")
    assert loaded.tokenizer.convert_tokens_to_ids(TOKENS) == model.tokenizer.convert_tokens_to_ids(TOKENS)
    for token, row in get_token_embeddings(loaded, TOKENS).items():
        assert torch.equal(row, get_token_embeddings(model, TOKENS)[token])
    latents = torch.randn(4, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    prompts = ["a photo of <asset0> and <asset1>"] * 4
    with torch.no_grad():
        expected = model.noise_prediction(latents, 300, model.encode_prompts(prompts), data.cameras)
        got = loaded.noise_prediction(latents, 300, loaded.encode_prompts(prompts), data.cameras)
    assert torch.allclose(expected, got, atol=1e-5)


def test_a_killed_run_resumes_and_ends_where_an_uninterrupted_run_ends(tmp_path: Path) -> None:
    config = tiny_finetune(steps=4, lr=1e-3, checkpoint_every=2)
    straight = _model_with_tokens()
    reference = finetune_model(straight, _data(straight), TOKENS, config, checkpoint_dir=tmp_path / "straight")

    def kill_at_three(step: int, total: int, losses: dict[str, float]) -> None:
        if step == 3:
            raise KeyboardInterrupt("killed")

    first = _model_with_tokens()
    with pytest.raises(KeyboardInterrupt):
        finetune_model(first, _data(first), TOKENS, config, checkpoint_dir=tmp_path / "run", on_step=kill_at_three)
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["step-000002"]

    second = _model_with_tokens()  # a fresh process starts from the base model again
    resumed = finetune_model(second, _data(second), TOKENS, config, checkpoint_dir=tmp_path / "run")
    assert resumed.resumed_from_step == 2
    for part in ("unet", "text_encoder"):
        a, b = _weights(straight, part), _weights(second, part)
        assert _changed(a, b) == [], part
    assert [r["step"] for r in resumed.log] == [1, 2, 3, 4]
    assert [r["loss"] for r in resumed.log] == [r["loss"] for r in reference.log]
    assert resumed.isolation_before == reference.isolation_before

    # a finished run's checkpoint answers at once with the same result
    third = _model_with_tokens()
    again = finetune_model(third, _data(third), TOKENS, config, checkpoint_dir=tmp_path / "run")
    assert again.resumed_from_step == 4 and _changed(_weights(straight, "unet"), _weights(third, "unet")) == []


def test_cancel_saves_a_checkpoint_and_other_settings_are_refused(tmp_path: Path) -> None:
    config = tiny_finetune(steps=4, checkpoint_every=10)
    model = _model_with_tokens()
    steps: list[int] = []
    with pytest.raises(PersonalizationCancelled, match="before step 2 of 4"):
        finetune_model(model, _data(model), TOKENS, config, checkpoint_dir=tmp_path,
                       on_step=lambda s, n, l: steps.append(s), should_cancel=lambda: len(steps) >= 1)  # fmt: skip
    assert (tmp_path / "step-000001" / "state.json").is_file()
    fresh = _model_with_tokens()
    with pytest.raises(ValueError, match=r"other settings.*config.lr: checkpoint 2e-06, now 0.001\)"):
        finetune_model(fresh, _data(fresh), TOKENS, config.model_copy(update={"lr": 1e-3}), checkpoint_dir=tmp_path)


def test_prior_preservation_token_training_and_memory_options() -> None:
    model = _model_with_tokens()
    data = _data(model)
    table = model.text_encoder.get_input_embeddings().weight.detach().clone()
    config = tiny_finetune(
        steps=2, lr=1e-3, prior_preservation=True, prior_images=1, gradient_checkpointing=True,
        train_token_embeddings=True,
    )  # fmt: skip
    result = finetune_model(model, data, TOKENS, config)
    assert all(row["prior_loss"] > 0 for row in result.log)
    assert all(row["loss"] > row["diffusion_loss"] for row in result.log)
    assert not model.unet.is_gradient_checkpointing and not model.text_encoder.is_activation_checkpointing
    # the tokens' rows learn with the rest; every other row is put back
    ids = model.tokenizer.convert_tokens_to_ids(TOKENS)
    after = model.text_encoder.get_input_embeddings().weight
    others = torch.ones(after.shape[0], dtype=torch.bool)
    others[ids] = False
    assert torch.equal(after[others], table[others]) and not torch.equal(after[ids], table[ids])
    with pytest.raises(ValueError, match="use_8bit_adam needs the model on a CUDA device"):
        finetune_model(_model_with_tokens(), data, TOKENS, tiny_finetune(use_8bit_adam=True))
    with pytest.raises(ValueError, match=r"tokens \['<asset0>', '<asset1>'\] are not in the model's tokenizer"):
        finetune_model(tiny_model(), data, TOKENS, tiny_finetune())
    with pytest.raises(ValueError, match=r"torch.bfloat16 weights; training needs float32 weights"):
        finetune_model(_model_with_tokens().to(dtype=torch.bfloat16), data, TOKENS, tiny_finetune())


def test_prior_preservation_with_several_class_prompts() -> None:
    """Class samples cycle through the prompts, and every drawn sample comes with the prompt it was made from."""
    from dreamedit3d_core.personalize.finetune import make_prior
    from dreamedit3d_core.personalize.loop import PriorSet

    model = _model_with_tokens()
    prompts = ("a photo of a red cube", "a photo of a blue sphere")
    config = tiny_finetune(prior_preservation=True, prior_prompt=list(prompts), prior_images=3)
    prior = make_prior(model, _data(model), config, None)
    assert prior.prompts == (prompts[0], prompts[1], prompts[0])
    assert prior.latents.shape[0] == 3
    assert not torch.equal(prior.latents[0], prior.latents[1])  # different prompts, different samples

    marked = PriorSet(latents=torch.arange(3.0).view(3, 1, 1, 1, 1), prompts=("a", "b", "c"), weight=1.0)
    g = torch.Generator().manual_seed(0)
    draws = [marked.draw(g) for _ in range(30)]
    assert {prompt for _, _, prompt, _ in draws} == {"a", "b", "c"}
    assert all("abc"[int(latents.item())] == prompt for latents, _, prompt, _ in draws)

    result = finetune_model(model, _data(model), TOKENS, config.model_copy(update={"steps": 2}))
    assert all(row["prior_loss"] > 0 for row in result.log)
    with pytest.raises(ValueError, match="prior_prompt must be a non-empty prompt"):
        FinetuneConfig(prior_prompt=[])


def test_class_samples_are_drawn_with_the_configured_guidance_and_negative_prompt() -> None:
    """At guidance 0 a class sample is the negative prompt's alone: the class prompt no longer matters, the
    negative prompt does (so a preset's sampling settings reach prior preservation)."""
    from dreamedit3d_core.personalize.finetune import make_prior

    model = _model_with_tokens()
    data = _data(model)

    def latents(**settings: object) -> torch.Tensor:
        config = tiny_finetune(prior_preservation=True, prior_images=1, **settings)
        return make_prior(model, data, config, None).latents

    unguided = {"prior_guidance_scale": 0.0, "prior_negative_prompt": "a photo of a chair"}
    assert torch.equal(latents(prior_prompt="a photo of a dog", **unguided), latents(prior_prompt="a photo of a cat", **unguided))
    assert not torch.equal(
        latents(prior_prompt="a photo of a dog", **unguided),
        latents(prior_prompt="a photo of a dog", prior_guidance_scale=0.0, prior_negative_prompt="a photo of a table"),
    )
    assert not torch.equal(
        latents(prior_prompt="a photo of a dog", prior_guidance_scale=5.0), latents(prior_prompt="a photo of a cat", prior_guidance_scale=5.0)
    )


def test_cross_attention_kv_trains_only_the_projections_that_read_the_text() -> None:
    """Custom Diffusion's phase 2: the keys and values of the UNet's cross-attention, nothing else."""
    model = _model_with_tokens()
    data = _data(model)
    unet, text = _weights(model, "unet"), _weights(model, "text_encoder")
    result = finetune_model(model, data, TOKENS, tiny_finetune(steps=2, lr=1e-3, unet_weights="cross_attention_kv", train_text_encoder=False))
    changed = _changed(unet, _weights(model, "unet"))
    assert changed and all(".attn2.to_k." in name or ".attn2.to_v." in name for name in changed)
    assert len(changed) == sum(".attn2.to_k." in n or ".attn2.to_v." in n for n in unet)
    assert _changed(text, _weights(model, "text_encoder")) == []
    assert sorted(result.trained_parameters) == sorted(f"unet.{name}" for name in changed)
    with pytest.raises(ValueError, match="cannot be combined with LoRA"):
        tiny_finetune(unet_weights="cross_attention_kv", lora_rank=4)
