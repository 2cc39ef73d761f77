"""Edits of world objects with their exact answer: the prompts, the edited objects, the answer's frame."""

from __future__ import annotations

import numpy as np
import pytest

from dreamedit3d_core.world import object_key, sample_split, world_asset
from dreamedit3d_core.world.edits import benchmark_edits, recolour_edit, swap_edit, truth_asset
from dreamedit3d_core.world.objects import held_out_objects

TOKENS = ["<asset0>", "<asset1>", "<asset2>"]


@pytest.fixture(scope="module")
def objects() -> list:
    return [obj for obj in sample_split(0, 64, 0)[1] if 2 <= len(obj.parts) <= 3][:12]


def test_more_held_out_objects_keep_the_datasets_and_share_no_key_with_training() -> None:
    train, held_out = sample_split(600, 16, 0)
    more = held_out_objects(60, 600, 16, 0)
    assert more[:16] == held_out and len(more) == 60
    assert not {object_key(obj) for obj in more} & {object_key(obj) for obj in train}
    assert len({object_key(obj) for obj in more}) == 60
    assert held_out_objects(10, 600, 16, 0) == held_out[:10]


def test_each_object_gets_a_recolour_a_two_part_recolour_and_a_swap(objects: list) -> None:
    for index, obj in enumerate(objects):
        one, two, swap = benchmark_edits(obj, index)
        colours = {part.colour for part in obj.parts}
        tokens = TOKENS[: len(obj.parts)]
        assert one.kind == "recolour" and one.parts == (len(obj.parts) - 1,) and one.colours[0] not in colours
        assert one.prompt(tokens) == "a photo of " + " and ".join(tokens[:-1] + [f"{tokens[-1]} in {one.colours[0]}"])
        assert two.kind == "recolour2" and len(set(two.colours)) == 2 and not set(two.colours) & colours
        assert f"{tokens[-2]} in {two.colours[0]} and {tokens[-1]} in {two.colours[1]}" in two.prompt(tokens)
        assert [p.colour for p in one.target.parts] == [p.colour for p in obj.parts[:-1]] + [one.colours[0]]
        assert [p.shape for p in one.target.parts] == [p.shape for p in obj.parts]
        part = swap.parts[0]
        assert swap.kind == "swap" and swap.shape not in {p.shape for p in obj.parts}
        assert f"{tokens[part]} as a {swap.shape} in {obj.parts[part].colour}" in swap.prompt(tokens)
        assert swap.target.parts[part].colour == obj.parts[part].colour
        bottom = lambda p: p.centre[2] - 0.5 * p.extents[2]  # noqa: E731
        assert bottom(swap.target.parts[part]) == pytest.approx(bottom(obj.parts[part]))  # on the same ground
        assert swap.kept == tuple(i for i in range(len(obj.parts)) if i != part)


def test_the_answer_is_in_the_sources_frame(objects: list) -> None:
    obj = next(o for o in objects if len(o.parts) == 2)
    source = world_asset(obj)
    one, _, swap = benchmark_edits(obj, 0)
    recoloured = truth_asset(one, source)
    for before, after in zip(source.parts, recoloured.parts, strict=True):
        np.testing.assert_array_equal(before.vertices, after.vertices)  # the same geometry, bit for bit
    assert recoloured.materials[-1].base_color != source.materials[-1].base_color
    reshaped = truth_asset(swap, source)
    kept = swap.kept[0]
    np.testing.assert_allclose(reshaped.parts[kept].vertices, source.parts[kept].vertices, atol=1e-6)
    assert reshaped.parts[swap.parts[0]].name == swap.shape


def test_bad_edits_are_refused(objects: list) -> None:
    obj = objects[0]
    with pytest.raises(ValueError, match="unknown world colour"):
        recolour_edit(obj, [0], ["mauve"])
    with pytest.raises(ValueError, match="a world shape the object lacks"):
        swap_edit(obj, len(obj.parts) - 1, obj.parts[0].shape)  # the last part: nothing rests on it
    stacked = next((o for o in objects if any(p.level > 0 for p in o.parts)), None)
    if stacked is not None:
        below = next(i for i, p in enumerate(stacked.parts) if any(q.stack == p.stack and q.level > p.level for q in stacked.parts))
        with pytest.raises(ValueError, match="carries another part"):
            swap_edit(stacked, below, "torus" if all(p.shape != "torus" for p in stacked.parts) else "sphere")
    with pytest.raises(ValueError, match="tokens for"):
        benchmark_edits(obj, 0)[0].prompt(["<asset0>"] * (len(obj.parts) + 1))


def test_a_striped_part_is_bands_of_its_colour_and_white_through_its_file(tmp_path) -> None:
    import dataclasses

    from dreamedit3d_core.ingest import ingest_asset
    from dreamedit3d_core.world import write_world_asset
    from dreamedit3d_core.world.assets import stripes_texture

    obj = sample_split(0, 64, 0)[1][44]
    striped = dataclasses.replace(obj, parts=(obj.parts[0], dataclasses.replace(obj.parts[1], pattern="striped")))
    asset = ingest_asset(write_world_asset(striped, tmp_path / "striped.glb"))
    plain, banded = asset.parts
    assert plain.uvs is None and banded.uvs is not None
    assert banded.uvs[:, 1].min() == pytest.approx(0.0) and banded.uvs[:, 1].max() == pytest.approx(1.0)
    texture = asset.materials[banded.face_materials[0]].texture
    assert texture is not None and np.array_equal(texture[..., :3], stripes_texture(obj.parts[1].rgb))
    colours = {tuple(row) for row in texture[:, 0, :3]}
    assert colours == {(255, 255, 255), tuple(np.round(np.array(obj.parts[1].rgb) * 255).astype(int))}
    assert (texture[:, 0] == 255).all(axis=-1).mean() == pytest.approx(1 / 3, abs=0.05)  # a third of it white
