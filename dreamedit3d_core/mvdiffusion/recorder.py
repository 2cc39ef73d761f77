"""Cross-attention maps of chosen prompt tokens, kept with their gradients.

The personalisation loss needs, for each chosen token, the cross-attention probability map at 16x16,
averaged over heads and over the down and up blocks at that resolution (Break-a-Scene's recipe). The
recorder asks the `attn2` processors of those blocks to compute their probabilities explicitly, keeps the
latest map of each layer, and averages them on request.

Usage (the recorder must stay attached until `backward()` when gradient checkpointing is on, because the
checkpointed blocks run their forward again then and must take the same path):

    with CrossAttentionRecorder(model.unet, token_indices=[5, 8]) as recorder:
        eps = model.noise_prediction(latents, t, embeds, cameras)
        maps = recorder.maps()  # (B*V, 2, 16, 16)
        loss = ...; loss.backward()
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel

from dreamedit3d_core.mvdiffusion.attention import CrossAttnProcessor

BLOCK_PREFIXES = {"down": "down_blocks.", "mid": "mid_block.", "up": "up_blocks."}


class CrossAttentionRecorder:
    """Records head-averaged cross-attention maps (B*V, T, r, r) of T chosen token positions."""

    def __init__(
        self,
        unet: UNet2DConditionModel,
        token_indices: Sequence[int] | torch.Tensor | None = None,
        resolution: int = 16,
        blocks: Sequence[str] = ("down", "up"),
    ) -> None:
        unknown = [b for b in blocks if b not in BLOCK_PREFIXES]
        if unknown or not blocks:
            raise ValueError(f"blocks must be a non-empty subset of {tuple(BLOCK_PREFIXES)}, got {tuple(blocks)}")
        if resolution < 1:
            raise ValueError(f"resolution must be positive, got {resolution}")
        self.unet = unet
        self._prefixes = tuple(BLOCK_PREFIXES[b] for b in blocks)
        self.processors = self._find_processors()
        if not self.processors:
            raise ValueError(
                "the UNet has no recordable cross-attention in blocks "
                f"{tuple(blocks)}: call attach_multiview_processors(unet, num_views) first"
            )
        self.resolution = resolution
        self.blocks = tuple(blocks)
        self._token_indices: torch.Tensor | None = None
        self._maps: dict[str, torch.Tensor] = {}
        if token_indices is not None:
            self.select(token_indices)

    def select(self, token_indices: Sequence[int] | torch.Tensor) -> CrossAttentionRecorder:
        """Token positions to record: (T,) for every sample, or (B*V, T) per sample. Clears old maps."""
        indices = torch.as_tensor(token_indices, dtype=torch.long)
        if indices.ndim not in (1, 2) or indices.shape[-1] == 0:
            raise ValueError(f"token_indices must be (T,) or (B*V, T) with T >= 1, got shape {tuple(indices.shape)}")
        if (indices < 0).any():
            raise ValueError("token_indices must be non-negative positions in the tokenized prompt")
        self._token_indices = indices
        self.clear()
        return self

    @property
    def token_indices(self) -> torch.Tensor | None:
        return self._token_indices

    def _find_processors(self) -> list[CrossAttnProcessor]:
        return [
            p
            for p in self.unet.attn_processors.values()
            if isinstance(p, CrossAttnProcessor) and p.name.startswith(self._prefixes)
        ]

    def attach(self) -> CrossAttentionRecorder:
        self.detach()
        self.processors = self._find_processors()  # processors are replaced when the attention backend changes
        for processor in self.processors:
            if processor.recorder is not None and processor.recorder is not self:
                raise ValueError(f"{processor.name} is already recorded by another CrossAttentionRecorder")
            processor.recorder = self
        return self

    def detach(self) -> None:
        for processor in self.processors:
            if processor.recorder is self:
                processor.recorder = None

    def __enter__(self) -> CrossAttentionRecorder:
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def clear(self) -> None:
        self._maps = {}

    def wants(self, hidden_states: torch.Tensor) -> bool:
        """Called by the processors: record this layer's call? (only at resolution x resolution)."""
        return self._token_indices is not None and hidden_states.shape[1] == self.resolution**2

    def store(self, name: str, probs: torch.Tensor) -> None:
        """Called by the processors with head-averaged probabilities (B*V, r*r, L); keeps the chosen tokens."""
        batch, queries, length = probs.shape
        indices = self._token_indices.to(probs.device)  # type: ignore[union-attr]
        if int(indices.max()) >= length:
            raise ValueError(f"token index {int(indices.max())} is past the prompt length {length}")
        if indices.ndim == 1:
            chosen = probs[:, :, indices]  # (B*V, r*r, T)
        else:
            if indices.shape[0] != batch:
                raise ValueError(f"token_indices has {indices.shape[0]} rows but the batch has {batch} images")
            chosen = torch.gather(probs, 2, indices[:, None, :].expand(batch, queries, indices.shape[1]))
        r = self.resolution
        # overwritten, not appended: a checkpointed block that recomputes in backward must not add a copy
        self._maps[name] = chosen.transpose(1, 2).reshape(batch, -1, r, r)  # (B*V, r*r, T) -> (B*V, T, r, r)

    def layer_maps(self) -> dict[str, torch.Tensor]:
        """The latest map of each recorded layer, by layer name: (B*V, T, r, r) each."""
        return dict(self._maps)

    def maps(self) -> torch.Tensor:
        """Maps averaged over the recorded layers: (B*V, T, r, r), with gradients."""
        if not self._maps:
            raise ValueError(
                f"no cross-attention was recorded at {self.resolution}x{self.resolution} in blocks {self.blocks}: "
                "check the resolution against the latent size and that a forward pass ran inside the recorder"
            )
        return torch.stack(list(self._maps.values())).mean(dim=0)

    def previews(self, size: int = 64) -> np.ndarray:
        """Maps as uint8 images (B*V, T, size, size), each divided by its max, for looking at."""
        maps = F.interpolate(self.maps().detach().float(), size=(size, size), mode="bilinear", align_corners=False)
        maps = maps / maps.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
        return (maps.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
