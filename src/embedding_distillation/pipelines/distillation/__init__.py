"""Train a student on stored teacher embeddings and evaluate it."""

from embedding_distillation.pipelines.distillation.pipeline import create_pipeline

__all__ = ["create_pipeline"]
