"""The head that puts a student's embeddings in the target's space, and how it starts.

A student narrower or wider than the target gets a ``Dense(student_dim -> target_dim)`` before
its ``Normalize``. Where the head starts decides what training starts from:

- ``orthogonal`` (Procrustes): the orthogonal map that best rotates the student's embeddings
  onto the targets, scaled to their size. Its columns are orthogonal and of one length, so for
  a student no wider than the target every cosine between two texts is kept: the student
  starts with its own STS-B and retrieval quality, only turned towards the teacher's axes.
- ``least_squares``: the ridge least-squares map with a bias, closer to the targets (higher
  cosine to the teacher at step 0) but it stretches the student's space: fitted on the demo
  rows it cost all-MiniLM-L6-v2 1.4 STS-B test points before any training step
  (benchmarks/RESULTS_quality.md).
"""

import logging

import numpy as np
import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Dense, Normalize

from embedding_distillation.models import pooling_index
from embedding_distillation.training.config import EmbeddingTrainerConfig
from embedding_distillation.training.pca import fit_pca, inverse_pca_dense

logger = logging.getLogger(__name__)

# Rows of the training data the projection is fitted on.
PROJECTION_FIT_ROWS = 2048
# Ridge term of the least-squares fit, relative to the mean of the Gram matrix's diagonal.
RIDGE = 1e-3


def add_projection(
    model: SentenceTransformer,
    target_dim: int,
    config: EmbeddingTrainerConfig,
    fit_data: Dataset | None = None,
    *,
    always: bool = False,
) -> SentenceTransformer:
    """Insert a ``Dense(student_dim -> target_dim)`` before Normalize when sizes differ.

    ``projection: learned`` makes it trainable, started as ``projection_init`` says when
    ``fit_data`` is given (random otherwise); ``pca`` makes it the frozen inverse of a PCA of
    the targets in ``fit_data``. With ``always``, the head is added when the sizes match too
    (not with ``none``).
    """
    student_dim = model.get_embedding_dimension()
    assert student_dim is not None, "a pooled model has an embedding dimension"
    if student_dim == target_dim and (not always or config.projection == "none"):
        return model
    if config.projection == "none":
        raise ValueError(
            f"The student outputs {student_dim}-d embeddings but the target "
            f"{config.target_column!r} is {target_dim}-d. Set projection: learned to add a "
            "trainable Dense projection, or pick a student/target of the same size."
        )
    modules = list(model)
    normalize_at = next(
        (i for i, m in enumerate(modules) if isinstance(m, Normalize)), len(modules)
    )
    if config.projection == "pca":
        projection = pca_projection(student_dim, target_dim, config, fit_data, model.device)
        modules.insert(normalize_at, projection)
        return SentenceTransformer(modules=modules, device=str(model.device))
    orthogonal = config.projection_init == "orthogonal"
    projection = Dense(
        student_dim, target_dim, bias=not orthogonal, activation_function=torch.nn.Identity()
    )
    projection.to(model.device)
    started = ""
    if fit_data is not None:
        trunk = SentenceTransformer(modules=modules[:normalize_at], device=str(model.device))
        inputs, targets = fit_rows(trunk, fit_data, config)
        weight, bias = (
            orthogonal_map(inputs, targets) if orthogonal else least_squares_map(inputs, targets)
        )
        with torch.no_grad():
            projection.linear.weight.copy_(weight)
            if bias is not None:
                projection.linear.bias.copy_(bias)
        started = f", started {config.projection_init.replace('_', ' ')} on {len(inputs):,} rows"
    modules.insert(normalize_at, projection)
    logger.info(
        "The student outputs %d-d embeddings and the target is %d-d: added a learned "
        "Dense(%d -> %d) projection (saved with the model)%s.",
        student_dim,
        target_dim,
        student_dim,
        target_dim,
        started,
    )
    return SentenceTransformer(modules=modules, device=str(model.device))


