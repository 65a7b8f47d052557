"""``projection: pca``: a frozen inverse-PCA head that puts a narrow student in the teacher's space.

With ``mean`` and ``components`` (``dim`` orthonormal rows) of a PCA of the training targets,
the head maps the student's ``dim``-d output ``z`` to ``z @ components + mean``. Because the rows
are orthonormal, ``|z @ components + mean - t|^2 = |z - (t - mean) @ components.T|^2 + r(t)``,
where ``r(t)`` does not depend on the student: training through the frozen head with MSE is
training the student's own output on the PCA-reduced targets, and the saved model (an ordinary
``Dense`` layer) still outputs in the teacher's space, so it is evaluated against the stored
teacher embeddings as they are. Dropping the head (and ``Normalize``) gives the ``dim``-d PCA
coordinates.

Trade-off against ``projection: learned``: the student's own output lives in the PCA space of
the teacher's targets, not in a space it chooses, and the part of each target outside the top
``dim`` components (``r(t)``) can never be learnt; in exchange that output means something on
its own and the head has no weights to train. With ``loss_type: cosine`` the loss is measured
after the head (and ``Normalize``) in the teacher's space, which is no longer exactly the same
as fitting the PCA coordinates. A student as wide as the target gets no head.
"""

import logging

import numpy as np
import torch
from datasets import Dataset
from sentence_transformers.sentence_transformer.modules import Dense

logger = logging.getLogger(__name__)

# Rows (evenly spaced) used to fit the PCA; the covariance is accumulated in chunks.
PCA_FIT_ROWS = 50_000
PCA_CHUNK_ROWS = 4096


def fit_pca(
    data: Dataset, column: str, dim: int, max_rows: int = PCA_FIT_ROWS
) -> tuple[np.ndarray, np.ndarray, float]:
    """PCA of the embeddings in ``column``, read in chunks from the (memory-mapped) rows.

    Args:
        data: Rows holding the targets.
        column: The embedding column.
        dim: Number of components to keep (at most the target width: ``pca_projection``
            checks that before any row is read).
        max_rows: Evenly spaced rows used at most.

    Returns:
        ``mean`` (target_dim,), ``components`` (dim, target_dim) with orthonormal rows, and the
        share of the target variance the components explain.
    """
    rows = len(data)
    indices = np.unique(np.linspace(0, rows - 1, num=min(rows, max_rows)).astype(np.int64))
    numeric = data.with_format("numpy")
    total: np.ndarray | None = None
    gram: np.ndarray | None = None
    for start in range(0, len(indices), PCA_CHUNK_ROWS):
        chunk = numeric[indices[start : start + PCA_CHUNK_ROWS]][column]
        values = np.asarray(chunk, dtype=np.float64)  # (chunk, target_dim)
        total = values.sum(0) if total is None else total + values.sum(0)
        gram = values.T @ values if gram is None else gram + values.T @ values
    assert total is not None and gram is not None, "at least one row"
    mean = total / len(indices)
    covariance = gram / len(indices) - np.outer(mean, mean)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)  # ascending
    order = np.argsort(eigenvalues)[::-1][:dim]
    components = eigenvectors[:, order].T  # (dim, target_dim)
    variance = float(np.clip(eigenvalues, 0, None).sum())
    explained = float(np.clip(eigenvalues[order], 0, None).sum() / variance) if variance else 1.0
    return mean.astype(np.float32), components.astype(np.float32), explained


def inverse_pca_dense(mean: np.ndarray, components: np.ndarray, device: torch.device) -> Dense:
    """A frozen ``Dense(dim -> target_dim)``: ``z -> z @ components + mean``."""
    dim, target_dim = components.shape
    dense = Dense(dim, target_dim, activation_function=torch.nn.Identity())
    with torch.no_grad():
        dense.linear.weight.copy_(torch.from_numpy(components.T.copy()))  # (target_dim, dim)
        dense.linear.bias.copy_(torch.from_numpy(mean))
    dense.requires_grad_(False)
    return dense.to(device)
