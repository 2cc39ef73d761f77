"""Initializer words: the real word a component's learned token starts from.

Part and material names in 3D files are identifiers ('Cylinder.001', 'd8_die', 'leftWheel', 'Material_3').
A token initialised from a real word learns faster than one initialised from noise, so the name is split
into words and the last real one is kept: in English compounds the head noun comes last ('left_wheel'
-> 'wheel').
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterable

# Words that name the container rather than the thing: exporters put them into every other name. The second
# line is shading models and material channels, which name how a material is lit, not what it covers (the Duck's
# material 'blinn3-fx' is no word for a duck).
GENERIC_WORDS = frozenset(
    """
    mesh meshes submesh object obj material mat mtl geometry geo node primitive prim default uv uvs
    untitled unnamed model scene root polysurface shape group part component lod instance copy new
    tex texture surface gltf glb fbx ply stl
    blinn phong lambert lambertian principled bsdf pbr shader standard specular diffuse metallic roughness
    emission emissive unlit
    """.split()
)

# Runs of capitals before a capitalised word ('HTMLParser' -> 'HTML'), capitalised or lowercase words,
# and trailing capital runs: this splits camelCase and PascalCase.
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+")


def name_words(name: str) -> list[str]:
    """Lowercase words of an identifier, split at non-letters and camelCase humps."""
    words: list[str] = []
    for chunk in re.split(r"[^A-Za-z]+", name):
        words.extend(match.group(0).lower() for match in _WORD.finditer(chunk))
    return words


def initializer_word(
    names: str | Iterable[str],
    class_word: str = "object",
    vocabulary: Container[str] | None = None,
) -> str:
    """The first of `names` that yields a real word gives its last one; else `class_word`.

    A real word is lowercase letters only, at least three of them (shorter ones are abbreviations:
    'FL', 'd8'), not generic ('mesh', 'material', ...), and in `vocabulary` where one is given (e.g. a
    tokenizer's single-token words).
    """
    candidates = [names] if isinstance(names, str) else list(names)
    for name in candidates:
        words = [
            word
            for word in name_words(name)
            if len(word) >= 3 and word not in GENERIC_WORDS and (vocabulary is None or word in vocabulary)
        ]
        if words:
            return words[-1]
    return class_word
