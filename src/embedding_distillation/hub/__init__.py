"""Hugging Face Hub: incremental, resumable pushes of teacher embeddings, and trained models."""

from embedding_distillation.hub.cards import EmbeddingsCardInfo, ModelCardInfo
from embedding_distillation.hub.credentials import HubCredentials
from embedding_distillation.hub.embeddings import (
    EmbeddingsPush,
    EmbeddingsPusher,
    default_repo_name,
    slug,
)
from embedding_distillation.hub.models import ModelPush, push_checkpoint, push_model
from embedding_distillation.hub_client import HubError, RetryPolicy, resolve_endpoint

__all__ = [
    "EmbeddingsCardInfo",
    "EmbeddingsPush",
    "EmbeddingsPusher",
    "HubCredentials",
    "HubError",
    "ModelCardInfo",
    "ModelPush",
    "RetryPolicy",
    "default_repo_name",
    "push_checkpoint",
    "push_model",
    "resolve_endpoint",
    "slug",
]
