"""Placeholder tokens: initialisation, files in diffusers' textual-inversion format, loading them back."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from dreamedit3d_core.personalize import (
    add_placeholder_tokens,
    get_token_embeddings,
    load_token_embeddings,
    save_token_embeddings,
)
from tests.core.personalize.personalize_scenes import TOKENS, tiny_model


def _row(model: object, word: str) -> torch.Tensor:
    ids = model.tokenizer(word, add_special_tokens=False).input_ids  # type: ignore[attr-defined]
    return model.text_encoder.get_input_embeddings().weight[ids].mean(dim=0)  # type: ignore[attr-defined]


def test_new_tokens_start_from_their_words() -> None:
    model = tiny_model()
    before = model.text_encoder.get_input_embeddings().weight.detach().clone()
    rng = torch.random.get_rng_state()
    used = add_placeholder_tokens(model, ["<a0>", "<a1>", "<a2>", "<a3>"], ["duck", "zq", "", "ü"], class_word="toy")
    assert torch.equal(rng, torch.random.get_rng_state()), "adding tokens must not move the global RNG"
    assert used == {"<a0>": "duck", "<a1>": "zq", "<a2>": "toy", "<a3>": "toy"}
    embeddings = get_token_embeddings(model, ["<a0>", "<a1>", "<a2>", "<a3>"])
    assert torch.equal(embeddings["<a0>"][0], _row(model, "duck"))
    assert len(model.tokenizer("zq", add_special_tokens=False).input_ids) == 2  # several tokens: their mean
    assert torch.allclose(embeddings["<a1>"][0], _row(model, "zq"))
    assert torch.equal(embeddings["<a2>"][0], _row(model, "toy"))
    assert torch.equal(embeddings["<a3>"][0], _row(model, "toy"))
    weight = model.text_encoder.get_input_embeddings().weight
    assert torch.equal(weight[: before.shape[0]], before), "existing rows must not change"
    ids = model.tokenizer("a photo of <a0> and <a3>").input_ids
    assert model.tokenizer.convert_tokens_to_ids("<a0>") in ids and model.tokenizer.convert_tokens_to_ids("<a3>") in ids


def test_existing_or_malformed_tokens_are_refused() -> None:
    model = tiny_model()
    add_placeholder_tokens(model, TOKENS, ["duck", "hat"])
    with pytest.raises(ValueError, match=r"already in the tokenizer"):
        add_placeholder_tokens(model, ["<asset0>"], ["duck"])
    with pytest.raises(ValueError, match=r"must look like"):
        add_placeholder_tokens(model, ["asset9"], ["duck"])
    with pytest.raises(ValueError, match=r"1 tokens but 2 initializer words"):
        add_placeholder_tokens(model, ["<asset9>"], ["duck", "hat"])


def test_token_files_round_trip_into_a_fresh_model(tmp_path: Path) -> None:
    model = tiny_model()
    add_placeholder_tokens(model, TOKENS, ["duck", "hat"])
    g = torch.Generator().manual_seed(0)
    learned = {token: torch.randn(1, 32, generator=g) for token in TOKENS}
    paths = save_token_embeddings(tmp_path, TOKENS, learned)
    assert [p.name for p in paths] == ["asset0.safetensors", "asset1.safetensors"]
    state = load_file(str(paths[0]))
    assert list(state) == ["<asset0>"] and state["<asset0>"].shape == (1, 32)
    assert not list(tmp_path.glob(".*")), "no temporary files left behind"

    fresh = tiny_model(seed=1)
    loaded = load_token_embeddings(tmp_path, fresh)
    assert list(loaded) == TOKENS
    rows = get_token_embeddings(fresh, TOKENS)
    for token in TOKENS:
        assert torch.equal(rows[token], learned[token])
    # loading again overwrites the rows instead of adding duplicate tokens
    vocabulary = len(fresh.tokenizer)
    load_token_embeddings(tmp_path, fresh, tokens=["<asset1>"])
    assert len(fresh.tokenizer) == vocabulary


def test_token_files_load_into_a_diffusers_pipeline(tmp_path: Path) -> None:
    from diffusers import StableDiffusionPipeline

    g = torch.Generator().manual_seed(0)
    learned = {token: torch.randn(1, 32, generator=g) for token in TOKENS}
    paths = save_token_embeddings(tmp_path, TOKENS, learned)
    model = tiny_model()
    pipe = StableDiffusionPipeline(
        vae=model.vae,
        text_encoder=model.text_encoder,
        tokenizer=model.tokenizer,
        unet=model.unet,
        scheduler=model.scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.load_textual_inversion([str(p) for p in paths])
    weight = pipe.text_encoder.get_input_embeddings().weight
    for token in TOKENS:
        token_id = pipe.tokenizer.convert_tokens_to_ids(token)
        assert torch.equal(weight[token_id], learned[token][0])
        assert token_id in pipe.tokenizer(f"a photo of {token}").input_ids


def test_broken_token_files_are_named(tmp_path: Path) -> None:
    model = tiny_model()
    save_file({"<asset0>": torch.zeros(1, 32), "<asset1>": torch.zeros(1, 32)}, str(tmp_path / "two.safetensors"))
    with pytest.raises(ValueError, match=r"two\.safetensors must hold exactly one token embedding"):
        load_token_embeddings(tmp_path, model)
    (tmp_path / "two.safetensors").unlink()
    save_file({"<asset0>": torch.zeros(1, 16)}, str(tmp_path / "asset0.safetensors"))
    with pytest.raises(ValueError, match=r"asset0\.safetensors: the embedding of <asset0> has 16 numbers"):
        load_token_embeddings(tmp_path, model)
    (tmp_path / "asset0.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match=r"asset0\.safetensors is not a readable safetensors file"):
        load_token_embeddings(tmp_path, model)
    with pytest.raises(ValueError, match=r"asset7\.safetensors"):
        load_token_embeddings(tmp_path, model, tokens=["<asset7>"])
