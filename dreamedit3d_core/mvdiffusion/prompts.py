"""Edit prompts that name learned tokens (`<asset0>`, ...): checked before any sampling."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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


# Which words describe which token. Words belong to the token they describe, on either side of it:
# "a photo of <asset0> in green and a blue <asset1>" edits <asset0> ("in green") and <asset1> ("blue").
#   - A token's leading words: the run of content words right before it ("a blue <asset1>", "a photo of golden
#     <asset0>"). Between two tokens, a run that follows a preposition is the end of the previous token's words
#     ("<asset0> in green <asset1>"); one that follows an article or a separator is the next token's.
#   - A token's trailing words: what follows it, up to the last separator before the next token's leading
#     words ("<asset0> wearing a red scarf, and <asset1>"), or to the end of the prompt.
# A token is edited when its words hold more than function words: "<asset0> and <asset1>", "<asset0> next to
# <asset1>" and "a photo of <asset0>" edit nothing.
ARTICLES = frozenset({"a", "an", "the"})
SEPARATORS = frozenset({"and", ",", "&", ";", "plus"})
PREPOSITIONS = frozenset({
    "of", "with", "in", "on", "at", "by", "to", "from", "into", "onto", "over", "under", "above", "below",
    "beneath", "behind", "beside", "besides", "between", "near", "next", "inside", "atop", "front", "its", "their",
})
FUNCTION_WORDS = ARTICLES | SEPARATORS | PREPOSITIONS
# Words that frame the whole prompt ("a photo of", "a 3d render of") and so never lead a token.
FRAMING_WORDS = frozenset({"photo", "picture", "image", "render", "rendering", "drawing", "painting", "view", "3d", "dslr"})

_WORD = re.compile(r"[\w']+|[^\w\s]")


def _is_word(text: str) -> bool:
    """A word, not punctuation."""
    return text[0].isalnum() or text[0] in "_'"


@dataclass(frozen=True)
class TokenWords:
    """One mention of a token and the character spans of the words that describe it."""

    token: str
    leading: tuple[int, int]  # prompt[leading[0]:leading[1]]; empty when leading[0] == leading[1]
    trailing: tuple[int, int]
    article: int  # where an article right before the leading words starts (else leading[0])

    def words(self, prompt: str) -> str:
        """Its describing words, leading then trailing: "blue", "in green", "golden wearing a hat"."""
        parts = (prompt[slice(*self.leading)].strip(), prompt[slice(*self.trailing)].strip())
        return " ".join(part for part in parts if part)

    def edited(self, prompt: str) -> bool:
        return any(_is_word(w) and w not in FUNCTION_WORDS for w in _WORD.findall(self.words(prompt).lower()))


def _words(text: str, offset: int) -> list[tuple[str, int, int]]:
    return [(m.group().lower(), offset + m.start(), offset + m.end()) for m in _WORD.finditer(text)]


def _leading(words: list[tuple[str, int, int]], first: bool) -> int | None:
    """Where the leading run of the words before a token starts (words[i:] is the run), or None."""
    i = len(words)
    while i > 0 and _is_word(words[i - 1][0]) and words[i - 1][0] not in FUNCTION_WORDS | FRAMING_WORDS:
        i -= 1
    if i == len(words):
        return None
    if not first and i > 0 and words[i - 1][0] not in ARTICLES | SEPARATORS:
        return None  # "<asset0> in green <asset1>": the run ends the previous token's words
    return i


def token_words(prompt: str) -> list[TokenWords]:
    """Every token mention of `prompt` with the spans of the words that describe it (see the rules above)."""
    matches = list(TOKEN_PATTERN.finditer(prompt))
    leads: list[tuple[int, int, int]] = []  # per mention: (article start, leading start, leading end)
    for i, match in enumerate(matches):
        gap_start = matches[i - 1].end() if i else 0
        words = _words(prompt[gap_start : match.start()], gap_start)
        run = _leading(words, first=i == 0)
        if run is None:
            leads.append((match.start(), match.start(), match.start()))
            continue
        begin = words[run][1]
        article = words[run - 1][1] if run > 0 and words[run - 1][0] in ARTICLES else begin
        leads.append((article, begin, words[-1][2]))
    mentions = []
    for i, match in enumerate(matches):
        last = i + 1 == len(matches)
        stop = len(prompt) if last else leads[i + 1][0]
        words = _words(prompt[match.end() : stop], match.end())
        if not last:  # up to the last separator: what follows it joins the next token
            cut = max((k for k, (word, _, _) in enumerate(words) if word in SEPARATORS), default=len(words))
            words = words[:cut]
        while words and not _is_word(words[-1][0]):
            words = words[:-1]  # "scarf," -> "scarf"
        trailing = (words[0][1], words[-1][2]) if words else (match.end(), match.end())
        article, begin, end = leads[i]
        mentions.append(TokenWords(match.group(), (begin, end), trailing, article))
    return mentions


def edit_phrases(prompt: str) -> dict[str, str]:
    """Each edited token with the words that edit it: "a photo of <asset0> and <asset1> in green" ->
    {"<asset1>": "in green"}; "a photo of <asset0> and a blue <asset1>" -> {"<asset1>": "blue"}. See
    `token_words` for which words belong to which token; the first mention of a token that is edited counts."""
    phrases: dict[str, str] = {}
    for mention in token_words(prompt):
        if mention.edited(prompt):
            phrases.setdefault(mention.token, mention.words(prompt))
    return phrases


def edited_tokens(prompt: str) -> list[str]:
    """The tokens an edit changes, in order (see `edit_phrases`)."""
    return list(edit_phrases(prompt))


def edited_components(prompt: str, tokens: Sequence[str]) -> list[int]:
    """Indices into `tokens` of the components the prompt edits (the tokens its edit words belong to), in the
    components' order; the merge and the evaluation both ask this."""
    return sorted({list(tokens).index(token) for token in edit_phrases(prompt) if token in tokens})


