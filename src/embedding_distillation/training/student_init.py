"""Build a student from a model by keeping a subset of its transformer layers.

Keeping every other layer of the teacher is a common way to start a smaller student: its
embeddings, attention and feed-forward weights already live in the teacher's space.
"""

import logging
from collections.abc import Sequence

import torch
from sentence_transformers import SentenceTransformer

from embedding_distillation.models import layer_stack, text_config

logger = logging.getLogger(__name__)

# Config list attributes that never hold one entry per layer, whatever their length.
NOT_PER_LAYER = frozenset({"architectures", "bad_words_ids", "suppress_tokens"})


def keep_layers(model: SentenceTransformer, layers: Sequence[int]) -> SentenceTransformer:
    """Keep only the transformer layers ``layers`` (in this order) of ``model``, in place.

    The layer stack is the ``torch.nn.ModuleList`` in ``model[0].auto_model`` whose length is
    the (text) config's ``num_hidden_layers`` (BERT/MPNet: ``encoder.layer``, Gemma:
    ``layers``). The config's ``num_hidden_layers`` and its per-layer lists (e.g.
    ``layer_types``) are cut to match, and the layers' ``layer_idx`` attributes (used by
    transformers for caching) are renumbered, so the model saves and reloads as a smaller one.

    Args:
        model: A sentence-transformer whose first module wraps a Hugging Face model.
        layers: Indices of the layers to keep.

    Returns:
        ``model``, with the kept layers only.

    Raises:
        ValueError: When ``layers`` is empty, repeats an index, holds an index outside the
            model's layers, or the model has no unique layer stack.
    """
    layers = list(layers)
    auto_model = getattr(model[0], "auto_model", None)
    if not isinstance(auto_model, torch.nn.Module):
        raise ValueError(
            f"student_init needs a transformer as the first module; got {type(model[0]).__name__}."
        )
    config = text_config(auto_model.config)
    total = getattr(config, "num_hidden_layers", None)
    if not isinstance(total, int):
        raise ValueError(
            f"student_init: the config of {type(auto_model).__name__} has no num_hidden_layers."
        )
    if not layers:
        raise ValueError("student_init needs at least one layer index to keep.")
    out_of_range = [i for i in layers if not 0 <= i < total]
    if out_of_range:
        raise ValueError(
            f"student_init layer index(es) {out_of_range} out of range: "
            f"{type(auto_model).__name__} has {total} layers, valid indices are 0..{total - 1}."
        )
    if len(set(layers)) != len(layers):
        raise ValueError(f"student_init lists a layer more than once: {layers}.")
    parent, name, stack = layer_stack(
        auto_model, total, fix="this architecture is not supported, set student_init: null."
    )
    kept = torch.nn.ModuleList([stack[i] for i in layers])
    for position, layer in enumerate(kept):
        for module in layer.modules():
            if isinstance(getattr(module, "layer_idx", None), int):
                setattr(module, "layer_idx", position)  # noqa: B010
    setattr(parent, name, kept)
    for key, value in list(vars(config).items()):
        if key not in NOT_PER_LAYER and isinstance(value, list | tuple) and len(value) == total:
            picked = [value[i] for i in layers]
            setattr(config, key, tuple(picked) if isinstance(value, tuple) else picked)
    config.num_hidden_layers = len(layers)
    logger.info(
        "student_init: kept %d of %d transformer layers of %s: %s",
        len(layers),
        total,
        type(auto_model).__name__,
        layers,
    )
    return model
