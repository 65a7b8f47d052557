"""The distillation losses and the collator that hands them every stored target of a row.

The embedding term is the sentence-transformers ``MSELoss``/``EmbedDistillLoss(cosine)``. Two
terms sentence-transformers lacks are added here, in the same forward pass:

- the similarity term (``similarity_weight``): the MSE between the in-batch cosine-similarity
  matrices of student and teacher, as in Jasper/Stella's and NeMo's score distillation; it
  asks the student to keep the teacher's relations between texts rather than only its
  coordinates (:class:`SimilarityDistillLoss`);
- the hidden-state term (``hidden_state_layer_map``): mean-pooled student layers matched to
  teacher layers stored by ``output_type: hidden_states`` (:class:`HiddenStateDistillLoss`).
"""

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.data_collator import (
    SentenceTransformerDataCollator,
)
from sentence_transformers.sentence_transformer.losses import EmbedDistillLoss, MSELoss
from torch import Tensor, nn
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from embedding_distillation.encoding.config import hidden_state_column
from embedding_distillation.encoding.teacher import num_hidden_layers
from embedding_distillation.models import mean_pool
from embedding_distillation.training.config import EmbeddingTrainerConfig

logger = logging.getLogger(__name__)


@dataclass
class TargetsCollator(SentenceTransformerDataCollator):
    """Tokenizes the text column and concatenates the target columns into one ``label`` row.

    The sentence-transformers collator passes a single label column to the loss; the losses
    here split the concatenated row back by the widths they were built with.

    Attributes:
        target_columns: Embedding columns, in the order the loss expects them.
    """

    target_columns: tuple[str, ...] = ()

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        """Collate one batch of rows."""
        rows = []
        for row in features:
            label = np.concatenate(
                [np.asarray(row[column], dtype=np.float32) for column in self.target_columns]
            )
            rest = {k: v for k, v in row.items() if k not in self.target_columns}
            rows.append(rest | {"label": torch.from_numpy(label)})
        return super().__call__(rows)


def student_layer_count(model: SentenceTransformer) -> int:
    """Transformer layers of a student (its hidden states are 0 = embeddings .. this number)."""
    transformer: Any = model[0]
    if not hasattr(transformer, "auto_model"):
        raise ValueError(
            f"hidden_state_layer_map needs a student whose first module is a Hugging Face "
            f"Transformer, got {type(transformer).__name__}; set hidden_state_layer_map: null."
        )
    return num_hidden_layers(transformer.auto_model.config)


def check_layer_map(model: SentenceTransformer, layer_map: dict[int, int]) -> None:
    """Fail clearly when a mapped student layer does not exist in ``model``."""
    layers = student_layer_count(model)
    too_big = sorted(s for s in layer_map if s > layers)
    if too_big:
        raise ValueError(
            f"hidden_state_layer_map maps student layer(s) {too_big}, but the student has "
            f"{layers} layers: valid student layers are 0 (embeddings output) to {layers}. "
            f"Fix the keys of {layer_map}."
        )


def similarity_matrix_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """MSE between the cosine-similarity matrices of a batch: ``mean((S S^T - T T^T)^2)``.

    Args:
        student: Student embeddings (batch, dim_s); rows are normalised here.
        teacher: Teacher embeddings (batch, dim_t), any width; rows are normalised here.
    """
    # float32 even under bf16 autocast: bf16 steps of ~0.004 near 1 are the size of the
    # student-teacher similarity gaps this term is there to close.
    with torch.autocast(device_type=student.device.type, enabled=False):
        unit_student = nn.functional.normalize(student.float(), dim=-1)
        unit_teacher = nn.functional.normalize(teacher.float(), dim=-1)
        return nn.functional.mse_loss(
            unit_student @ unit_student.T, unit_teacher @ unit_teacher.T
        )  # over (batch, batch)


def embedding_terms(
    embedding: Tensor,
    target: Tensor,
    embedding_loss: EmbedDistillLoss | None,
    similarity_weight: float,
) -> dict[str, Tensor]:
    """The terms on the embedding target, for every loss that has one.

    ``embedding`` when ``embedding_loss`` is given; ``similarity`` (``similarity_weight`` x
    :func:`similarity_matrix_loss`) when the weight is above 0.
    """
    terms: dict[str, Tensor] = {}
    if embedding_loss is not None:
        terms["embedding"] = embedding_loss.compute_loss_from_embeddings([embedding], [target])
    if similarity_weight:
        terms["similarity"] = similarity_weight * similarity_matrix_loss(embedding, target)
    return terms


