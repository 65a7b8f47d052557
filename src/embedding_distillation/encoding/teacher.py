"""One forward pass of the teacher per batch, yielding every output that was asked for."""

import logging
from typing import Any

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from embedding_distillation.encoding.config import (
    FINAL_COLUMN,
    PRE_DENSE_COLUMN,
    OutputType,
    hidden_state_column,
)
from embedding_distillation.models import (
    has_dense,
    mean_pool,
    module_names,
    pooling_index,
    text_config,
)

logger = logging.getLogger(__name__)


def num_hidden_layers(config: Any) -> int:
    """Number of transformer layers in a transformers config (text part for multimodal ones)."""
    layers = getattr(text_config(config), "num_hidden_layers", None)
    if layers is None:
        raise ValueError(
            f"Cannot tell how many layers the teacher has (config {type(config).__name__}); "
            "hidden_states output needs a config with num_hidden_layers."
        )
    return int(layers)


def check_layer_indices(layer_indices: tuple[int, ...] | None, num_layers: int) -> list[int]:
    """Resolve ``layer_indices`` (``None`` = all) against a teacher with ``num_layers`` layers."""
    if layer_indices is None:
        return list(range(num_layers + 1))
    too_big = [i for i in layer_indices if i > num_layers]
    if too_big:
        raise ValueError(
            f"layer_indices {list(layer_indices)} include {too_big}, but the teacher has "
            f"{num_layers} layers: valid indices are 0 (embeddings output) to {num_layers}."
        )
    return list(layer_indices)


class TeacherEncoder:
    """Wraps a loaded teacher and computes the requested embeddings in a single pass.

    Args:
        model: The teacher, already on its device and in its dtype.
        output_type: ``final`` (final, plus pre-Dense when the head after pooling is more than
            a Normalize), ``pre_dense`` or ``hidden_states``.
        layers: Resolved layer numbers for ``hidden_states`` (ignored otherwise).
    """

    def __init__(
        self, model: SentenceTransformer, output_type: OutputType, layers: list[int] | None = None
    ) -> None:
        self.model = model
        self.output_type = output_type
        self.layers = list(layers or [])
        self._modules: list[Any] = list(model)
        self._pool_at = pooling_index(model)
        self._has_dense = has_dense(model)
        # After pooling, a head of nothing or Normalize only adds no information to pre_dense.
        self._store_pre_dense = output_type != "final" or any(
            type(m).__name__ != "Normalize" for m in self._modules[self._pool_at + 1 :]
        )
        if output_type == "pre_dense" and not self._has_dense:
            logger.info(
                "The teacher has no Dense layer (modules: %s): teacher_embedding_pre_dense is "
                "its pooled output before any Normalize.",
                module_names(model),
            )
        if not self._store_pre_dense:
            logger.info(
                "The teacher has nothing but Normalize after pooling (modules: %s): storing "
                "teacher_embedding_final only, as the pre-Dense output is the same vector "
                "before normalisation. Use output_type 'pre_dense' to store that instead.",
                module_names(model),
            )
        transformer: Any = model[0]
        if output_type == "hidden_states":
            # Hidden states are mean-pooled with the attention mask, so keep padded inputs.
            transformer.auto_model.config.output_hidden_states = True
            if hasattr(transformer, "unpad_inputs"):
                transformer.unpad_inputs = False

    @property
    def max_seq_length(self) -> int:
        """The longest input, in tokens, that the teacher reads (longer texts are truncated)."""
        return int(self.model.max_seq_length or 512)

    def columns(self) -> dict[str, int]:
        """Output column name -> embedding dimension."""
        pooled_dim = self._modules[self._pool_at].get_embedding_dimension()
        if self.output_type == "hidden_states":
            transformer: Any = self.model[0]
            hidden = transformer.auto_model.config.get_text_config().hidden_size
            return {hidden_state_column(i): int(hidden) for i in self.layers}
        if self.output_type == "pre_dense":
            return {PRE_DENSE_COLUMN: int(pooled_dim)}
        columns = {FINAL_COLUMN: int(self.model.get_embedding_dimension() or 0)}
        if self._store_pre_dense:
            columns[PRE_DENSE_COLUMN] = int(pooled_dim)
        return columns

    def tokenize(self, texts: list[str]) -> dict[str, Any]:
        """Tokenize a batch (on CPU; may run in a DataLoader worker)."""
        return self.model.preprocess(texts)

    @torch.inference_mode()
    def forward_on_device(self, features: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Run the teacher once; float32 tensors keyed by output column, left on the device.

        Leaving them there lets the host queue the next batch without waiting for this one.
        """
        features = to_device(features, self.model.device)
        outputs: dict[str, torch.Tensor] = {}
        for index, module in enumerate(self._modules):
            features = module(features)
            if index == self._pool_at:
                if self.output_type != "final":
                    outputs[PRE_DENSE_COLUMN] = features["sentence_embedding"]
                    break
                if self._store_pre_dense:
                    outputs[PRE_DENSE_COLUMN] = features["sentence_embedding"]
        if self.output_type == "final":
            outputs[FINAL_COLUMN] = features["sentence_embedding"]
        if self.output_type == "hidden_states":
            hidden = features["all_layer_embeddings"]  # (layers + 1) x (batch, seq, hidden)
            outputs = {
                hidden_state_column(i): mean_pool(hidden[i].float(), features["attention_mask"])
                for i in self.layers
            }
        return {name: t.float() for name, t in outputs.items()}

    def forward(self, features: dict[str, Any]) -> dict[str, np.ndarray]:
        """Run the teacher once and return float32 arrays keyed by output column."""
        return {name: t.cpu().numpy() for name, t in self.forward_on_device(features).items()}


def to_device(features: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Move a batch's tensors to ``device``; from pinned memory the copy does not block."""
    return {
        key: value.to(device, non_blocking=value.is_pinned())
        if isinstance(value, torch.Tensor)
        else value
        for key, value in features.items()
    }
