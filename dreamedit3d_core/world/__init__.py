"""The procedural parts world: random objects of coloured primitives, their captions, assets and renders.

Objects are 1 or 2 side-by-side stacks of 1 or 2 primitives (cube, sphere, cylinder, cone, torus, pyramid),
every shape at most once per object, in one of a few well-separated colours, turned about +Z at random.
They train a small multi-view diffusion model of our own: captions name every part ("a photo of a red
cube and a cone in blue"), held-out objects never appear in training (`sample_split`), and `render_world`
renders thousands of them in few Blender processes, exactly as the pipeline sees their GLB after ingest.
"""

from dreamedit3d_core.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "assets": ("to_asset", "world_asset", "write_world_asset"),
        "captions": ("WORLD_WORDS", "canonical_caption", "caption", "tokenizer_words"),
        "config": ("COLOUR_WORDS", "DEFAULT_COLOURS", "SHAPES", "WorldConfig", "WorldDatasetConfig"),
        "objects": ("WorldObject", "WorldPart", "object_key", "sample_object", "sample_split"),
        "render": ("render_world",),
    },
)
