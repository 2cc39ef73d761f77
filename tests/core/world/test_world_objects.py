"""The parts world without Blender: sampling, layout, held-out split, captions and assets."""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np
import pytest

from dreamedit3d_core.ingest import ingest_asset
from dreamedit3d_core.masks.words import initializer_word
from dreamedit3d_core.mvdiffusion.vocabulary import PROMPT_WORDS, build_word_tokenizer
from dreamedit3d_core.world import (
    SHAPES,
    WORLD_WORDS,
    WorldConfig,
    canonical_caption,
    caption,
    object_key,
    sample_object,
    sample_split,
    to_asset,
    world_asset,
    write_world_asset,
)


def _objects(seed: int, count: int = 40) -> list:
    rng = np.random.default_rng(seed)
    return [sample_object(rng, WorldConfig()) for _ in range(count)]


def test_sampling_is_deterministic_per_seed() -> None:
    assert _objects(7) == _objects(7)
    assert [object_key(o) for o in _objects(7)] != [object_key(o) for o in _objects(8)]
    assert sample_split(30, 10, seed=3) == sample_split(30, 10, seed=3)
    assert sample_split(30, 10, seed=3) != sample_split(30, 10, seed=4)


def test_parts_have_distinct_shapes_and_every_count_occurs() -> None:
    objects = _objects(0, 200)
    for obj in objects:
        shapes = [p.shape for p in obj.parts]
        assert len(set(shapes)) == len(shapes) and set(shapes) <= set(SHAPES)
    assert {len(o.parts) for o in objects} == {1, 2, 3, 4}


def test_layout_stacks_touch_and_sizes_are_comparable() -> None:
    for obj in _objects(1, 100):
        stacks = obj.stacks()
        assert 1 <= len(stacks) <= 2 and all(1 <= len(s) <= 2 for s in stacks)
        for stack in stacks:
            assert stack[0].centre[2] - 0.5 * stack[0].extents[2] == pytest.approx(0.0, abs=1e-9)  # on the ground
            for lower, upper in zip(stack[:-1], stack[1:], strict=True):
                # resting on it: bounding boxes touch, neither overlapping nor floating
                top = lower.centre[2] + 0.5 * lower.extents[2]
                assert upper.centre[2] - 0.5 * upper.extents[2] == pytest.approx(top, abs=1e-9)
                assert upper.centre[:2] == lower.centre[:2]
        if len(stacks) == 2:  # side by side with a gap along x
            right_of_left = max(p.centre[0] + 0.5 * p.extents[0] for p in stacks[0])
            left_of_right = min(p.centre[0] - 0.5 * p.extents[0] for p in stacks[1])
            assert left_of_right > right_of_left
        largest = [max(p.extents) for p in obj.parts]
        assert min(largest) >= 0.4 * max(largest)


def test_held_out_keys_never_appear_in_training() -> None:
    config = WorldConfig(max_parts=2)  # a small world, so that collisions would happen without rejection
    train, held_out = sample_split(400, 40, seed=0, config=config)
    assert len(train) == 400 and len(held_out) == 40
    held_keys = {object_key(o) for o in held_out}
    assert len(held_keys) == 40
    assert not held_keys & {object_key(o) for o in train}
    # the unfiltered training stream does draw held-out kinds: the rejection is doing the work
    rng = np.random.default_rng([0, 0])
    assert held_keys & {object_key(sample_object(rng, config)) for _ in range(400)}


def test_split_refuses_a_world_too_small() -> None:
    config = WorldConfig(shapes=("cube", "sphere"), colours={"red": (1.0, 0.0, 0.0)}, max_parts=1)
    with pytest.raises(ValueError, match="too few kinds"):
        sample_split(1, 3, seed=0, config=config)


def test_config_refuses_inconsistent_settings() -> None:
    with pytest.raises(ValueError, match="caption word"):
        WorldConfig(colours={"cyan": (0.0, 1.0, 1.0)})
    with pytest.raises(ValueError, match="max_parts"):
        WorldConfig(shapes=("cube", "sphere"), max_parts=3)
    with pytest.raises(ValueError, match="0.4"):
        WorldConfig(size_range=(0.1, 1.0))


