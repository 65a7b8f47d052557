"""Distil large sentence-embedding models into small, fast ones from precomputed teacher embeddings.

The Python API (the seed's names, and ``distill_students`` for several students compared) is
importable from the package root::

    from embedding_distillation import (
        EmbeddingDistillationTrainer,
        EmbeddingTrainerConfig,
        TeacherEmbeddingsGenerator,
        distill_students,
    )

The names resolve lazily so that ``kedro`` commands do not import torch until they need it.
"""

from typing import Any

__version__ = "0.1.0"

_API = {
    "TeacherEmbeddingsGenerator": "embedding_distillation.api",
    "EmbeddingDistillationTrainer": "embedding_distillation.api",
    "EmbeddingTrainerConfig": "embedding_distillation.training.config",
    "distill_students": "embedding_distillation.api",
}

__all__ = [
    "EmbeddingDistillationTrainer",
    "EmbeddingTrainerConfig",
    "TeacherEmbeddingsGenerator",
    "__version__",
    "distill_students",
]


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
