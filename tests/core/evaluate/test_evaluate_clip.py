"""CLIP scores: the maths on known embeddings, 'not computed' without weights, a tiny random open_clip model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from dreamedit3d_core.evaluate import ClipConfig, ClipScorer, clip_scores, directional_similarity, text_image_similarity

TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def test_similarities_on_known_embeddings() -> None:
    text = np.array([1.0, 0.0, 0.0])
    images = np.array([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [1.0, 1.0, 0.0]])
    np.testing.assert_allclose(text_image_similarity(images, text), [1.0, 0.0, np.sqrt(0.5)])
    source_images = np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    edited_images = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])  # view 0 moves along the text change
    source_text, edited_text = np.array([0.0, 0.0, 0.0]), np.array([5.0, 0.0, 0.0])
    np.testing.assert_allclose(
        directional_similarity(source_images, edited_images, source_text, edited_text), [1.0, 0.0]
    )
    with pytest.raises(ValueError, match="zero"):
        directional_similarity(source_images, source_images, source_text, edited_text)


def test_without_weights_clip_is_reported_as_not_computed() -> None:
    images = np.full((4, 32, 32, 3), 255, np.uint8)
    scores = clip_scores(images, images, "a photo of a toy", "a photo of a toy wearing a hat", ClipConfig())
    assert not scores.computed
    assert scores.status == "not computed: no CLIP weights"
    assert scores.text_image is None and scores.directional is None
    with pytest.raises(ValueError, match="not found"):
        ClipScorer(ClipConfig(weights=Path("/nonexistent/clip.safetensors")))


def test_tiny_random_clip_model_from_a_local_file(tmp_path: Path) -> None:
    import open_clip

    from dreamedit3d_core.evaluate.clip_score import register_clip_architecture

    config = ClipConfig(model_name="tiny-test-clip", model_config_override=TINY_CLIP)
    torch.manual_seed(0)
    scorer_path = tmp_path / "tiny_clip.safetensors"
    register_clip_architecture(config.model_name, TINY_CLIP)
    model = open_clip.create_model(config.model_name, pretrained=None)
    save_file({key: value.contiguous() for key, value in model.state_dict().items()}, str(scorer_path))

    config = config.model_copy(update={"weights": scorer_path})
    rng = np.random.default_rng(0)
    source = rng.integers(0, 256, (4, 48, 48, 3), dtype=np.uint8)
    edited = rng.integers(0, 256, (4, 48, 48, 4), dtype=np.uint8)
    scores = clip_scores(source, edited, "a photo of a toy", "a photo of a red toy", config)
    assert scores.computed
    assert -1.0 <= scores.text_image <= 1.0 and -1.0 <= scores.directional <= 1.0
    assert len(scores.per_view_text_image) == 4 and len(scores.per_view_directional) == 4
    # the same weights give the same embeddings: a scorer built again agrees exactly
    again = ClipScorer(config)
    np.testing.assert_allclose(
        again.encode_texts(["a photo of a toy"]), ClipScorer(config).encode_texts(["a photo of a toy"])
    )
    expected = text_image_similarity(again.encode_images(edited), again.encode_texts(["a photo of a red toy"])[0])
    np.testing.assert_allclose(scores.per_view_text_image, expected, atol=1e-6)
