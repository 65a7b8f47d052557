"""Kedro datasets: every read and write of the project goes through these."""

from embedding_distillation.datasets.corpus_dataset import CorpusDataset
from embedding_distillation.datasets.embedding_shards_dataset import EmbeddingShardsDataset
from embedding_distillation.datasets.hub_model_dataset import HubModelDataset, ModelPush
from embedding_distillation.datasets.sentence_transformer_dataset import (
    SentenceTransformerModelDataset,
)

__all__ = [
    "CorpusDataset",
    "EmbeddingShardsDataset",
    "HubModelDataset",
    "ModelPush",
    "SentenceTransformerModelDataset",
]
