"""Activation checkpointing of the student's transformer layers, for every architecture.

``gradient_checkpointing`` trades compute for memory: each transformer layer keeps only its
input during the forward pass and recomputes its activations in the backward pass. transformers
does this for the models that declare support for it (BERT, Gemma, ...). Others, MPNet among
them (the all-mpnet-base-v2 family), are skipped by sentence-transformers with one log line, so
the memory saving silently does not happen; for those, each layer of the transformer's layer
stack is run under ``torch.utils.checkpoint`` here. The weights and their names are untouched,
so the model saves and reloads as before.
"""

import logging
from collections.abc import Callable
from typing import Any

import torch
from sentence_transformers import SentenceTransformer
from torch.utils.checkpoint import checkpoint
from transformers import PreTrainedModel

from embedding_distillation.models import layer_stack, text_config

logger = logging.getLogger(__name__)


class CheckpointedForward:
    """A layer's ``forward`` that runs under ``torch.utils.checkpoint`` while training.

    Set as the layer's instance attribute ``forward``: ``nn.Module.__call__`` calls it, hooks
    included, while the layer's parameters and state-dict keys stay as they are.
    """

    def __init__(self, layer: torch.nn.Module) -> None:
        self.layer = layer
        self.forward: Callable[..., Any] = layer.forward

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Checkpoint when gradients are being recorded in training mode, else run as is."""
        if self.layer.training and torch.is_grad_enabled():
            return checkpoint(self.forward, *args, use_reentrant=False, **kwargs)
        return self.forward(*args, **kwargs)


def enable_activation_checkpointing(model: SentenceTransformer) -> None:
    """Checkpoint every transformer layer of ``model``'s first module, in place.

    Uses transformers' own checkpointing when the Hugging Face model supports it, else wraps
    the ``forward`` of each layer of its layer stack (:class:`CheckpointedForward`). A model
    without a Hugging Face transformer (static embeddings) has nothing to checkpoint: one
    warning, and training goes on.

    Raises:
        ValueError: When the model does not support it and has no unique layer stack.
    """
    auto_model = getattr(model[0], "auto_model", None)
    if not isinstance(auto_model, torch.nn.Module):
        logger.warning(
            "gradient_checkpointing: the student's first module (%s) is not a transformer; "
            "there are no layer activations to recompute, so it has no effect.",
            type(model[0]).__name__,
        )
        return
    name = type(auto_model).__name__
    if isinstance(auto_model, PreTrainedModel) and auto_model.supports_gradient_checkpointing:
        auto_model.activation_checkpointing_enable({"use_reentrant": False})
        logger.info("gradient_checkpointing: transformers checkpoints the layers of %s.", name)
        return
    total = text_config(auto_model.config).num_hidden_layers
    _, _, stack = layer_stack(
        auto_model,
        total,
        fix=f"{name} has no built-in activation checkpointing either; set "
        "gradient_checkpointing: false (or train with a smaller batch_size to save memory).",
    )
    for layer in stack:
        if not isinstance(layer.forward, CheckpointedForward):
            layer.forward = CheckpointedForward(layer)
    logger.info(
        "gradient_checkpointing: %s has no built-in support; each of its %d layers runs under "
        "torch.utils.checkpoint.",
        name,
        len(stack),
    )
