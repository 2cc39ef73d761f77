"""Phase 1: only the new rows learn, the losses fall, the alignment loss isolates the tokens' attention."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamedit3d_core.personalize import (
    InvertConfig,
    PersonalizationCancelled,
    attention_isolation,
    invert_tokens,
    prepare_training_data,
)
from tests.core.personalize.personalize_scenes import (
    TOKENS,
    WORDS,
    sharpen_cross_attention,
    tiny_invert,
    tiny_model,
    two_part_views,
    with_image_latents,
)


def _state(model: object) -> dict[str, torch.Tensor]:
    state = {}
    for prefix in ("unet", "vae", "text_encoder"):
        module = getattr(model, prefix)
        state.update({f"{prefix}.{k}": v.detach().clone() for k, v in module.state_dict().items()})
    return state


def test_only_the_placeholder_rows_change_bit_for_bit() -> None:
    model = tiny_model()
    data = prepare_training_data(model, *two_part_views(32))
    before = _state(model)
    rows_before = model.text_encoder.get_input_embeddings().weight.detach().clone()
    # a large step and weight decay: any leak into another row would show
    result = invert_tokens(model, data, TOKENS, WORDS, tiny_invert(steps=3, lr=0.1, weight_decay=0.5))
    after = _state(model)
    embedding_key = "text_encoder.embeddings.token_embedding.weight"
    changed = [k for k in before if k != embedding_key and not torch.equal(before[k], after[k])]
    assert changed == []
    weight = after[embedding_key]
    old = rows_before.shape[0]
    assert torch.equal(weight[:old], rows_before)
    ids = model.tokenizer.convert_tokens_to_ids(TOKENS)
    assert ids == [old, old + 1] and weight.shape[0] == old + 2
    for token, token_id in zip(TOKENS, ids):
        assert torch.equal(result.embeddings[token][0], weight[token_id])
        assert result.embeddings[token].shape == (1, 32)
    initial = {t: rows_before[model.tokenizer(w, add_special_tokens=False).input_ids[0]] for t, w in zip(TOKENS, WORDS)}
    assert all(not torch.equal(result.embeddings[t][0], initial[t]) for t in TOKENS), "the tokens must learn"
    assert result.initializer_words == dict(zip(TOKENS, WORDS))
    assert not any(p.requires_grad for p in model.text_encoder.parameters())
    assert not model.unet.training


def test_alignment_loss_isolates_each_tokens_attention() -> None:
    """Same seed and steps with lambda = 20 and lambda = 0: only the first concentrates the maps."""
    rgb, masks, cameras = two_part_views(32)
    config = tiny_invert(steps=12, lr=0.1, attention_resolution=8)
    isolation, results = {}, {}
    for weight in (20.0, 0.0):
        model = sharpen_cross_attention(tiny_model(seed=0), 4.0)
        data = with_image_latents(prepare_training_data(model, rgb, masks, cameras), model)
        result = invert_tokens(model, data, TOKENS, WORDS, config.model_copy(update={"attention_weight": weight}))
        isolation[weight] = np.mean([row["attention_isolation"] for row in result.isolation_after])
        results[weight] = result
    aligned = results[20.0]
    before = np.mean([row["attention_isolation"] for row in aligned.isolation_before])
    assert isolation[20.0] > isolation[0.0] + 0.02, isolation
    assert isolation[20.0] > before + 0.02
    # the loss falls, measured at the probe's fixed timesteps and noise
    total = {k: p["diffusion_loss"] + 20.0 * p["attention_loss"] for k, p in
             (("before", aligned.probe_before), ("after", aligned.probe_after))}  # fmt: skip
    assert total["after"] < total["before"]
    assert aligned.probe_after["attention_loss"] < 0.8 * aligned.probe_before["attention_loss"]
    # the result's "after" rows are what attention_isolation measures on the trained model
    assert len(aligned.isolation_after) == 2 * 4
    assert {row["phase"] for row in aligned.isolation_after} == {"after_invert"}
    pairs = {(row["token"], row["view"]) for row in aligned.isolation_after}
    assert pairs == {(t, v) for t in TOKENS for v in range(4)}


def test_log_progress_preview_and_cancel() -> None:
    model = tiny_model()
    data = prepare_training_data(model, *two_part_views(32))
    calls: list[tuple[int, int, dict[str, float]]] = []
    result = invert_tokens(
        model, data, TOKENS, WORDS, tiny_invert(steps=3), on_step=lambda s, n, l: calls.append((s, n, l))
    )
    assert [c[:2] for c in calls] == [(1, 3), (2, 3), (3, 3)]
    assert [row["step"] for row in result.log] == [1, 2, 3]
    for row in result.log:
        assert set(row) >= {"step", "loss", "diffusion_loss", "attention_loss", "lr", "seconds"}
        assert row["loss"] == pytest.approx(row["diffusion_loss"] + 1e-2 * row["attention_loss"], rel=1e-5)
        assert row["lr"] == 5e-4 and row["seconds"] > 0
    maps = result.attention_maps
    assert maps.shape == (4, 2, 8, 8) and np.isfinite(maps).all()
    preview = result.attention_preview
    assert preview.dtype == np.uint8 and preview.ndim == 3 and preview.shape[2] == 3
    assert preview.shape[0] == 2 * 66 + 2 and preview.shape[1] == 8 * 66 + 2  # 2 tokens x (4 views x map, mask)
    rows = attention_isolation(model, data, TOKENS, tiny_invert(), phase="after_invert")
    assert [r["attention_isolation"] for r in rows] == pytest.approx(
        [r["attention_isolation"] for r in result.isolation_after], abs=1e-6
    )

    fresh = tiny_model()
    with pytest.raises(PersonalizationCancelled, match="before step 3 of 5"):
        invert_tokens(fresh, data, TOKENS, WORDS, tiny_invert(steps=5), should_cancel=lambda: len(calls) >= 5,
                      on_step=lambda s, n, l: calls.append((s, n, l)))  # fmt: skip


def test_flip_augmentation_and_bad_settings() -> None:
    model = tiny_model()
    data = prepare_training_data(model, *two_part_views(32))
    result = invert_tokens(
        model, data, TOKENS, WORDS, tiny_invert(steps=2, augmentation="flip", flip_probability=1.0)
    )
    assert len(result.log) == 2 and all(np.isfinite(row["loss"]) for row in result.log)
    with pytest.raises(ValueError, match=r"attention_resolution 16 is not one the UNet has.*are \[8, 4\] wide"):
        invert_tokens(tiny_model(), data, TOKENS, WORDS, InvertConfig(steps=1))
    with pytest.raises(ValueError, match="2 component masks but 1 tokens"):
        invert_tokens(tiny_model(), data, ["<asset0>"], ["duck"], tiny_invert())
    with pytest.raises(ValueError, match="exactly one"):
        InvertConfig(template="a photo")


def test_direction_only_tokens_keep_their_initializer_words_norm() -> None:
    """token_norm 'initializer' (Directional Textual Inversion): the rows turn, their length stays."""
    model = tiny_model()
    data = prepare_training_data(model, *two_part_views(32))
    weight = model.text_encoder.get_input_embeddings().weight
    norms = {t: float(weight[model.tokenizer(w, add_special_tokens=False).input_ids[0]].norm()) for t, w in zip(TOKENS, WORDS)}
    result = invert_tokens(model, data, TOKENS, WORDS, tiny_invert(steps=3, lr=0.5, token_norm="initializer"))
    for token in TOKENS:
        assert float(result.embeddings[token].norm()) == pytest.approx(norms[token], rel=1e-5)
    free = invert_tokens(tiny_model(), prepare_training_data(tiny_model(), *two_part_views(32)), TOKENS, WORDS, tiny_invert(steps=3, lr=0.5))
    assert any(abs(float(free.embeddings[t].norm()) - norms[t]) > 1e-2 for t in TOKENS)  # learned norms move
