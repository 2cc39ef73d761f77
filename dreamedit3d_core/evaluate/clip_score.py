"""CLIP scores of an edit: text-image similarity and directional similarity.

  text-image:   cos(E_image(edited view), E_text(edit prompt)), averaged over views
  directional:  cos(E_image(edited) - E_image(source), E_text(edit prompt) - E_text(source prompt)),
                averaged over views: did the images change the way the text changed?

The model is an open_clip architecture created with pretrained=None, its weights read from a local file.
With no weights configured the scores are returned as "not computed: no CLIP weights", never guessed.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dreamedit3d_core.evaluate.config import ClipConfig
from dreamedit3d_core.evaluate.image_metrics import on_white

COMPUTED = "computed"
NOT_COMPUTED = "not computed: no CLIP weights"


@dataclass(frozen=True)
class ClipScores:
    status: str  # COMPUTED or NOT_COMPUTED
    text_image: float | None = None
    directional: float | None = None
    per_view_text_image: list[float] = field(default_factory=list)
    per_view_directional: list[float] = field(default_factory=list)

    @property
    def computed(self) -> bool:
        return self.status == COMPUTED

    def as_dict(self) -> dict[str, object]:
        return {
            "status": self.status,
            "text_image": self.text_image,
            "directional": self.directional,
            "per_view_text_image": self.per_view_text_image,
            "per_view_directional": self.per_view_directional,
        }


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("cannot normalise a zero embedding (or a zero change between embeddings)")
    return vectors / norms


def text_image_similarity(image_embeddings: np.ndarray, text_embedding: np.ndarray) -> np.ndarray:
    """(N,) cosine similarity of each image embedding (N, D) with one text embedding (D,)."""
    return _unit(np.asarray(image_embeddings, np.float64)) @ _unit(np.asarray(text_embedding, np.float64))


def directional_similarity(
    source_images: np.ndarray, edited_images: np.ndarray, source_text: np.ndarray, edited_text: np.ndarray
) -> np.ndarray:
    """(N,) cosine between each view's image change (N, D) and the text change (D,)."""
    image_change = np.asarray(edited_images, np.float64) - np.asarray(source_images, np.float64)
    text_change = np.asarray(edited_text, np.float64) - np.asarray(source_text, np.float64)
    return _unit(image_change) @ _unit(text_change)


class ClipScorer:
    """An open_clip model with local weights: embeds images and prompts."""

    def __init__(self, config: ClipConfig) -> None:
        import open_clip

        if config.weights is None:
            raise ValueError("ClipScorer needs ClipConfig.weights: a local CLIP weights file")
        weights = Path(config.weights)
        if not weights.is_file():
            raise ValueError(f"CLIP weights file not found: {weights}")
        if config.model_config_override is not None:
            register_clip_architecture(config.model_name, config.model_config_override)
        model, _, preprocess = open_clip.create_model_and_transforms(config.model_name, pretrained=None)
        state = _read_state_dict(weights)
        try:
            model.load_state_dict(state)
        except RuntimeError as error:
            raise ValueError(f"{weights} does not fit open_clip's {config.model_name!r}: {error}") from None
        self.model = model.to(config.device).eval()
        self.preprocess = preprocess
        self.tokenizer = open_clip.get_tokenizer(config.model_name)
        self.device = config.device

    def encode_images(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, 3|4) uint8 (RGBA composited on white) -> (N, D) float64 embeddings."""
        images = on_white(np.asarray(images))
        if images.dtype != np.uint8:
            images = (np.clip(images, 0, 1) * 255).round().astype(np.uint8)
        batch = torch.stack([self.preprocess(Image.fromarray(image)) for image in images]).to(self.device)
        with torch.no_grad():
            return self.model.encode_image(batch).double().cpu().numpy()

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """(N, D) float64 embeddings of the prompts."""
        with torch.no_grad():
            return self.model.encode_text(self.tokenizer(texts).to(self.device)).double().cpu().numpy()


def register_clip_architecture(name: str, model_config: dict) -> None:
    """Makes an architecture open_clip does not ship (e.g. a tiny test model) known under `name`."""
    import open_clip

    with tempfile.TemporaryDirectory(prefix="clip-config-") as folder:
        path = Path(folder) / f"{name}.json"
        path.write_text(json.dumps(model_config))
        open_clip.add_model_config(path)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)  # never unpickles arbitrary objects
    return state.get("state_dict", state) if isinstance(state, dict) else state


def clip_scores(
    source_images: np.ndarray,
    edited_images: np.ndarray,
    source_prompt: str,
    edit_prompt: str,
    config: ClipConfig,
    scorer: ClipScorer | None = None,
) -> ClipScores:
    """CLIP text-image and directional similarity of the edited views (N, H, W, 3|4) against the source's."""
    if scorer is None and config.weights is None:
        return ClipScores(status=NOT_COMPUTED)
    if len(source_images) != len(edited_images):
        raise ValueError(f"{len(source_images)} source views but {len(edited_images)} edited views")
    scorer = scorer or ClipScorer(config)
    source_embeddings = scorer.encode_images(source_images)
    edited_embeddings = scorer.encode_images(edited_images)
    source_text, edit_text = scorer.encode_texts([source_prompt, edit_prompt])
    per_view = text_image_similarity(edited_embeddings, edit_text)
    directional = directional_similarity(source_embeddings, edited_embeddings, source_text, edit_text)
    return ClipScores(
        status=COMPUTED,
        text_image=float(per_view.mean()),
        directional=float(directional.mean()),
        per_view_text_image=[float(x) for x in per_view],
        per_view_directional=[float(x) for x in directional],
    )
