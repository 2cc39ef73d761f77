"""The procedural parts world: random objects of coloured primitives, their captions, assets and renders.

Objects are 1 or 2 side-by-side stacks of 1 or 2 primitives (cube, sphere, cylinder, cone, torus, pyramid),
every shape at most once per object, in one of a few well-separated colours, turned about +Z at random.
They train a small multi-view diffusion model of our own: captions name every part ("a photo of a red
cube and a cone in blue"), held-out objects never appear in training (`sample_split`), and `render_world`
renders thousands of them in few Blender processes, exactly as the pipeline sees their GLB after ingest.
"""

from dreamedit3d_core.world.assets import to_asset, world_asset, write_world_asset
from dreamedit3d_core.world.captions import WORLD_WORDS, canonical_caption, caption, tokenizer_words
from dreamedit3d_core.world.config import COLOUR_WORDS, DEFAULT_COLOURS, SHAPES, WorldConfig, WorldDatasetConfig
from dreamedit3d_core.world.objects import WorldObject, WorldPart, object_key, sample_object, sample_split
from dreamedit3d_core.world.render import render_world

__all__ = [
    "COLOUR_WORDS",
    "DEFAULT_COLOURS",
    "SHAPES",
    "WORLD_WORDS",
    "WorldConfig",
    "WorldDatasetConfig",
    "WorldObject",
    "WorldPart",
    "canonical_caption",
    "caption",
    "object_key",
    "render_world",
    "sample_object",
    "sample_split",
    "to_asset",
    "tokenizer_words",
    "world_asset",
    "write_world_asset",
]