def fit_rows(
    trunk: SentenceTransformer, data: Dataset, config: EmbeddingTrainerConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """The trunk's embeddings (rows, student_dim) and the targets (rows, target_dim) to fit on."""
    rows = data.select(range(min(len(data), PROJECTION_FIT_ROWS)))
    inputs = trunk.encode(
        rows[config.text_column], batch_size=config.batch_size, convert_to_tensor=True
    ).float()
    targets = torch.from_numpy(
        np.array(rows.with_format("numpy")[config.target_column], dtype=np.float32)
    ).to(inputs.device)
    return inputs, targets


def orthogonal_map(inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, None]:
    """The scaled Procrustes map ``s U V^T``; no bias.

    ``U V^T`` comes from the SVD of ``S^T T`` on unit rows (every text counts alike, as in a
    cosine), ``s`` is the targets' mean norm over the inputs' (a targets' scale an MSE loss
    would otherwise spend its first steps on). Returns the Dense weight
    ``(target_dim, student_dim)``; for a student no wider than the target ``W^T W = s^2 I``, so
    every cosine between two texts is kept.
    """
    unit_inputs = torch.nn.functional.normalize(inputs, dim=1)
    unit_targets = torch.nn.functional.normalize(targets, dim=1)
    left, _, right_t = torch.linalg.svd(unit_inputs.T @ unit_targets, full_matrices=False)
    scale = targets.norm(dim=1).mean() / inputs.norm(dim=1).mean().clamp_min(1e-12)
    return (scale * left @ right_t).T.contiguous(), None  # (target_dim, student_dim)


def least_squares_map(
    inputs: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ridge least-squares map with a bias: (weight (target_dim, student_dim), bias)."""
    design = torch.cat([inputs, torch.ones_like(inputs[:, :1])], dim=1)  # bias column
    gram = design.T @ design
    ridge = RIDGE * gram.diagonal().mean() * torch.eye(gram.shape[0], device=gram.device)
    solution = torch.linalg.solve(gram + ridge, design.T @ targets)  # (student_dim + 1, target)
    return solution[:-1].T.contiguous(), solution[-1].contiguous()


def pca_projection(
    student_dim: int,
    target_dim: int,
    config: EmbeddingTrainerConfig,
    fit_data: Dataset | None,
    device: torch.device,
) -> Dense:
    """The frozen inverse-PCA ``Dense(student_dim -> target_dim)`` for ``projection: pca``."""
    if student_dim > target_dim:
        raise ValueError(
            f"projection 'pca' reduces the teacher's {target_dim}-d targets to the student's "
            f"size, but the student outputs {student_dim}-d embeddings, more than the target. "
            "Use projection: learned, or a student no wider than the target."
        )
    if fit_data is None:
        raise ValueError(
            "projection 'pca' is fitted on the training targets: pass the training rows as "
            "fit_data to prepare_student."
        )
    mean, components, explained = fit_pca(fit_data, config.target_column, student_dim)
    logger.info(
        "The student outputs %d-d embeddings and the target is %d-d: added a frozen "
        "Dense(%d -> %d) holding the inverse of a PCA of the targets (saved with the model); "
        "the student's own output learns the top %d principal components, which explain "
        "%.1f%% of the target variance.",
        student_dim,
        target_dim,
        student_dim,
        target_dim,
        student_dim,
        100 * explained,
    )
    return inverse_pca_dense(mean, components, device)


def projection_parameters(model: SentenceTransformer) -> list[torch.nn.Parameter]:
    """The trainable parameters of the model's projection head(s): Dense modules after Pooling.

    A student's own Dense layers (a teacher cut to a student keeps the teacher's) count too: they
    are the head that maps the pooled output to the target's space.
    """
    start = pooling_index(model) + 1
    return [
        parameter
        for module in list(model)[start:]
        if isinstance(module, Dense)
        for parameter in module.parameters()
        if parameter.requires_grad
    ]
