"""Edit prompts that name learned tokens (`<asset0>`, ...): checked before any sampling."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

TOKEN_PATTERN = re.compile(r"<[A-Za-z_][A-Za-z0-9_]*>")


def prompt_tokens(prompt: str) -> list[str]:
    """The placeholder tokens a prompt names, in order of first appearance."""
    return list(dict.fromkeys(TOKEN_PATTERN.findall(prompt)))


def check_prompt_tokens(prompt: str, available: Sequence[str], described: Mapping[str, str] | None = None) -> None:
    """Raise ValueError when the prompt names a token the personalised model does not have; `described`
    (token -> what it is, e.g. its part names) makes the list of available tokens say which is which."""
    unknown = [token for token in prompt_tokens(prompt) if token not in available]
    if unknown:
        described = described or {}
        listing = ", ".join(f"{t} ({described[t]})" if described.get(t) else t for t in available)
        listing = listing or "none (the asset has not been personalised)"
        raise ValueError(f"edit prompt {prompt!r} names unknown token(s) {', '.join(unknown)}; available tokens: {listing}")


# Words that only join tokens ("<asset0> and <asset1>"): a token followed by nothing else is named but unedited.
JOINER_WORDS = frozenset({"and", "with", "a", "an", "the", "of", ",", "&"})


def edit_phrases(prompt: str) -> dict[str, str]:
    """Each edited token with the words that edit it: "a photo of <asset0> and <asset1> in green" ->
    {"<asset1>": "in green"}. A token is edited when the words after it (up to the next token or the end)
    are more than joiners; "a photo of <asset0> and <asset1>" edits none, "<asset0> wearing a red scarf"
    edits <asset0>."""
    phrases: dict[str, str] = {}
    matches = list(TOKEN_PATTERN.finditer(prompt))
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(prompt)
        tail = prompt[match.end() : end]
        words = re.findall(r"[\w']+|[^\w\s]", tail.lower())
        if any(word not in JOINER_WORDS for word in words):
            phrases.setdefault(match.group(), tail.strip())
    return phrases


def edited_tokens(prompt: str) -> list[str]:
    """The tokens an edit changes, in order (see `edit_phrases`)."""
    return list(edit_phrases(prompt))


def plain_prompt(prompt: str) -> str:
    """The prompt without its edit words: "a photo of <asset0> and <asset1> in green" -> "a photo of <asset0>
    and <asset1>"; an edited token's words up to the next token become " and " (nothing after the last)."""
    phrases = edit_phrases(prompt)
    matches = list(TOKEN_PATTERN.finditer(prompt))
    pieces, cursor = [], 0
    for i, match in enumerate(matches):
        pieces.append(prompt[cursor : match.end()])
        cursor = match.end()
        if match.group() in phrases:  # skip its words, up to the next token
            last = i + 1 == len(matches)
            cursor = len(prompt) if last else matches[i + 1].start()
            if not last:
                pieces.append(" and ")
    pieces.append(prompt[cursor:])
    return "".join(pieces).strip()
