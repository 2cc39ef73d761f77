"""Whether an edit's words can only change how a component looks.

"in blue", "made of gold", "with a shiny wooden finish" name colours, materials and finishes: such an edit
keeps the component's shape whatever the sampled silhouettes say (a small model draws a recoloured part as a
fat blob). Any other word ("wearing a red hat", "as a sphere") leaves the decision to the silhouettes.
"""

from __future__ import annotations

import re

COLOURS = frozenset(
    "red orange yellow gold golden green cyan teal turquoise blue navy purple violet magenta pink brown beige "
    "black white grey gray silver tan cream ivory maroon crimson scarlet lime olive indigo".split()
)
MATERIALS = frozenset(
    "wood wooden oak pine walnut metal metallic steel iron chrome chromed copper bronze brass aluminium aluminum "
    "glass marble stone granite concrete plastic rubber leather fabric cloth cotton denim velvet silk wool paper "
    "cardboard ceramic porcelain clay jade crystal ice".split()
)
FINISHES = frozenset(
    "shiny glossy matte matt polished brushed rusty painted striped dotted spotted checkered checked plaid "
    "patterned textured transparent translucent colourful colorful dark light bright pale pastel neon".split()
)
GRAMMAR = frozenset(
    "in a an the of made with and colour color coloured colored finish texture tone shade paint painted all".split()
)
APPEARANCE_WORDS = COLOURS | MATERIALS | FINISHES | GRAMMAR


def appearance_only(phrase: str) -> bool:
    """True when every word of an edit phrase names a colour, a material or a finish (or joins them)."""
    words = re.findall(r"[a-z]+", phrase.lower())
    return bool(words) and all(word in APPEARANCE_WORDS for word in words)
