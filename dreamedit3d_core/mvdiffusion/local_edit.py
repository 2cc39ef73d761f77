"""Local edits: only the edited components change. Not the paper's recipe: options of the sampler.

An edit is sampled inside the edited components' regions only: their masks from the mask stage, seen from the
same cameras as the sampled views, taken to latent cells and grown by `local_edit_grow` cells (a recoloured part
may spill a little over its old outline), or by `shape_edit_grow` cells when its words change its shape ("as a
sphere"). After every DDIM step, outside the regions the latents are replaced by the known region (blended
latent diffusion), one of:
  - "plain_prompt": the prompt without its edit words ("a photo of <asset0> and <asset1>", `plain_prompt`),
    sampled beside the edit from the same noise: outside, the views are what the personalised model draws for
    the asset itself;
  - "source": the source's own renders through the model's autoencoder, noised to the step (with the edit's
    own starting noise): outside, the views are the source's, exactly at the last step.
Inside, the noise prediction is conditioned on the whole edit prompt, or with `regional_prompts` on each
edited component's own words in its own region ("a photo of <asset1> in blue", or with `region_words:
initializer` "a photo of a pyramid in blue": `region_phrases`), with classifier-free guidance per region. A
small model binds colours to whole objects, not to one of several parts: asked for one part alone, it draws it.

The tokens' cross-attention was tried as the region first (Prompt-to-Prompt's local blending): after phase 2
only a quarter to a third of a token's attention falls inside its component in the small `world` model
(attention isolation 0.26 over the benchmark's objects), and the region came out as scattered cells.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from dreamedit3d_core.mvdiffusion.prompts import describe_kept, edit_phrases, plain_prompt, region_phrases
from dreamedit3d_core.mvdiffusion.settings import SampleConfig
from dreamedit3d_core.mvdiffusion.wording import appearance_only


def edit_region(masks: np.ndarray, tokens: Sequence[str], prompt: str) -> np.ndarray:
    """(V, H, W) bool: where the prompt's edited components are, from component masks (K, V, H, W) named by
    `tokens`; all False when the prompt edits nothing."""
    masks = _check_masks(masks, tokens)
    region = np.zeros(masks.shape[1:], dtype=bool)
    for token in edit_phrases(prompt):
        region |= masks[_index(tokens, token, prompt)]
    return region


def _check_masks(masks: np.ndarray, tokens: Sequence[str]) -> np.ndarray:
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 4 or masks.shape[0] != len(tokens):
        raise ValueError(f"masks must be (K, V, H, W) with K = {len(tokens)} tokens, got shape {masks.shape}")
    return masks


def _index(tokens: Sequence[str], token: str, prompt: str) -> int:
    if token not in tokens:
        raise ValueError(f"edited token {token} of {prompt!r} has no mask (components: {', '.join(tokens)})")
    return list(tokens).index(token)


def latent_cells(mask: np.ndarray, latent_size: int, grow: int) -> torch.Tensor:
    """(V, H, W) bool at any resolution -> (V, 1, h, w) float in {0, 1}: a cell counts when any of its pixels
    does, then the region grows by `grow` cells."""
    cells = F.adaptive_max_pool2d(torch.from_numpy(np.array(mask, dtype=np.float32))[:, None], latent_size)
    if grow > 0:
        cells = F.max_pool2d(cells, kernel_size=2 * grow + 1, stride=1, padding=grow)
    return cells


@dataclass(frozen=True)
class Region:
    """Where one prompt is drawn: latent cells (V, 1, h, w) in {0, 1}, grown; `core` the cells of the component
    itself, before growing (where regions meet, each cell goes to the component it shows)."""

    prompt: str
    cells: torch.Tensor
    core: torch.Tensor | None = None


@dataclass(frozen=True)
class LocalEditPlan:
    """One edit as the local sampler draws it: its regions, and what is kept outside them."""

    regions: tuple[Region, ...]
    plain_prompt: str | None  # known region = the plain prompt's own drawing, from the same noise
    source_latents: torch.Tensor | None  # (V, C, h, w) known region = the source's views, noised to each step

    @property
    def cells(self) -> torch.Tensor:
        """(V, 1, h, w) in {0, 1}: where the edit may change the views (every region together)."""
        return torch.stack([region.cells for region in self.regions]).amax(dim=0)

    def weights(self) -> torch.Tensor:
        """(R, V, 1, h, w): how much of each cell comes from each region: from the one whose component the cell
        shows (shared where several do), else from those whose grown region reaches it; cells outside every
        region take all alike (they are replaced by the known region)."""
        cells = torch.stack([region.cells for region in self.regions])  # (R, V, 1, h, w)
        cores = torch.stack([region.cells if region.core is None else region.core for region in self.regions])
        claimed = cores.sum(dim=0, keepdim=True) > 0  # (1, V, 1, h, w): some component shows there
        owners = torch.where(claimed, cores, cells)
        total = owners.sum(dim=0, keepdim=True)
        return torch.where(total > 0, owners / total.clamp_min(1.0), torch.full_like(cells, 1.0 / len(self.regions)))


def plan_local_edit(
    prompt: str,
    tokens: Sequence[str],
    component_masks: np.ndarray,
    config: SampleConfig,
    latent_size: int,
    *,
    initializer_words: Mapping[str, str] | None = None,
    attributes: Mapping[str, str] | None = None,
    source_latents: torch.Tensor | None = None,
) -> LocalEditPlan:
    """The regions of `prompt`'s edited components (masks (K, V, H, W) named by `tokens`) as `config` asks.
    `attributes` (token -> words, "in green"): the words a model trained with attribute words saw beside each
    token; the tokens the prompt keeps get theirs (`describe_kept`)."""
    masks = _check_masks(component_masks, tokens)
    words = edit_phrases(prompt)
    if config.known_region == "source" and source_latents is None:
        raise ValueError("sample.known_region 'source' needs the source's latents (its renders through the autoencoder)")
    grown = {
        token: latent_cells(
            masks[_index(tokens, token, prompt)],
            latent_size,
            config.local_edit_grow if appearance_only(phrase) else config.shape_edit_grow,
        )
        for token, phrase in words.items()
    }
    cores = {token: latent_cells(masks[_index(tokens, token, prompt)], latent_size, 0) for token in words}
    if not grown:  # the prompt edits nothing: the whole view is the known region
        empty = latent_cells(np.zeros(masks.shape[1:], dtype=bool), latent_size, 0)
        regions: tuple[Region, ...] = (Region(prompt, empty),)
    elif config.regional_prompts:
        named = config.region_words != "token"
        if named and initializer_words is None:
            raise ValueError(f"sample.region_words {config.region_words!r} needs the components' initializer words")
        phrases = region_phrases(prompt, initializer_words if named else None, keep_token=config.region_words == "token_and_initializer")
        regions = tuple(Region(phrases[token], cells, cores[token]) for token, cells in grown.items())
    else:
        regions = (Region(describe_kept(prompt, attributes or {}), torch.stack(list(grown.values())).amax(dim=0)),)
    plain = describe_kept(plain_prompt(prompt), attributes or {})
    return LocalEditPlan(
        regions=regions,
        plain_prompt=plain if config.known_region == "plain_prompt" else None,
        source_latents=source_latents if config.known_region == "source" else None,
    )
