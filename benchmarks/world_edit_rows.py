"""The edit benchmark's rows: each a personalisation and a sampler, spelled out in full.

A row's settings are written here rather than read from the `world` preset, so that a row's cached scores (its
digest: bench_world_edits.row_digest) keep meaning the same settings while the preset is tuned. Here too: the
rows each half runs by default and the samples per edit each row gets.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dreamedit3d_core.config import merge  # noqa: E402

# Personalisations, each spelled out in full (the world preset's values change as it is tuned; a row does not)
PLAIN_PERSONALISATION: dict[str, Any] = {
    "personalize": True,
    "invert": {"attribute_words": False, "token_norm": "learned"},
    "finetune": {"prior_preservation": False, "attribute_words": False, "unet_weights": "all"},
}
PRIOR = {"finetune": {"prior_preservation": True}}
ATTRIBUTES = {"invert": {"attribute_words": True}, "finetune": {"attribute_words": True}}
NORM = {"invert": {"token_norm": "initializer"}}
KV = {"finetune": {"unet_weights": "cross_attention_kv"}}
FAST: dict[str, Any] = {
    "personalize": True,
    "invert": {"mixed_precision": "bf16", "steps": 100},
    "finetune": {"mixed_precision": "bf16", "steps": 150, "checkpoint_every": 50, "prior_images": 8, "prior_sample_steps": 25},
}


def _with(*parts: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = PLAIN_PERSONALISATION
    for part in parts:
        result = merge(result, part)
    return result


PERSONALISATIONS: dict[str, dict[str, Any] | None] = {
    "none": None,  # the base model: no tokens, no fine-tuning
    "paper": _with(),
    "prior": _with(PRIOR),
    "attr": _with(PRIOR, ATTRIBUTES),
    "norm": _with(PRIOR, NORM),
    "kv": _with(PRIOR, KV),
    "attr+norm": _with(PRIOR, ATTRIBUTES, NORM),
    "attr+kv": _with(PRIOR, ATTRIBUTES, KV),
    "attr+norm+kv": _with(PRIOR, ATTRIBUTES, NORM, KV),
    "preset": {},  # the world preset as shipped (no personalisation: `personalize: false`)
    "personalised": {"personalize": True},  # the world preset's personalisation, turned on (the previous preset)
    # that personalisation made cheaper (the night's throughput): bf16 autocast in both phases, fewer steps,
    # fewer and shorter prior samples; judged here against the preset before a preset takes them
    "fast": FAST,
    "faster": merge(FAST, {"invert": {"steps": 50}, "finetune": {"steps": 75, "checkpoint_every": 25}}),
}
# Samplers, each spelled out in full over the paper's (the library's defaults), for the same reason
PAPER_SAMPLER: dict[str, Any] = {
    "local_edit": False, "regional_prompts": False, "region_words": "token", "known_region": "plain_prompt",
    "region_context": "object", "local_edit_grow": 1, "shape_edit_grow": 3, "guidance_scale": 5.0,
}  # fmt: skip
SAMPLERS: dict[str, dict[str, Any]] = {
    "free": {"local_edit": False, "regional_prompts": False},
    "local-plain": {"local_edit": True, "regional_prompts": False, "known_region": "plain_prompt"},
    "local-source": {"local_edit": True, "regional_prompts": False, "known_region": "source"},
    "regional-token-plain": {"local_edit": True, "regional_prompts": True, "region_words": "token", "known_region": "plain_prompt"},
    "regional-token-source": {"local_edit": True, "regional_prompts": True, "region_words": "token", "known_region": "source"},
    "regional-word-plain": {"local_edit": True, "regional_prompts": True, "region_words": "initializer", "known_region": "plain_prompt"},
    "regional-word-source": {"local_edit": True, "regional_prompts": True, "region_words": "initializer", "known_region": "source"},
    "regional-both-source": {"local_edit": True, "regional_prompts": True, "region_words": "token_and_initializer", "known_region": "source"},
    "preset": {},
}
WORD_SOURCE = SAMPLERS["regional-word-source"]
SAMPLERS.update({  # the regional sampler's own settings, tuned on the tuning half
    "word-grow0": {**WORD_SOURCE, "local_edit_grow": 0},
    "word-grow2": {**WORD_SOURCE, "local_edit_grow": 2},
    "word-g7.5": {**WORD_SOURCE, "guidance_scale": 7.5},
    "word-g10": {**WORD_SOURCE, "guidance_scale": 10.0},
    "word-shape1": {**WORD_SOURCE, "shape_edit_grow": 1},
    "word-shape2": {**WORD_SOURCE, "shape_edit_grow": 2},
    "word-alone": {**WORD_SOURCE, "region_context": "alone"},
    "word-alone-grow0": {**WORD_SOURCE, "region_context": "alone", "local_edit_grow": 0},
    "word-alone-grow0-shape1": {**WORD_SOURCE, "region_context": "alone", "local_edit_grow": 0, "shape_edit_grow": 1},
    "word-alone-grow0-shape2": {**WORD_SOURCE, "region_context": "alone", "local_edit_grow": 0, "shape_edit_grow": 2},
})
# the sampler chosen on the tuning half with the base model (regions drawn alone, new shapes grown one cell), with
# each kind of region words: the personalisations are compared under it
CHOSEN = {**WORD_SOURCE, "region_context": "alone", "local_edit_grow": 1, "shape_edit_grow": 1}
SAMPLERS.update({
    "chosen-word": CHOSEN,
    "chosen-token": {**CHOSEN, "region_words": "token"},
    "chosen-both": {**CHOSEN, "region_words": "token_and_initializer"},
    "chosen-word-25": {**CHOSEN, "steps": 25},  # half the sampling steps (the night's throughput)
})
SAMPLERS = {name: sampler if name == "preset" else {**PAPER_SAMPLER, **sampler} for name, sampler in SAMPLERS.items()}


@dataclass(frozen=True)
class Row:
    label: str
    personalisation: str
    sampler: str
    oracle: bool = False  # the base model draws the answer's caption freely


ROWS: dict[str, Row] = {
    "paper": Row("the paper's recipe (free draw of the edit prompt)", "paper", "free"),
    "paper+local": Row("paper + local edit (plain prompt outside)", "paper", "local-plain"),
    "prior": Row("paper + prior preservation", "prior", "free"),
    "prior+local": Row("paper + prior + local edit (the previous world preset)", "prior", "local-plain"),
    "prior+regional-token": Row("prior + regional prompts, token words, source outside", "prior", "regional-token-source"),
    "prior+regional-word": Row("prior + regional prompts, initializer words, source outside", "prior", "regional-word-source"),
    "attr+regional-token": Row("prior + attribute words + regional token, source outside", "attr", "regional-token-source"),
    "attr+regional-word": Row("prior + attribute words + regional word, source outside", "attr", "regional-word-source"),
    "norm+regional-token": Row("prior + token norm + regional token, source outside", "norm", "regional-token-source"),
    "kv+regional-token": Row("prior + K/V-only phase 2 + regional token, source outside", "kv", "regional-token-source"),
    "kv+regional-word": Row("prior + K/V-only phase 2 + regional word, source outside", "kv", "regional-word-source"),
    "attr+norm+regional-token": Row("prior + attribute words + token norm + regional token", "attr+norm", "regional-token-source"),
    "attr+kv+regional-token": Row("prior + attribute words + K/V-only + regional token", "attr+kv", "regional-token-source"),
    "all+regional-token": Row("prior + attribute words + token norm + K/V-only + regional token", "attr+norm+kv", "regional-token-source"),
    "all+regional-both": Row("prior + attribute words + token norm + K/V-only + regional token and word", "attr+norm+kv", "regional-both-source"),
    "kv+regional-both": Row("prior + K/V-only phase 2 + regional token and word, source outside", "kv", "regional-both-source"),
    "attr+regional-both": Row("prior + attribute words + regional token and word, source outside", "attr", "regional-both-source"),
    "all+regional-word": Row("prior + attribute words + token norm + K/V-only + regional word", "attr+norm+kv", "regional-word-source"),
    # the world preset as shipped (no personalisation) and its personalisation turned on, under the preset's sampler
    # and its other settings
    "preset": Row("the world preset (no personalisation)", "preset", "preset"),
    "personalised": Row("the world preset's personalisation (the previous world preset)", "personalised", "preset"),
    "personalised/free": Row("world preset's personalisation, free draw", "personalised", "free"),
    "personalised/local-plain": Row("world preset's personalisation, local edit, plain prompt outside", "personalised", "local-plain"),
    "personalised/local-source": Row("world preset's personalisation, local edit, source outside", "personalised", "local-source"),
    "personalised/token-plain": Row("world preset's personalisation, regional token, plain prompt outside", "personalised", "regional-token-plain"),
    "personalised/token-source": Row("world preset's personalisation, regional token, source outside", "personalised", "regional-token-source"),
    "personalised/word-plain": Row("world preset's personalisation, regional word, plain prompt outside", "personalised", "regional-word-plain"),
    "personalised/chosen-token": Row("world preset's personalisation, regions alone, token words", "personalised", "chosen-token"),
    "personalised/chosen-both": Row("world preset's personalisation, regions alone, token and initializer word", "personalised", "chosen-both"),
    "personalised/word-source": Row("world preset's personalisation, regional word, source outside", "personalised", "regional-word-source"),
    # no personalisation
    "base+regional-word": Row("no personalisation: base model, regional word, source outside", "none", "regional-word-source"),
    "base+word-grow0": Row("no personalisation, regional word, regions not grown", "none", "word-grow0"),
    "base+word-grow2": Row("no personalisation, regional word, regions grown 2 cells", "none", "word-grow2"),
    "base+word-g7.5": Row("no personalisation, regional word, guidance 7.5", "none", "word-g7.5"),
    "base+word-g10": Row("no personalisation, regional word, guidance 10", "none", "word-g10"),
    "base+word-shape1": Row("no personalisation, regional word, new shapes grown 1 cell", "none", "word-shape1"),
    "base+word-shape2": Row("no personalisation, regional word, new shapes grown 2 cells", "none", "word-shape2"),
    "base+word-alone": Row("no personalisation, regional word drawn alone", "none", "word-alone"),
    "base+word-alone-grow0": Row("no personalisation, regional word drawn alone, regions not grown", "none", "word-alone-grow0"),
    "base+word-alone-grow0-shape1": Row("no personalisation, regional word drawn alone, not grown, new shapes 1 cell", "none", "word-alone-grow0-shape1"),
    "base+word-alone-grow0-shape2": Row("no personalisation, regional word drawn alone, not grown, new shapes 2 cells", "none", "word-alone-grow0-shape2"),
    "fast": Row("the world preset's personalisation, bf16, invert 100 steps, finetune 150, prior 8 samples of 25 steps", "fast", "preset"),
    "faster": Row("the world preset's personalisation, bf16, invert 50 steps, finetune 75, prior 8 samples of 25 steps", "faster", "preset"),
    "fast/steps25": Row("the 'fast' personalisation, sampled in 25 steps", "fast", "chosen-word-25"),
    "faster/steps25": Row("the 'faster' personalisation, sampled in 25 steps", "faster", "chosen-word-25"),
    "base+chosen-word": Row("no personalisation: base model, regions alone, initializer words", "none", "chosen-word"),
    "prior+chosen-word": Row("prior + regions alone, initializer words", "prior", "chosen-word"),
    "attr+chosen-word": Row("prior + attribute words + regions alone, initializer words", "attr", "chosen-word"),
    "kv+chosen-word": Row("prior + K/V-only + regions alone, initializer words", "kv", "chosen-word"),
    "attr+kv+chosen-word": Row("prior + attribute words + K/V-only + regions alone, initializer words", "attr+kv", "chosen-word"),
    "all+chosen-word": Row("prior + attribute words + token norm + K/V-only + regions alone, initializer words", "attr+norm+kv", "chosen-word"),
    "kv+chosen-token": Row("prior + K/V-only + regions alone, token words", "kv", "chosen-token"),
    "attr+kv+chosen-token": Row("prior + attribute words + K/V-only + regions alone, token words", "attr+kv", "chosen-token"),
    "all+chosen-token": Row("prior + attribute words + token norm + K/V-only + regions alone, token words", "attr+norm+kv", "chosen-token"),
    "kv+chosen-both": Row("prior + K/V-only + regions alone, token and initializer word", "kv", "chosen-both"),
    "all+chosen-both": Row("prior + attribute words + token norm + K/V-only + regions alone, token and initializer word", "attr+norm+kv", "chosen-both"),
    "oracle": Row("oracle: base model draws the answer's caption (foreground colours)", "none", "free", oracle=True),
}
# the tuning half: the personalisations under the chosen sampler (the sampler's own rows: base+word-*, --list-rows)
TUNING_ROWS = ["base+chosen-word", "all+chosen-word", "kv+chosen-word", "attr+chosen-word", "prior+chosen-word",
               "all+chosen-token", "kv+chosen-token", "all+chosen-both", "kv+chosen-both", "paper", "paper+local", "prior",
               "prior+local"]  # fmt: skip
# the test half: the Done-when rows first (each object gets them all before the next object starts)
TEST_ROWS = ["preset", "personalised", "personalised/chosen-token", "base+chosen-word", "oracle", "paper", "paper+local", "personalised/chosen-both",
             "personalised/free", "personalised/local-plain", "personalised/local-source", "personalised/token-plain", "personalised/token-source",
             "personalised/word-plain", "personalised/word-source"]  # fmt: skip
TEXTURED_ROWS = ["base+chosen-word", "preset", "personalised", "personalised/chosen-token", "personalised/word-plain", "personalised/token-plain"]
# Samples per edit. On the test half the `world` preset gets 3 (the Done-when numbers); the other rows 1, the
# budget of a 2-core CPU (a sampling row costs about 25 minutes per sample over 32 objects there): `--samples 3`
# runs every row with 3 where there is the time (a GPU).
TEST_SAMPLES = {"preset": 3, "personalised": 3}


def default_samples(half: str, row: str) -> int:
    return TEST_SAMPLES.get(row, 1) if half == "test" else 1
