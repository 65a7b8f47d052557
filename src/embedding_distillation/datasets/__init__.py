"""Kedro datasets: every read and write of the project goes through these."""

from embedding_distillation.datasets.corpus_dataset import CorpusDataset
from embedding_distillation.datasets.embedding_shards_dataset import EmbeddingShardsDataset
from embedding_distillation.datasets.embeddings_writer_dataset import EmbeddingsWriterDataset
from embedding_distillation.datasets.hub_embeddings_dataset import HubEmbeddingsDataset
from embedding_distillation.datasets.hub_model_dataset import HubModelDataset
from embedding_distillation.datasets.mteb_results_dataset import MtebResultsDataset
from embedding_distillation.datasets.sentence_transformer_dataset import (
    SentenceTransformerModelDataset,
)
from embedding_distillation.datasets.student_export_dataset import StudentExportDataset

__all__ = [
    "CorpusDataset",
    "EmbeddingShardsDataset",
    "EmbeddingsWriterDataset",
    "HubEmbeddingsDataset",
    "HubModelDataset",
    "MtebResultsDataset",
    "SentenceTransformerModelDataset",
    "StudentExportDataset",
]