class SimilarityDistillLoss(nn.Module):
    """``weight`` x :func:`similarity_matrix_loss`, plus the embedding loss if any, logged apart.

    Args:
        model: The student.
        embedding_loss: ``MSELoss``/``EmbedDistillLoss`` for the embedding target, or ``None``
            for the similarity term alone (``loss_type: similarity``).
        weight: Factor of the similarity term (> 0).
    """

    def __init__(
        self,
        model: SentenceTransformer,
        *,
        embedding_loss: EmbedDistillLoss | None,
        weight: float,
    ) -> None:
        super().__init__()
        self.model = model
        self.embedding_loss = embedding_loss
        self.weight = float(weight)

    def forward(
        self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor
    ) -> dict[str, Tensor]:
        """Both terms for one batch of a single text column."""
        features = next(iter(sentence_features))
        embedding = self.model(features)["sentence_embedding"]  # (batch, dim)
        return embedding_terms(embedding, labels.detach(), self.embedding_loss, self.weight)


class HiddenStateDistillLoss(nn.Module):
    """Embedding loss plus ``weight`` x the mean MSE of mapped, mean-pooled student layers.

    Labels are the row's targets concatenated (see :class:`TargetsCollator`): the embedding
    target first (when there is one), then each mapped teacher layer in ``layer_map`` order.
    Where a student layer is narrower or wider than its teacher layer, a trainable
    ``nn.Linear(student_width, teacher_width)`` maps it; these maps live on the loss (the
    optimizer trains them, the saved student does not contain them). The forward pass returns
    both terms, which the trainer sums and logs separately (``embedding``, ``hidden_state``).

    Args:
        model: The student.
        embedding_loss: ``MSELoss``/``EmbedDistillLoss`` for the embedding target, or ``None``
            (``loss_type: similarity``, or rows without an embedding column).
        target_dim: Width of the embedding target (0 when the rows have none).
        layer_map: ``{student_layer: teacher_layer}``.
        teacher_dims: ``{teacher_layer: width}`` of the stored teacher columns.
        weight: Factor of the hidden-state term.
        similarity_weight: Factor of the similarity term on the embedding target (0 = off).
    """

    def __init__(
        self,
        model: SentenceTransformer,
        *,
        embedding_loss: EmbedDistillLoss | None,
        target_dim: int,
        layer_map: dict[int, int],
        teacher_dims: dict[int, int],
        weight: float,
        similarity_weight: float = 0.0,
    ) -> None:
        super().__init__()
        check_layer_map(model, layer_map)
        self.model = model
        self.embedding_loss = embedding_loss
        self.target_dim = target_dim
        self.layer_map = dict(layer_map)
        self.teacher_dims = {t: teacher_dims[t] for t in layer_map.values()}
        self.weight = float(weight)
        self.similarity_weight = float(similarity_weight)
        transformer: Any = model[0]
        self._hf_config = transformer.auto_model.config
        self._transformer = transformer
        self._unpad_inputs = getattr(transformer, "unpad_inputs", None)
        if hasattr(transformer, "unpad_inputs"):
            # Mean pooling needs (batch, seq, hidden) states: no flash-attention unpadding while
            # training; restore_inputs() puts the student's setting back for the saved model.
            transformer.unpad_inputs = False
        width = int(self._hf_config.get_text_config().hidden_size)
        self.projections = nn.ModuleDict(
            {
                str(s): nn.Linear(width, self.teacher_dims[t], device=model.device)
                if width != self.teacher_dims[t]
                else nn.Identity()
                for s, t in self.layer_map.items()
            }
        )

    def restore_inputs(self) -> None:
        """Give the student back its own ``unpad_inputs`` setting (call after training)."""
        if hasattr(self._transformer, "unpad_inputs"):
            self._transformer.unpad_inputs = self._unpad_inputs

    def forward(
        self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor
    ) -> dict[str, Tensor]:
        """Loss terms for one batch of a single text column."""
        features = next(iter(sentence_features))
        previous = self._hf_config.output_hidden_states
        self._hf_config.output_hidden_states = True  # only for this pass: the saved config stays
        try:
            output = self.model(features)
        finally:
            self._hf_config.output_hidden_states = previous
        labels = labels.detach()
        losses: dict[str, Tensor] = {}
        if self.target_dim:
            losses = embedding_terms(
                output["sentence_embedding"],  # (batch, student_dim)
                labels[:, : self.target_dim],
                self.embedding_loss,
                self.similarity_weight,
            )
        hidden = output["all_layer_embeddings"]  # (layers + 1) x (batch, seq, width)
        offset = self.target_dim
        terms = []
        for student_layer, teacher_layer in self.layer_map.items():
            width = self.teacher_dims[teacher_layer]
            target = labels[:, offset : offset + width]  # (batch, teacher_width)
            offset += width
            pooled = mean_pool(hidden[student_layer], output["attention_mask"])
            predicted = self.projections[str(student_layer)](pooled)
            terms.append(nn.functional.mse_loss(predicted, target.to(predicted.dtype)))
        losses["hidden_state"] = self.weight * torch.stack(terms).mean()
        return losses


