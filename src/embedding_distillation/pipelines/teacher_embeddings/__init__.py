"""Encode a corpus with the teacher and store the embeddings."""

from embedding_distillation.pipelines.teacher_embeddings.pipeline import create_pipeline

__all__ = ["create_pipeline"]
