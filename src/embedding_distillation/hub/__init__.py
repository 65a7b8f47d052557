"""Hugging Face Hub: incremental, resumable pushes of teacher embeddings, and trained models."""

from embedding_distillation.hub.cards import EmbeddingsCardInfo, ModelCardInfo
from embedding_distillation.hub.client import HubError, RetryPolicy, resolve_endpoint
from embedding_distillation.hub.embeddings import EmbeddingsPusher, default_repo_name, slug
from embedding_distillation.hub.models import push_checkpoint, push_model

__all__ = [
    "EmbeddingsCardInfo",
    "EmbeddingsPusher",
    "HubError",
    "ModelCardInfo",
    "RetryPolicy",
    "default_repo_name",
    "push_checkpoint",
    "push_model",
    "resolve_endpoint",
    "slug",
]
