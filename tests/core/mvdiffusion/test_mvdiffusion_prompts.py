"""Which words of an edit prompt describe which token: before it or after it, the token they describe."""

from __future__ import annotations

import pytest

from dreamedit3d_core.mvdiffusion.prompts import edit_phrases, edited_components, plain_prompt, region_phrases

PLAIN = "a photo of <asset0> and <asset1>"


@pytest.mark.parametrize(
    ("prompt", "phrases"),
    [
        # words after the token they describe
        ("a photo of <asset0> and <asset1> in green", {"<asset1>": "in green"}),
        ("a photo of <asset0> in green and <asset1>", {"<asset0>": "in green"}),
        ("a photo of <asset0> wearing a red scarf, and <asset1>", {"<asset0>": "wearing a red scarf"}),
        ("a photo of <asset0> with a red scarf and <asset1>", {"<asset0>": "with a red scarf"}),
        ("a photo of <asset0> in green <asset1>", {"<asset0>": "in green"}),
        # words before the token they describe
        ("a photo of <asset0> and a blue <asset1>", {"<asset1>": "blue"}),
        ("a photo of a blue <asset0> and <asset1>", {"<asset0>": "blue"}),
        ("a 3d render of a bright blue <asset0> and <asset1>", {"<asset0>": "bright blue"}),
        ("a golden <asset0>", {"<asset0>": "golden"}),
        # both, in either order
        ("a photo of a golden <asset0> and a red <asset1>", {"<asset0>": "golden", "<asset1>": "red"}),
        ("a photo of <asset0> in green and a blue <asset1>", {"<asset0>": "in green", "<asset1>": "blue"}),
        ("a photo of <asset0> in gold and <asset1> in blue", {"<asset0>": "in gold", "<asset1>": "in blue"}),
        # no edit: only joiners, articles, framing and relations
        (PLAIN, {}),
        ("a photo of <asset0>", {}),
        ("a photo of <asset0> next to <asset1>", {}),
        ("<asset0> with <asset1>", {}),
        ("<asset0> next to a blue <asset1>", {"<asset1>": "blue"}),
    ],
)
def test_words_belong_to_the_token_they_describe(prompt: str, phrases: dict[str, str]) -> None:
    assert edit_phrases(prompt) == phrases


def test_the_stages_change_the_part_the_words_describe() -> None:
    tokens = ["<asset0>", "<asset1>"]
    assert edited_components("a photo of <asset0> and a gold <asset1>", tokens) == [1]
    assert edited_components("a photo of a gold <asset0> and <asset1>", tokens) == [0]
    assert edited_components("a photo of <asset0> and <asset1> in gold", tokens) == [1]
    assert edited_components("a photo of <asset1> in gold and <asset0> in red", tokens) == [0, 1]  # components' order


@pytest.mark.parametrize(
    "prompt",
    [
        "a photo of <asset0> and <asset1> in green",
        "a photo of <asset0> and a green <asset1>",
        "a photo of a green <asset0> and <asset1>",
        "a photo of <asset0> wearing a red scarf and <asset1>",
        "a photo of <asset0> in green <asset1>",
        "a photo of a golden <asset0> and a red <asset1>",
        PLAIN,
    ],
)
def test_the_plain_prompt_is_the_training_prompt_whichever_side_the_edit_words_are(prompt: str) -> None:
    assert plain_prompt(prompt) == PLAIN


def test_the_plain_prompt_keeps_relations_and_framing() -> None:
    assert plain_prompt("a 3d render of <asset0> next to a blue <asset1>") == "a 3d render of <asset0> next to <asset1>"
    assert plain_prompt("a blue <asset0>") == "<asset0>"


WORDS = {"<asset0>": "cube", "<asset1>": "pyramid"}


@pytest.mark.parametrize(
    ("prompt", "own", "named"),
    [
        ("a photo of <asset0> and <asset1> in blue", {"<asset1>": "a photo of <asset1> in blue"}, {"<asset1>": "a photo of a pyramid in blue"}),
        ("a photo of <asset0> and a blue <asset1>", {"<asset1>": "a photo of a blue <asset1>"}, {"<asset1>": "a photo of a blue pyramid"}),
        (
            "a photo of <asset0> in red and <asset1> as a sphere in green",
            {"<asset0>": "a photo of <asset0> in red", "<asset1>": "a photo of <asset1> as a sphere in green"},
            {"<asset0>": "a photo of a cube in red", "<asset1>": "a photo of a sphere in green"},
        ),
        ("a 3d render of a golden <asset0>, 3d asset", {"<asset0>": "a 3d render of a golden <asset0>, 3d asset"}, {"<asset0>": "a 3d render of a golden cube, 3d asset"}),
        ("<asset0> wearing a red scarf", {"<asset0>": "<asset0> wearing a red scarf"}, {"<asset0>": "a cube wearing a red scarf"}),
        (PLAIN, {}, {}),
    ],
)
def test_each_edited_token_gets_a_prompt_of_its_own_words(prompt: str, own: dict, named: dict) -> None:
    assert region_phrases(prompt) == own
    assert region_phrases(prompt, WORDS) == named


def test_region_phrases_need_every_edited_tokens_word() -> None:
    with pytest.raises(ValueError, match="no initializer word for <asset1>"):
        region_phrases("a photo of <asset0> and <asset1> in blue", {"<asset0>": "cube"})
