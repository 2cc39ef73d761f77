"""Placeholder tokens: adding them to a model, reading and writing their embeddings.

Files are diffusers' textual-inversion format, one safetensors file per token holding `{token: (1, dim)}`
(`<asset0>` -> `asset0.safetensors`), so `StableDiffusionPipeline.load_textual_inversion` reads them too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from dreamedit3d_core.mvdiffusion import MultiViewDiffusion

# the same shape the sampler's prompt check recognises (dreamedit3d_core.mvdiffusion.prompts)
TOKEN_PATTERN = re.compile(r"^<[A-Za-z_][A-Za-z0-9_]*>$")


def check_tokens(tokens: Sequence[str]) -> None:
    if isinstance(tokens, str) or not tokens:
        raise ValueError("tokens must be a non-empty list such as ['<asset0>', '<asset1>']")
    bad = [t for t in tokens if not isinstance(t, str) or not TOKEN_PATTERN.match(t)]
    if bad:
        raise ValueError(f"tokens must look like '<asset0>' (a letter or _, then letters, digits, _), got {bad}")
    if len(set(tokens)) != len(tokens):
        raise ValueError(f"tokens must be unique, got {list(tokens)}")


def token_file_name(token: str) -> str:
    """`<asset0>` -> `asset0.safetensors`."""
    check_tokens([token])
    return token[1:-1] + ".safetensors"


def token_ids(model: MultiViewDiffusion, tokens: Sequence[str]) -> list[int]:
    """Ids of tokens already in the model's tokenizer; a clear error for those that are not."""
    check_tokens(tokens)
    vocab = model.tokenizer.get_vocab()
    missing = [t for t in tokens if t not in vocab]
    if missing:
        raise ValueError(
            f"tokens {missing} are not in the model's tokenizer: run `invert` first or add them with "
            "load_token_embeddings(directory, model)"
        )
    return [vocab[t] for t in tokens]


def word_ids(model: MultiViewDiffusion, word: str) -> list[int]:
    """Token ids of a word without special tokens; empty when the tokenizer does not know it."""
    tokenizer = model.tokenizer
    ids = tokenizer(word.strip(), add_special_tokens=False).input_ids if word.strip() else []
    if tokenizer.unk_token_id is not None and tokenizer.unk_token_id in ids:
        return []
    return list(ids)


def _grow_embeddings(model: MultiViewDiffusion, rows: int) -> None:
    """Make room for `rows` embedding rows; new rows get placeholder values that the caller overwrites."""
    embedding = model.text_encoder.get_input_embeddings()
    if embedding.weight.shape[0] >= rows:
        return
    devices = [embedding.weight.device.index or 0] if embedding.weight.is_cuda else []
    with torch.random.fork_rng(devices=devices):  # resizing draws random rows: keep the caller's RNG
        model.text_encoder.resize_token_embeddings(rows, mean_resizing=False)
    if model.config.text_vocab_size is not None:
        model.config = model.config.model_copy(update={"text_vocab_size": rows})


def _register(model: MultiViewDiffusion, tokens: Sequence[str]) -> list[int]:
    model.tokenizer.add_tokens(list(tokens))
    ids = [model.tokenizer.convert_tokens_to_ids(t) for t in tokens]
    _grow_embeddings(model, max(len(model.tokenizer), max(ids) + 1))
    return ids


def add_placeholder_tokens(
    model: MultiViewDiffusion,
    tokens: Sequence[str],
    initializer_words: Sequence[str],
    class_word: str = "object",
) -> dict[str, str]:
    """Add new tokens, each initialised from its word's embedding (several tokens: their mean).

    A word the tokenizer does not know is replaced by `class_word`. Returns token -> word actually used.
    """
    check_tokens(tokens)
    if len(initializer_words) != len(tokens):
        raise ValueError(f"{len(tokens)} tokens but {len(initializer_words)} initializer words")
    vocab = model.tokenizer.get_vocab()
    present = [t for t in tokens if t in vocab]
    if present:
        raise ValueError(f"tokens {present} are already in the tokenizer: use a fresh model or other token names")
    fallback = word_ids(model, class_word)
    if not fallback:
        raise ValueError(f"the class word {class_word!r} is unknown to the tokenizer")
    used: dict[str, str] = {}
    sources: list[list[int]] = []
    for token, word in zip(tokens, initializer_words):
        ids = word_ids(model, word)
        used[token] = word if ids else class_word
        sources.append(ids or fallback)
    new_ids = _register(model, tokens)
    weight = model.text_encoder.get_input_embeddings().weight
    with torch.no_grad():
        for new_id, ids in zip(new_ids, sources):
            weight[new_id] = weight[ids].mean(dim=0)
    return used


