"""The student that training starts from, and the checks its training data must pass first.

Apart from the run (:mod:`.trainer`): the evaluation and the dry run build it without training.
"""

import logging

import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer

from embedding_distillation.encoding.config import hidden_state_column
from embedding_distillation.models import (
    backbone,
    has_dense,
    load_sentence_transformer,
    module_names,
    resolve_model_source,
)
from embedding_distillation.training.config import EmbeddingTrainerConfig
from embedding_distillation.training.losses import check_layer_map
from embedding_distillation.training.projection import add_projection
from embedding_distillation.training.static import load_static_student
from embedding_distillation.training.student_init import keep_layers

logger = logging.getLogger(__name__)


def check_training_data(dataset: Dataset, config: EmbeddingTrainerConfig) -> int | None:
    """Fail clearly on missing columns or an empty dataset; return the target dimension.

    With ``hidden_state_layer_map`` set, the mapped ``hidden_state_layer_<i>`` columns must be
    there; rows without the embedding target (``output_type: hidden_states``) then train on the
    hidden-state term alone and the target dimension is ``None``.
    """
    if config.hidden_state_layer_map is not None:
        check_hidden_state_columns(dataset, config)
        if config.target_column not in dataset.column_names:
            if len(dataset) == 0:
                raise ValueError("The training data is empty (0 rows); nothing to train on.")
            logger.info(
                "The rows have no %r column: training on the hidden-state term alone "
                "(layer map %s).",
                config.target_column,
                config.hidden_state_layer_map,
            )
            return None
    if config.text_column not in dataset.column_names:
        raise ValueError(
            f"Training data lacks the text column {config.text_column!r} (text_column); its "
            f"columns are {dataset.column_names}. Set text_column to the one holding the texts."
        )
    missing = [config.target_column] if config.target_column not in dataset.column_names else []
    if missing:
        hint = (
            " The embeddings were made with output_type 'pre_dense' or 'hidden_states'; use "
            "target_type 'pre_dense' or re-encode with output_type 'final'."
            if config.target_column == config.final_embedding_column
            else " The teacher had nothing but Normalize after pooling, so only the final "
            "embeddings were stored (the pre-Dense output is the same vector, unnormalised): use "
            "target_type 'final', or re-encode with output_type 'pre_dense'."
            if config.final_embedding_column in dataset.column_names
            else ""
        )
        raise ValueError(
            f"Training data lacks column(s) {missing} needed for target_type "
            f"{config.target_type!r}; its columns are {dataset.column_names}.{hint}"
        )
    if len(dataset) == 0:
        raise ValueError("The training data is empty (0 rows); nothing to train on.")
    first = dataset[0][config.target_column]
    return len(first)


def check_hidden_state_columns(dataset: Dataset, config: EmbeddingTrainerConfig) -> None:
    """The teacher layers of ``hidden_state_layer_map`` must be stored as columns."""
    layer_map = config.hidden_state_layer_map or {}
    missing = sorted(
        {hidden_state_column(t) for t in layer_map.values()} - set(dataset.column_names)
    )
    if missing:
        stored = [c for c in dataset.column_names if c.startswith(hidden_state_column(0)[:-1])]
        raise ValueError(
            f"hidden_state_layer_map {layer_map} needs teacher column(s) {missing}, but the "
            f"training data has {stored or 'no hidden-state columns'}. Map only stored teacher "
            "layers, or re-encode with output_type 'hidden_states' and layer_indices that "
            f"include {sorted(set(layer_map.values()))}."
        )


def load_student(
    config: EmbeddingTrainerConfig, *, for_training: bool = False, shape_only: bool = False
) -> SentenceTransformer:
    """The student that training starts from: ``student_model``, cut to ``student_init`` if set.

    With ``student_type: static``, the model2vec distillation of ``student_model``'s vocabulary
    (``StaticEmbedding`` + ``Normalize``; :mod:`.static`). The evaluation's "student before
    training" is this model, so a student built from the teacher's layers is compared with its
    undistilled self, not with the whole teacher, and a static one with the untrained
    distillation.

    Args:
        config: The training options.
        for_training: Keep float32 weights (the trainer applies mixed precision).
        shape_only: A static student gets random weights of the distillation's size instead
            of the distillation (the dry run); a transformer student loads as usual.
    """
    source = resolve_model_source(config.student_model, what="student_model")
    if config.student_type == "static":
        return load_static_student(config, source, for_training=for_training, shape_only=shape_only)
    model = load_sentence_transformer(source, config.compute, for_training=for_training)
    return model if config.student_init is None else keep_layers(model, config.student_init)


def prepare_student(
    config: EmbeddingTrainerConfig,
    target_dim: int | None,
    fit_data: Dataset | None = None,
    *,
    shape_only: bool = False,
) -> SentenceTransformer:
    """Load the student and shape it to the target: backbone for pre_dense, projection if needed.

    With ``student_init`` set, only those transformer layers of ``student_model`` are kept; a
    static student is distilled from ``student_model`` first (:mod:`.static`).

    Args:
        config: The training options.
        target_dim: Size of the target embeddings; ``None`` when training on hidden states only
            (the student is then kept as it is).
        fit_data: Training rows; when a projection is added, its weights start from a fit of
            the student's embeddings to the targets on up to ``PROJECTION_FIT_ROWS`` of them, as
            ``projection_init`` says (``learned``), or hold the PCA of the targets (``pca``,
            required then).
        shape_only: Passed to :func:`load_student` (the dry run).
    """
    torch.manual_seed(config.seed)
    model = load_student(config, for_training=True, shape_only=shape_only)
    if config.hidden_state_layer_map is not None:
        check_layer_map(model, config.hidden_state_layer_map)
    if target_dim is None:
        return model
    if config.target_type == "pre_dense":
        if has_dense(model):
            logger.info(
                "target_type 'pre_dense': training the student's backbone (modules up to Pooling "
                "of %s); its Dense layers are not part of the trained model.",
                module_names(model),
            )
        else:
            logger.info(
                "target_type 'pre_dense': the student has no Dense layer, so the whole student "
                "(without Normalize) is trained against the teacher's pre-Dense embeddings."
            )
        model = backbone(model)
    # A fresh static student outputs in model2vec's PCA basis, not in the teacher's space: it
    # gets its projection at any width (as wide as the target, STS-B fell without one).
    always = config.student_type == "static" and not has_dense(model)
    return add_projection(model, target_dim, config, fit_data, always=always)
