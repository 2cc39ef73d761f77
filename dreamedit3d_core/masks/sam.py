"""Segment Anything for assets without parts: load a local checkpoint safely, prompt it view by view.

SAM's point coordinates are pixel indices (its prompt encoder adds 0.5 to reach the pixel centre), while
this project's pixels are continuous with centres at half-integers: prompts are shifted by -0.5 on the
way in.
"""

from __future__ import annotations

import pickle
from functools import partial
from pathlib import Path

import numpy as np
import torch
from segment_anything import SamPredictor, sam_model_registry
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

from dreamedit3d_core.masks.prompts import ViewPrompt

# Sam's non-persistent normalisation buffers, as segment_anything's builder sets them: checkpoints lack them.
SAM_PIXEL_MEAN = (123.675, 116.28, 103.53)
SAM_PIXEL_STD = (58.395, 57.12, 57.375)
SAM_MODEL_TYPES = ("vit_h", "vit_l", "vit_b")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file or a legacy .pt/.pth file, never unpickling arbitrary objects."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        raise ValueError(f"{path}: not a plain tensor checkpoint, refused to unpickle it ({error})") from error
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise ValueError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
    return state


def load_sam_weights(model: Sam, path: Path) -> Sam:
    """Load a checkpoint into a Sam whose tensors may still be on the meta device (no random init paid)."""
    state = read_state_dict(path)
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as error:
        summary = str(error).splitlines()[0:3]
        raise ValueError(f"{path} does not match this SAM model: {' '.join(summary)}") from error
    model.register_buffer("pixel_mean", torch.tensor(SAM_PIXEL_MEAN).view(-1, 1, 1), persistent=False)
    model.register_buffer("pixel_std", torch.tensor(SAM_PIXEL_STD).view(-1, 1, 1), persistent=False)
    left_empty = [name for name, tensor in [*model.named_parameters(), *model.named_buffers()] if tensor.is_meta]
    if left_empty:
        raise ValueError(f"{path} leaves SAM tensors unset: {left_empty[:5]}")
    return model.eval()


def load_sam_predictor(checkpoint: str | Path, model_type: str = "vit_h", device: str = "cpu") -> SamPredictor:
    """A SamPredictor on `device` with weights from a local checkpoint (.pth or .safetensors)."""
    if model_type not in SAM_MODEL_TYPES:
        raise ValueError(f"unknown SAM model type {model_type!r}; choose one of {SAM_MODEL_TYPES}")
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"SAM checkpoint not found: {path} (model type {model_type}). Weights cannot be downloaded here: "
            "copy Meta's sam_vit_h_4b8939.pth / sam_vit_l_0b3195.pth / sam_vit_b_01ec64.pth to a local path "
            "and set sam.checkpoint"
        )
    # The registry's builder would torch.load the file itself without weights_only: build empty, load here.
    with torch.device("meta"):
        model = sam_model_registry[model_type](checkpoint=None)
    return SamPredictor(load_sam_weights(model, path).to(device))


def build_tiny_sam(seed: int = 0, img_size: int = 64) -> Sam:
    """A Segment Anything model small enough for tests (~0.1 M parameters), random weights from `seed`."""
    patch_size, embed_dim = 8, 32
    grid = img_size // patch_size
    # nn.Module initialisers take no generator: seed a forked RNG so the caller's global state is untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Sam(
            image_encoder=ImageEncoderViT(
                img_size=img_size,
                patch_size=patch_size,
                embed_dim=embed_dim,
                depth=2,
                num_heads=2,
                mlp_ratio=2.0,
                out_chans=embed_dim,
                norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                use_rel_pos=True,
                window_size=4,
                global_attn_indexes=(1,),
            ),
            prompt_encoder=PromptEncoder(
                embed_dim=embed_dim,
                image_embedding_size=(grid, grid),
                input_image_size=(img_size, img_size),
                mask_in_chans=8,
            ),
            mask_decoder=MaskDecoder(
                num_multimask_outputs=3,
                transformer=TwoWayTransformer(depth=2, embedding_dim=embed_dim, mlp_dim=64, num_heads=2),
                transformer_dim=embed_dim,
                iou_head_depth=2,
                iou_head_hidden_dim=32,
            ),
            pixel_mean=list(SAM_PIXEL_MEAN),
            pixel_std=list(SAM_PIXEL_STD),
        )
    return model.eval()


def predict_masks(
    predictor: SamPredictor,
    rgb: np.ndarray,
    prompts: list[list[ViewPrompt | None]],
    foreground: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """SAM masks (K, V, H, W) bool inside the foreground, and their predicted IoU scores (K, V).

    `prompts[k][v]` is component k's prompt in view v; None leaves that mask empty (score -inf).
    """
    num_components, num_views = len(prompts), rgb.shape[0]
    masks = np.zeros((num_components, *foreground.shape), dtype=bool)
    scores = np.full((num_components, num_views), -np.inf)
    for view in range(num_views):
        if all(prompts[k][view] is None for k in range(num_components)):
            continue
        predictor.set_image(np.ascontiguousarray(rgb[view]))
        for component in range(num_components):
            prompt = prompts[component][view]
            if prompt is None:
                continue
            has_points = len(prompt.points) > 0
            candidates, candidate_scores, _ = predictor.predict(
                point_coords=prompt.points - 0.5 if has_points else None,
                point_labels=prompt.labels if has_points else None,
                box=None if prompt.box is None else prompt.box - 0.5,
                # one click is ambiguous (part or whole?): let SAM offer three masks and keep its best
                multimask_output=len(prompt.points) == 1 and prompt.box is None,
            )
            best = int(np.argmax(candidate_scores))
            masks[component, view] = candidates[best] & foreground[view]
            scores[component, view] = float(candidate_scores[best])
    return masks, scores
