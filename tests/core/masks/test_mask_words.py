"""Initializer words from the names real 3D files carry."""

from __future__ import annotations

import pytest

from dreamedit3d_core.masks import initializer_word
from dreamedit3d_core.masks.words import name_words


@pytest.mark.parametrize(
    ("name", "word"),
    [
        ("Cube", "cube"),
        ("Sphere", "sphere"),
        ("Cylinder.001", "cylinder"),
        ("Plane", "plane"),
        ("d8_die", "die"),
        ("fuze_uv", "fuze"),
        ("leftWheel", "wheel"),
        ("Wheel_FL_02", "wheel"),
        ("HTMLParser", "parser"),
    ],
)
def test_part_names_become_one_lowercase_word(name: str, word: str) -> None:
    assert initializer_word(name) == word


@pytest.mark.parametrize("name", ["", "Mesh_0", "Material.001", "Default-Material", "d8 (1)", "Object_12", "___"])
def test_names_without_a_real_word_fall_back_to_the_class_word(name: str) -> None:
    assert initializer_word(name) == "object"
    assert initializer_word(name, class_word="toy") == "toy"


def test_first_name_with_a_real_word_wins() -> None:
    assert initializer_word(["group_1", "Mesh_0", "Cylinder.001", "Sphere"]) == "cylinder"


def test_vocabulary_keeps_only_known_words() -> None:
    assert initializer_word("leftWheel", vocabulary={"left"}) == "left"
    assert initializer_word("fuze_uv", vocabulary={"cube"}, class_word="bottle") == "bottle"


def test_name_words_split_camel_case_digits_and_punctuation() -> None:
    assert name_words("leftFrontWheel.002") == ["left", "front", "wheel"]
    assert name_words("d8_die") == ["d", "die"]
    assert name_words("") == []


def test_a_material_named_after_its_shading_model_is_no_word_for_the_part() -> None:
    """The Duck (glTF sample): its part 'LOD3spShape' has no real word, its material is 'blinn3-fx': the
    token starts from the class word, not from 'blinn'; a material with a real name still gives one."""
    assert initializer_word(["LOD3spShape", "blinn3-fx"]) == "object"
    assert initializer_word(["Mesh_0", "Principled BSDF", "phong1", "lambert2SG"], class_word="duck") == "duck"
    assert initializer_word(["Mesh_0", "Leather"]) == "leather"
