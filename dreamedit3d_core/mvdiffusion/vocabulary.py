"""A small word-level CLIP tokenizer built in code, for the tiny preset (no files, no hub).

CLIP's BPE splits a word into characters, marks the last one with `</w>`, then applies merges by rank.
We give every listed word a chain of merges that rebuilds it left to right, and then patch the few words
whose chain is pre-empted by a higher-ranked merge of another word, so that each word is exactly one token
with its own id. Letters, digits and punctuation stay in the vocabulary so unknown words fall back to characters rather
than to the unknown token. Digits are split one by one by CLIP's pre-tokenizer, so "3d" is two tokens.
"""

from __future__ import annotations

import string

from transformers import CLIPTokenizer

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
# SD 2.x pads with "!" (OpenCLIP pads with zeros, and id 0 is "!" in its vocabulary).
PAD_TOKEN = "!"

PROMPT_WORDS: tuple[str, ...] = tuple(
    """
    a an the of and or with without in on at to from by for under over above below behind beside between
    near next inside outside top bottom front back left right side is are this that it its his her their
    photo picture image render rendering view views drawing painting sculpture model asset object objects
    thing part parts component piece high quality detailed realistic simple clean white black red green
    blue yellow orange purple pink brown gray grey golden silver gold dark light bright colorful colourful
    transparent shiny matte metal metallic wooden wood stone glass plastic rubber leather fabric paper
    ceramic marble steel iron copper bronze crystal ice fire water made wearing holding riding sitting
    standing lying covered painted dressed style styled small large big tiny huge tall short long round
    square old new cute funny happy angry beautiful ugly pretty fancy plain striped spotted dotted
    hat cap helmet crown scarf glasses sunglasses tie bow shirt jacket coat dress shoes boots gloves
    necklace ring mask cape backpack bag umbrella flower flowers leaf leaves tree plant grass rock
    duck bird chicken cat dog horse cow pig sheep rabbit bear fox lion tiger elephant monkey mouse fish
    frog turtle dragon dinosaur robot person man woman boy girl child knight wizard astronaut pirate
    chair table sofa bed lamp desk shelf cabinet door window house castle tower car truck bus bike
    bicycle motorcycle train plane airplane boat ship rocket wheel wheels wing wings tail head body
    leg legs arm arms hand hands foot feet eye eyes ear ears nose mouth face hair beak neck seat
    handle lid cup mug bottle can box cube sphere ball cylinder cone pyramid vase bowl plate pot jar
    teapot kettle clock phone computer book pen pencil guitar drum sword shield gun toy doll teddy
    apple banana orange cake bread pizza burger donut cookie candy fruit vegetable mushroom carrot
    base stand pedestal frame roof wall floor ground sky sun moon star stars cloud snow rain
    one two three four five first second pair set
    """.split()
)


def _bpe_pieces(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """CLIP's BPE on one word: characters (last one with `</w>`), merged lowest rank first."""
    pieces = list(word[:-1]) + [word[-1] + "</w>"]
    while len(pieces) > 1:
        pairs = [(ranks.get((a, b)), i) for i, (a, b) in enumerate(zip(pieces[:-1], pieces[1:], strict=True))]
        known = [(rank, i) for rank, i in pairs if rank is not None]
        if not known:
            break
        _, i = min(known)
        pieces = pieces[:i] + [pieces[i] + pieces[i + 1]] + pieces[i + 2 :]
    return pieces


def word_vocabulary(words: tuple[str, ...] = PROMPT_WORDS) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Vocabulary and merges under which each word is one token (`word</w>`)."""
    words = tuple(dict.fromkeys(w.lower() for w in words))  # unique, order kept
    symbols = [*string.ascii_lowercase, *string.digits, *(c for c in string.punctuation if c != PAD_TOKEN)]
    tokens: list[str] = [PAD_TOKEN, *symbols, PAD_TOKEN + "</w>", *(s + "</w>" for s in symbols)]
    merges: list[tuple[str, str]] = []
    for word in words:
        prefix = word[0]
        for i, char in enumerate(word[1:], start=1):
            right = char + "</w>" if i == len(word) - 1 else char
            merges.append((prefix, right))
            prefix += right
            tokens.append(prefix)
    if any(len(w) == 1 for w in words):
        tokens.extend(w + "</w>" for w in words if len(w) == 1)
    merges = list(dict.fromkeys(merges))
    # Patch words whose own chain is pre-empted: join their leftover pieces with low-priority merges.
    for _ in range(10):
        ranks = {pair: rank for rank, pair in enumerate(merges)}
        broken = [(w, p) for w in words if len(p := _bpe_pieces(w, ranks)) > 1]
        if not broken:
            break
        for _, pieces in broken:
            joined = pieces[0]
            for piece in pieces[1:]:
                if (joined, piece) not in ranks:
                    merges.append((joined, piece))
                    ranks[(joined, piece)] = len(merges) - 1
                joined += piece
                tokens.append(joined)
    else:
        raise ValueError("could not build merges that keep every vocabulary word as one token")
    tokens = list(dict.fromkeys(tokens))
    tokens += [BOS_TOKEN, EOS_TOKEN]
    return {token: i for i, token in enumerate(tokens)}, merges


def build_word_tokenizer(words: tuple[str, ...] = PROMPT_WORDS, max_length: int = 77) -> CLIPTokenizer:
    """A CLIP tokenizer over `words` (one token each), padded with "!" like Stable Diffusion 2."""
    vocab, merges = word_vocabulary(words)
    return CLIPTokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=EOS_TOKEN,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=max_length,
    )