def test_captions_use_world_words_one_phrase_per_part_and_one_token_per_word() -> None:
    tokenizer = build_word_tokenizer(PROMPT_WORDS + WORLD_WORDS)
    rng = np.random.default_rng(0)
    styles = set()
    for obj in _objects(2, 60):
        for text in (caption(obj, rng), canonical_caption(obj)):
            words = text.split()
            assert set(words) <= set(WORLD_WORDS) | set(PROMPT_WORDS)
            assert text.startswith("a photo of ")
            phrases = text.removeprefix("a photo of ").split(" and ")
            assert len(phrases) == len(obj.parts)
            for phrase, part in zip(phrases, obj.parts, strict=True):
                assert phrase in (f"a {part.shape} in {part.colour}", f"a {part.colour} {part.shape}")
                styles.add(" in " in phrase)
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            assert len(ids) == len(words) and tokenizer.unk_token_id not in ids
        assert canonical_caption(obj) == "a photo of " + " and ".join(
            f"a {p.shape} in {p.colour}" for p in obj.parts
        )
    assert styles == {True, False}


def test_key_and_canonical_caption_ignore_geometry_noise() -> None:
    base = _objects(5, 1)[0]
    noisy = type(base)(
        parts=tuple(type(p)(**{**p.__dict__, "extents": tuple(1.1 * e for e in p.extents)}) for p in base.parts),
        yaw_deg=base.yaw_deg + 33.0,
    )
    assert object_key(noisy) == object_key(base) and canonical_caption(noisy) == canonical_caption(base)


def _hue(rgb: np.ndarray) -> float:
    return colorsys.rgb_to_hsv(*(float(c) for c in rgb))[0] * 360.0


def test_to_asset_names_parts_by_shape_with_their_colours() -> None:
    config = WorldConfig()
    for obj in _objects(3, 10):
        asset = to_asset(obj, config)
        assert [p.name for p in asset.parts] == [p.shape for p in obj.parts]
        assert [initializer_word(p.name) for p in asset.parts] == [p.shape for p in obj.parts]
        for index, (part, world_part) in enumerate(zip(asset.parts, obj.parts, strict=True)):
            assert np.all(part.face_materials == index)
            material = asset.materials[index]
            assert material.name == world_part.colour and material.metallic == 0.0
            assert material.roughness == config.roughness
            # linear factor: back to sRGB it is the palette colour
            linear = np.asarray(material.base_color[:3])
            srgb = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
            np.testing.assert_allclose(srgb, config.colours[world_part.colour], atol=1e-6)
            assert part.vertices.dtype == np.float32 and part.faces.dtype == np.int32
            assert len(part.faces) <= 2000  # moderate resolution keeps rendering fast


def test_glb_ingests_to_world_asset(tmp_path: Path) -> None:
    obj = max(_objects(4, 20), key=lambda o: len(o.parts))
    ingested = ingest_asset(write_world_asset(obj, tmp_path / "object.glb"))
    normalised = world_asset(obj)
    assert [p.name for p in ingested.parts] == [p.shape for p in obj.parts]
    vertices = np.concatenate([p.vertices for p in ingested.parts])
    centre = 0.5 * (vertices.min(axis=0) + vertices.max(axis=0))
    np.testing.assert_allclose(centre, 0.0, atol=1e-6)
    assert np.linalg.norm(vertices, axis=1).max() == pytest.approx(1.0, abs=1e-6)
    for a, b in zip(ingested.parts, normalised.parts, strict=True):
        np.testing.assert_array_equal(a.vertices, b.vertices)
    # the unnormalised asset is +Z up with the parts on the ground: after normalising, the lowest stays lowest
    raw = to_asset(obj)
    lowest = int(np.argmin([p.vertices[:, 2].min() for p in raw.parts]))
    assert ingested.parts[lowest].vertices[:, 2].min() == pytest.approx(vertices[:, 2].min(), abs=1e-6)
    hues = [_hue(np.asarray(ingested.materials[int(p.face_materials[0])].base_color[:3])) for p in ingested.parts]
    expected = [_hue(np.asarray(raw.materials[i].base_color[:3])) for i in range(len(raw.parts))]
    distance = np.abs((np.asarray(hues) - np.asarray(expected) + 180.0) % 360.0 - 180.0)  # round the wheel
    assert distance.max() < 2.0
