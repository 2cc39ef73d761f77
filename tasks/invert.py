"""Stage `invert` (phase 1): one learned token embedding per component, from the views and their masks."""

from __future__ import annotations

from dreamedit3d_core.personalize import invert_tokens, prepare_training_data, save_token_embeddings
from dreamedit3d_core.personalize.data import attribute_phrases
from tasks.artifacts import (
    ATTENTION_ISOLATION,
    ATTENTION_PREVIEW,
    CAMERAS,
    COMPONENTS,
    INVERT_LOG,
    MASKS,
    RENDERS,
    TOKEN_EMBEDDINGS,
)
from tasks.models import base_model
from tasks.progress import progress
from tasks.running import StageInputs, StageOutputs


def invert(inputs: StageInputs, outputs: StageOutputs) -> dict:
    components = inputs.load(COMPONENTS)
    tokens = components["token"]
    model, model_was = base_model(inputs.settings("model"))
    data = prepare_training_data(
        model, inputs.load(RENDERS).rgb_white, inputs.load(MASKS), inputs.load(CAMERAS).mvdream_vectors(),
        attribute_phrases(components["colour"]),
    )
    with progress("invert") as on_step:
        result = invert_tokens(model, data, tokens, components["initializer_word"], inputs.settings("invert"), on_step=on_step)
    outputs.save(TOKEN_EMBEDDINGS, lambda folder: save_token_embeddings(folder, tokens, result.embeddings))
    outputs.save(INVERT_LOG, result.log)
    outputs.save(ATTENTION_ISOLATION, result.isolation_before + result.isolation_after)
    outputs.save(ATTENTION_PREVIEW, result.attention_preview)
    return {
        "tokens": list(tokens),
        "base_model": model_was,  # loaded by this process now, or reused from an earlier stage
        "initializer_words": result.initializer_words,
        "probe_before": result.probe_before,
        "probe_after": result.probe_after,
    }