def get_token_embeddings(model: MultiViewDiffusion, tokens: Sequence[str]) -> dict[str, torch.Tensor]:
    """token -> its embedding row (1, dim), float32 on the CPU."""
    weight = model.text_encoder.get_input_embeddings().weight.detach()
    ids = token_ids(model, tokens)
    return {t: weight[i].float().cpu().reshape(1, -1).clone() for t, i in zip(tokens, ids)}  # (dim,) -> (1, dim)


def set_token_embeddings(model: MultiViewDiffusion, embeddings: Mapping[str, torch.Tensor]) -> list[int]:
    """Put embeddings (1, dim) into the model, adding tokens it lacks; returns their ids."""
    tokens = list(embeddings)
    check_tokens(tokens)
    weight = model.text_encoder.get_input_embeddings().weight
    dim = weight.shape[1]
    for token, tensor in embeddings.items():
        if tensor.numel() != dim:
            raise ValueError(f"embedding of {token} has {tensor.numel()} numbers, the text encoder needs {dim}")
    ids = _register(model, tokens)
    weight = model.text_encoder.get_input_embeddings().weight
    with torch.no_grad():
        for token, token_id in zip(tokens, ids):
            row = embeddings[token].reshape(dim)  # (1, dim) or (dim,) -> (dim,)
            weight[token_id] = row.to(device=weight.device, dtype=weight.dtype)
    return ids


def save_token_embeddings(
    directory: str | Path, tokens: Sequence[str], embeddings: Mapping[str, torch.Tensor]
) -> list[Path]:
    """One file per token, `asset0.safetensors` = `{"<asset0>": (1, dim) float32}`; written atomically."""
    check_tokens(tokens)
    missing = [t for t in tokens if t not in embeddings]
    if missing:
        raise ValueError(f"no embedding given for tokens {missing}")
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for token in tokens:
        path = root / token_file_name(token)
        tensor = embeddings[token].detach().float().cpu().reshape(1, -1).contiguous()  # -> (1, dim)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        save_file({token: tensor}, str(temporary))
        os.replace(temporary, path)
        paths.append(path)
    return paths


def _natural_key(path: Path) -> list[object]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def read_token_file(path: Path, dim: int | None = None) -> tuple[str, torch.Tensor]:
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{path} is not a readable safetensors file: {error}") from error
    if len(state) != 1:
        raise ValueError(f"{path} must hold exactly one token embedding, it holds keys {sorted(state)}")
    token, tensor = next(iter(state.items()))
    check_tokens([token])
    if tensor.ndim not in (1, 2) or (tensor.ndim == 2 and tensor.shape[0] != 1):
        raise ValueError(f"{path}: the embedding of {token} must be (1, dim), got {tuple(tensor.shape)}")
    if dim is not None and tensor.numel() != dim:
        raise ValueError(f"{path}: the embedding of {token} has {tensor.numel()} numbers, the text encoder needs {dim}")
    return token, tensor.reshape(1, -1).float()  # (dim,) or (1, dim) -> (1, dim)


def load_token_embeddings(
    directory: str | Path, model: MultiViewDiffusion, tokens: Sequence[str] | None = None
) -> dict[str, torch.Tensor]:
    """Read token files (all `*.safetensors` in the folder, or those of `tokens`) into the model.

    Tokens the tokenizer lacks are added; existing ones get the file's embedding. Returns token -> (1, dim).
    """
    root = Path(directory)
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder of token embeddings")
    if tokens is None:
        paths = sorted(root.glob("*.safetensors"), key=_natural_key)
        if not paths:
            raise ValueError(f"{root} holds no token embedding files (*.safetensors)")
    else:
        check_tokens(tokens)
        paths = [root / token_file_name(t) for t in tokens]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise ValueError(f"token embedding files are missing: {missing}")
    dim = model.text_encoder.get_input_embeddings().weight.shape[1]
    embeddings: dict[str, torch.Tensor] = {}
    for path in paths:
        token, tensor = read_token_file(path, dim)
        if token in embeddings:
            raise ValueError(f"{path}: token {token} appears in more than one file in {root}")
        if tokens is not None and token != tokens[len(embeddings)]:
            raise ValueError(f"{path} holds token {token}, expected {tokens[len(embeddings)]}")
        embeddings[token] = tensor
    set_token_embeddings(model, embeddings)
    return embeddings


class FrozenRows:
    """Puts every embedding row except `trainable_ids` back, bit for bit, after an optimizer step.

    Weight decay and Adam's momentum would otherwise move rows that never see a gradient.
    """

    def __init__(self, embedding: torch.nn.Embedding, trainable_ids: Sequence[int]) -> None:
        self.weight = embedding.weight
        self.reference = embedding.weight.detach().clone()
        self.keep = torch.ones(self.weight.shape[0], dtype=torch.bool, device=self.weight.device)
        self.keep[list(trainable_ids)] = False

    @torch.no_grad()
    def restore(self) -> None:
        self.weight[self.keep] = self.reference[self.keep]
