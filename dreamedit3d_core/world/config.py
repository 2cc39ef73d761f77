"""Settings of the procedural parts world: which shapes and colours exist and how objects are laid out."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dreamedit3d_core.render.config import RenderConfig

SHAPES: tuple[str, ...] = ("cube", "sphere", "cylinder", "cone", "torus", "pyramid")
# sRGB; hues spread round the wheel (red 0, brown 25 but dark, orange 30, yellow 53, green 127, blue 224,
# purple 277, pink 328 degrees) and none near white, grey or black, so each reads on a white background
DEFAULT_COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.08, 0.08),
    "orange": (0.98, 0.52, 0.05),
    "yellow": (0.96, 0.86, 0.08),
    "green": (0.12, 0.66, 0.18),
    "blue": (0.10, 0.32, 0.92),
    "purple": (0.56, 0.18, 0.80),
    "pink": (0.98, 0.42, 0.72),
    "brown": (0.50, 0.27, 0.10),
}
COLOUR_WORDS: tuple[str, ...] = tuple(DEFAULT_COLOURS)


class WorldConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shapes: tuple[str, ...] = SHAPES
    colours: dict[str, tuple[float, float, float]] = Field(default_factory=lambda: dict(DEFAULT_COLOURS))
    distinct_colours: bool = False  # True: no two parts of one object share a colour
    # layout: side-by-side stacks of parts resting on each other
    min_parts: int = Field(1, ge=1)
    max_parts: int = Field(4, ge=1)
    max_stacks: int = Field(2, ge=1)
    max_stack_height: int = Field(2, ge=1)
    # largest extent of each part (the scale is arbitrary: ingest normalises to the unit sphere)
    size_range: tuple[float, float] = (0.6, 1.0)
    aspect_range: tuple[float, float] = (0.7, 1.4)  # height / width of cylinders, cones and pyramids
    gap_range: tuple[float, float] = (0.05, 0.25)  # gap between stacks, in units of the largest part
    torus_thickness: float = Field(0.4, gt=0.05, lt=1.0)  # tube radius / ring radius
    # look and mesh resolution (kept moderate: thousands of objects get rendered)
    roughness: float = Field(0.6, ge=0.0, le=1.0)
    sphere_subdivisions: int = Field(3, ge=1, le=5)
    segments: int = Field(32, ge=8, le=256)

    @field_validator("shapes")
    @classmethod
    def _known_shapes(cls, shapes: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [s for s in shapes if s not in SHAPES]
        if unknown or len(set(shapes)) != len(shapes) or not shapes:
            raise ValueError(f"shapes must be distinct names from {SHAPES}, got {shapes}")
        return shapes

    @field_validator("colours")
    @classmethod
    def _known_colours(cls, colours: dict[str, tuple[float, float, float]]) -> dict[str, tuple[float, float, float]]:
        if not colours:
            raise ValueError("colours is empty")
        for name, rgb in colours.items():
            if name not in COLOUR_WORDS:
                raise ValueError(f"colour {name!r} has no caption word (known: {', '.join(COLOUR_WORDS)})")
            if not all(0.0 <= c <= 1.0 for c in rgb):
                raise ValueError(f"colour {name!r}: sRGB components must lie in [0, 1], got {rgb}")
        return colours

    @model_validator(mode="after")
    def _consistent(self) -> WorldConfig:
        capacity = min(len(self.shapes), self.max_stacks * self.max_stack_height)
        if not self.min_parts <= self.max_parts <= capacity:
            raise ValueError(
                f"need min_parts <= max_parts <= {capacity} (distinct shapes, max_stacks * max_stack_height), "
                f"got {self.min_parts}, {self.max_parts}"
            )
        if self.distinct_colours and self.max_parts > len(self.colours):
            raise ValueError(f"distinct_colours with max_parts={self.max_parts} needs that many colours")
        for name in ("size_range", "aspect_range", "gap_range"):
            low, high = getattr(self, name)
            if not 0.0 <= low <= high or high <= 0.0:
                raise ValueError(f"{name} must be (low, high) with 0 <= low <= high and high > 0, got {(low, high)}")
        if self.size_range[0] < 0.4 * self.size_range[1]:
            raise ValueError(f"size_range {self.size_range}: a part smaller than 0.4 x the largest is hard to see")
        return self


def _world_render() -> RenderConfig:
    return RenderConfig(image_size=64, samples=8)


class WorldDatasetConfig(BaseModel):
    """The training set of the world model: how many objects, which are held out, how they are rendered."""

    model_config = ConfigDict(extra="forbid")

    objects: int = Field(6000, ge=1)  # training objects
    held_out: int = Field(64, ge=0)  # objects never trained on (the benchmark's and the example's)
    seed: int = 0
    captions_per_object: int = Field(3, ge=1)  # random phrasings; one is drawn at every training step
    world: WorldConfig = Field(default_factory=WorldConfig)
    # the pipeline's render stage settings at the model's size (the orbit must match the `world` preset's)
    render: RenderConfig = Field(default_factory=_world_render)
