"""Attention processors for MVDream on a diffusers UNet.

MVDream's only architectural change to Stable Diffusion's transformer blocks: self-attention (`attn1`)
runs over the tokens of all views of one object at once, so the views see each other; cross-attention
(`attn2`) to the text stays per view. Both delegate the attention itself to diffusers' stock processors
(SDPA by default, xformers on CUDA when installed, the plain non-fused one for comparisons), so the maths
is diffusers' and only the token grouping is ours. `attn2` can also be asked by a CrossAttentionRecorder to
compute its probabilities explicitly and hand them over with their gradients.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

import torch
from diffusers.models.attention_processor import (
    Attention,
    AttnProcessor,
    AttnProcessor2_0,
    XFormersAttnProcessor,
)

if TYPE_CHECKING:
    from diffusers import UNet2DConditionModel

    from dreamedit3d_core.mvdiffusion.recorder import CrossAttentionRecorder

from dreamedit3d_core.mvdiffusion.settings import ATTENTION_BACKENDS, AttentionBackend



def xformers_available() -> bool:
    return importlib.util.find_spec("xformers") is not None


def _check_backend(backend: str) -> None:
    if backend not in ATTENTION_BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}; expected one of {ATTENTION_BACKENDS}")
    if backend == "xformers" and not xformers_available():
        raise ValueError("attention backend 'xformers' was requested but xformers is not installed")


_STOCK_PROCESSORS: dict[str, object] = {}


def _stock_processor(backend: str, device: torch.device) -> AttnProcessor2_0 | XFormersAttnProcessor | AttnProcessor:
    """The diffusers processor that does the attention maths; 'auto' picks by device at call time."""
    if backend == "auto":
        backend = "xformers" if device.type == "cuda" and xformers_available() else "sdpa"
    if backend not in _STOCK_PROCESSORS:
        _STOCK_PROCESSORS[backend] = {
            "sdpa": AttnProcessor2_0,
            "xformers": XFormersAttnProcessor,
            "stock": AttnProcessor,
        }[backend]()
    return _STOCK_PROCESSORS[backend]  # type: ignore[return-value]


class MultiViewAttnProcessor:
    """Self-attention over all views of an object: (B*V, N, C) -> (B, V*N, C), attend, and back."""

    def __init__(self, num_views: int, backend: AttentionBackend = "auto") -> None:
        if num_views < 1:
            raise ValueError(f"num_views must be at least 1, got {num_views}")
        _check_backend(backend)
        self.num_views = num_views
        self.backend = backend

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        **kwargs: object,
    ) -> torch.Tensor:
        if encoder_hidden_states is not None or attention_mask is not None:
            raise ValueError("the multi-view processor is for self-attention (attn1): no context and no mask")
        if hidden_states.ndim != 3:
            raise ValueError(f"expected (B*V, N, C) tokens, got shape {tuple(hidden_states.shape)}")
        batch_views, tokens, channels = hidden_states.shape
        if batch_views % self.num_views:
            raise ValueError(f"batch of {batch_views} images is not a whole number of {self.num_views}-view objects")
        objects = batch_views // self.num_views
        grouped = hidden_states.reshape(objects, self.num_views * tokens, channels)  # (B*V, N, C) -> (B, V*N, C)
        out = _stock_processor(self.backend, hidden_states.device)(attn, grouped, None, None, temb)
        return out.reshape(batch_views, tokens, channels)  # (B, V*N, C) -> (B*V, N, C)


class CrossAttnProcessor:
    """Per-view cross-attention to the text; explicit (recordable) probabilities when a recorder asks."""

    def __init__(self, name: str, backend: AttentionBackend = "auto") -> None:
        _check_backend(backend)
        self.name = name
        self.backend = backend
        self.recorder: CrossAttentionRecorder | None = None

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        **kwargs: object,
    ) -> torch.Tensor:
        recorder = self.recorder
        if recorder is None or encoder_hidden_states is None or not recorder.wants(hidden_states):
            stock = _stock_processor(self.backend, hidden_states.device)
            return stock(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        return self._recorded(attn, hidden_states, encoder_hidden_states, attention_mask, recorder)

    def _recorded(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        context: torch.Tensor,
        attention_mask: torch.Tensor | None,
        recorder: CrossAttentionRecorder,
    ) -> torch.Tensor:
        if attn.spatial_norm is not None or attn.group_norm is not None or hidden_states.ndim != 3:
            raise ValueError("recording supports the UNet's transformer cross-attention only")
        batch, queries, _ = hidden_states.shape
        if attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)
        query, key, value = attn.to_q(hidden_states), attn.to_k(context), attn.to_v(context)
        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)  # (B, N, h*d) -> (B, h, N, d)
        key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)  # (B, L, h*d) -> (B, h, L, d)
        value = value.view(batch, -1, attn.heads, head_dim).transpose(1, 2)  # (B, L, h*d) -> (B, h, L, d)
        # float32 logits and softmax, as MVDream's CrossAttention does, so bf16 maps still sum to one
        scores = torch.matmul(query.float(), key.float().transpose(-1, -2)) * attn.scale  # (B, h, N, L)
        if attention_mask is not None:
            mask = attn.prepare_attention_mask(attention_mask, key.shape[2], batch)
            scores = scores + mask.view(batch, attn.heads, -1, key.shape[2]).float()
        probs = scores.softmax(dim=-1)
        recorder.store(self.name, probs.mean(dim=1))  # heads averaged: (B, N, L)
        out = torch.matmul(probs.to(value.dtype), value)  # (B, h, N, d)
        out = out.transpose(1, 2).reshape(batch, queries, attn.heads * head_dim)  # (B, h, N, d) -> (B, N, h*d)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor


def attach_multiview_processors(unet: UNet2DConditionModel, num_views: int, backend: AttentionBackend = "auto") -> None:
    """Put the multi-view processor on every `attn1` and the recordable per-view one on every `attn2`.

    Needed after every `from_pretrained`: diffusers does not save custom processors.
    """
    processors: dict[str, object] = {}
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            processors[name] = MultiViewAttnProcessor(num_views, backend)
        elif name.endswith("attn2.processor"):
            processors[name] = CrossAttnProcessor(name.removesuffix(".processor"), backend)
        else:
            raise ValueError(f"unexpected attention layer {name} in the UNet: not an MVDream-style transformer")
    unet.set_attn_processor(processors)


def multiview_processors_attached(unet: UNet2DConditionModel) -> bool:
    return all(isinstance(p, (MultiViewAttnProcessor, CrossAttnProcessor)) for p in unet.attn_processors.values())
