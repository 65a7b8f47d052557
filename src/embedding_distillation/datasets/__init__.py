"""Kedro datasets: every read and write of the project goes through these."""

from embedding_distillation.datasets.corpus_dataset import CorpusDataset
from embedding_distillation.datasets.embedding_shards_dataset import EmbeddingShardsDataset
from embedding_distillation.datasets.embeddings_checkpoint_dataset import (
    EmbeddingsCheckpointDataset,
)
from embedding_distillation.datasets.hub_embeddings_dataset import (
    EmbeddingsPush,
    HubEmbeddingsDataset,
)
from embedding_distillation.datasets.hub_model_dataset import HubModelDataset, ModelPush
from embedding_distillation.datasets.mteb_results_dataset import MtebResultsDataset
from embedding_distillation.datasets.sentence_transformer_dataset import (
    SentenceTransformerModelDataset,
)
from embedding_distillation.datasets.student_export_dataset import (
    StudentExport,
    StudentExportDataset,
)

__all__ = [
    "CorpusDataset",
    "EmbeddingShardsDataset",
    "EmbeddingsCheckpointDataset",
    "EmbeddingsPush",
    "HubEmbeddingsDataset",
    "HubModelDataset",
    "ModelPush",
    "MtebResultsDataset",
    "SentenceTransformerModelDataset",
    "StudentExport",
    "StudentExportDataset",
]