def plain_prompt(prompt: str) -> str:
    """The prompt without its edit words: "a photo of <asset0> and <asset1> in green" and "a photo of <asset0>
    and a green <asset1>" -> "a photo of <asset0> and <asset1>" (an article before removed leading words goes
    with them). Two tokens left with nothing between them are joined by "and"."""
    cuts = []
    for mention in token_words(prompt):
        if mention.edited(prompt):
            cuts += [(mention.article, mention.leading[1]), mention.trailing]
    kept, cursor = [], 0
    for begin, end in sorted(cut for cut in cuts if cut[0] < cut[1]):
        kept.append(prompt[cursor:begin])
        cursor = max(cursor, end)
    kept.append(prompt[cursor:])
    text = re.sub(r"\s+", " ", "".join(kept)).strip()
    text = re.sub(r"\s+([,;])", r"\1", text)
    return re.sub(f"({TOKEN_PATTERN.pattern})\\s*(?=<)", r"\1 and ", text)


# Regional prompts: each edited token is drawn inside its own region with a prompt of its own words only
# ("a photo of <asset0> and <asset1> in blue" -> "<asset1>": "a photo of <asset1> in blue"), so that a model that
# binds colours to whole objects, not to one of several parts, still puts the colour on the right part.
REPLACEMENT_WORD = "as"  # "<asset1> as a sphere in red": the words after it name what the part becomes


def region_phrases(prompt: str, initializer_words: Mapping[str, str] | None = None, keep_token: bool = False) -> dict[str, str]:
    """Each edited token's own prompt: the prompt's framing words (what comes before its first token, "a photo
    of "), then the token with its words. With `initializer_words` (token -> word) the token is replaced by its
    word: "a photo of a pyramid in blue", "a photo of a blue pyramid", or with `keep_token` goes before it as
    DreamBooth names its subject: "a photo of a <asset1> pyramid in blue"; a replacement ("<asset1> as a sphere
    in red") becomes what it is replaced by: "a photo of a sphere in red"."""
    mentions = token_words(prompt)
    if not mentions:
        return {}
    frame = prompt[: mentions[0].article]
    phrases: dict[str, str] = {}
    for mention in mentions:
        if not mention.edited(prompt) or mention.token in phrases:
            continue
        lead = prompt[mention.article : mention.leading[1]].strip()  # "a blue" or ""
        trail = prompt[slice(*mention.trailing)].strip()  # "in blue", "as a sphere in red" or ""
        subject = mention.token
        if initializer_words is not None:
            word = initializer_words.get(mention.token)
            if word is None:
                raise ValueError(f"no initializer word for {mention.token} (words given for {', '.join(initializer_words)})")
            first, _, rest = trail.partition(" ")
            if first.lower() == REPLACEMENT_WORD and rest:
                lead, subject, trail = "", "", rest
            else:
                named = f"{mention.token} {word}" if keep_token else word
                subject = named if lead else f"a {named}"
        text = re.sub(r"\s+", " ", f"{frame}{lead} {subject} {trail}").strip()
        phrases[mention.token] = re.sub(r"\s+([,;])", r"\1", text)
    return phrases


def describe_kept(prompt: str, attributes: Mapping[str, str]) -> str:
    """Every token the prompt does not edit followed by its own words, as a model trained with attribute words
    (`attribute_words`) saw it: "a photo of <asset0> and <asset1> in blue" with {"<asset0>": "in green"} ->
    "a photo of <asset0> in green and <asset1> in blue"."""
    edited = set(edit_phrases(prompt))

    def described(match: re.Match[str]) -> str:
        token = match.group()
        words = attributes.get(token, "").strip()
        return token if token in edited or not words else f"{token} {words}"

    return TOKEN_PATTERN.sub(described, prompt)