# File in each checkpoint folder with the hidden-state projections (they live on the loss).
LOSS_STATE_FILE = "hidden_state_projections.pt"


class LossStateCallback(TrainerCallback):
    """Saves the loss's trainable projections into every checkpoint, so a resumed run has them.

    The trainer's checkpoints hold the model, optimizer, scheduler and RNG states; a loss's own
    weights are not part of the model, so without this a resumed run would restart them.
    """

    def __init__(self, loss: "HiddenStateDistillLoss") -> None:
        self.loss = loss

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Write the projections next to the checkpoint the trainer just saved."""
        folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        torch.save(self.loss.projections.state_dict(), folder / LOSS_STATE_FILE)


def load_loss_state(loss: "HiddenStateDistillLoss", checkpoint: str | os.PathLike[str]) -> None:
    """Restore the projections saved by :class:`LossStateCallback` in ``checkpoint``."""
    path = Path(checkpoint) / LOSS_STATE_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"Checkpoint {os.fspath(checkpoint)!r} has no {LOSS_STATE_FILE}: it was not written "
            "by a run with this hidden_state_layer_map, so the hidden-state projections cannot "
            "be restored. Resume with the settings of the interrupted run, or start afresh."
        )
    loss.projections.load_state_dict(torch.load(path, map_location=loss.model.device))
    logger.info("Restored the hidden-state projections from %s", path)


def build_loss(
    model: SentenceTransformer,
    config: EmbeddingTrainerConfig,
    target_dim: int | None,
    teacher_dims: dict[int, int] | None = None,
) -> nn.Module:
    """The loss for ``config``: embedding and similarity terms, the hidden-state term when mapped.

    Args:
        model: The student, already shaped to the target.
        config: The training options (``loss_type``, ``similarity_weight``,
            ``hidden_state_layer_map``, ``hidden_state_weight``).
        target_dim: Width of the embedding target, ``None`` when the rows have none.
        teacher_dims: ``{teacher_layer: width}`` of the stored hidden-state columns.
    """
    embedding_loss: EmbedDistillLoss | None = None
    if target_dim is not None and config.loss_type == "mse":
        embedding_loss = MSELoss(model)
    elif target_dim is not None and config.loss_type == "cosine":
        embedding_loss = EmbedDistillLoss(model, distance_metric="cosine")
    if target_dim is None and config.similarity_weight:
        logger.warning(
            "similarity_weight %g is ignored: the rows have no %r embeddings to take the "
            "teacher's similarities from (the hidden-state term trains alone).",
            config.similarity_weight,
            config.target_column,
        )
    if config.hidden_state_layer_map is None:
        assert target_dim is not None, "rows without a target need a hidden-state map"
        if config.similarity_weight:
            return SimilarityDistillLoss(
                model, embedding_loss=embedding_loss, weight=config.similarity_weight
            )
        assert embedding_loss is not None, "loss_type similarity needs similarity_weight > 0"
        return embedding_loss
    return HiddenStateDistillLoss(
        model,
        embedding_loss=embedding_loss,
        target_dim=target_dim or 0,
        layer_map=config.hidden_state_layer_map,
        teacher_dims=teacher_dims or {},
        weight=config.hidden_state_weight,
        similarity_weight=config.similarity_weight,
    )


def target_columns(config: EmbeddingTrainerConfig, has_target: bool) -> tuple[str, ...]:
    """The stored columns a training row feeds the loss, in the order the loss reads them."""
    columns = (config.target_column,) if has_target else ()
    layer_map = config.hidden_state_layer_map or {}
    return columns + tuple(hidden_state_column(t) for t in layer_map.values())
