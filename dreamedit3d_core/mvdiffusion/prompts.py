"""Edit prompts that name learned tokens (`<asset0>`, ...): checked before any sampling."""

from __future__ import annotations

import re
from collections.abc import Sequence

TOKEN_PATTERN = re.compile(r"<[A-Za-z_][A-Za-z0-9_]*>")


def prompt_tokens(prompt: str) -> list[str]:
    """The placeholder tokens a prompt names, in order of first appearance."""
    return list(dict.fromkeys(TOKEN_PATTERN.findall(prompt)))


def check_prompt_tokens(prompt: str, available: Sequence[str]) -> None:
    """Raise ValueError when the prompt names a token the personalised model does not have."""
    unknown = [token for token in prompt_tokens(prompt) if token not in available]
    if unknown:
        listing = ", ".join(available) if available else "none (the asset has not been personalised)"
        raise ValueError(f"edit prompt {prompt!r} names unknown token(s) {', '.join(unknown)}; available tokens: {listing}")
