"""Captions of parts-world objects: word-only prompts naming every part by its colour and shape."""

from __future__ import annotations

import numpy as np

from dreamedit3d_core.mvdiffusion.vocabulary import PROMPT_WORDS
from dreamedit3d_core.world.config import COLOUR_WORDS, SHAPES
from dreamedit3d_core.world.objects import WorldObject, WorldPart

# every word a caption can use; the tiny tokenizer is built from PROMPT_WORDS + WORLD_WORDS ("torus" is new)
WORLD_WORDS: tuple[str, ...] = ("a", "photo", "of", "and", "in", *SHAPES, *COLOUR_WORDS)


def tokenizer_words() -> tuple[str, ...]:
    """The world model's vocabulary: the built-in prompt words, then the world's words they lack."""
    return (*PROMPT_WORDS, *(w for w in WORLD_WORDS if w not in PROMPT_WORDS))


def _phrase(part: WorldPart, colour_first: bool) -> str:
    return f"a {part.colour} {part.shape}" if colour_first else f"a {part.shape} in {part.colour}"


def caption(obj: WorldObject, rng: np.random.Generator) -> str:
    """'a photo of a red cube and a cone in blue': parts stack by stack, bottom to top, each phrased
    'a {colour} {shape}' or 'a {shape} in {colour}' at random."""
    colour_first = rng.random(len(obj.parts)) < 0.5
    return "a photo of " + " and ".join(_phrase(p, bool(c)) for p, c in zip(obj.parts, colour_first, strict=True))


def canonical_caption(obj: WorldObject) -> str:
    """The caption with every part phrased 'a {shape} in {colour}'."""
    return "a photo of " + " and ".join(_phrase(p, False) for p in obj.parts)


def world_captions(count: int, seed: int) -> list[str]:
    """Captions of `count` random objects of the default world (the held-out objects' stream is a different
    one): class prompts for prior preservation, so phase 2 keeps what colour and shape words do."""
    from dreamedit3d_core.world.objects import sample_split

    objects, _ = sample_split(count, 0, seed)
    rng = np.random.default_rng(seed)
    return [caption(obj, rng) for obj in objects]
