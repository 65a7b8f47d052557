"""Helpers of the teacher_embeddings dataset tests: one encode-node run, and its dataset."""

from kedro.io.core import Version

from embedding_distillation.compute import ComputeConfig
from embedding_distillation.datasets import EmbeddingShardsDataset, EmbeddingsWriterDataset
from embedding_distillation.encoding.config import EncodingConfig
from embedding_distillation.encoding.job import prepare_encoding
from embedding_distillation.encoding.run import encode_to_shards


def shards_job(corpus, teacher, **options):
    """The encoding job of ``corpus`` by ``teacher`` in shards of 16 rows, on the CPU."""
    config = EncodingConfig(teacher_model=teacher, chunk_size=16, **options)
    return prepare_encoding(corpus, config, ComputeConfig(device="cpu", batch_size=8))


def shards_dataset(root, save=None, load=None):
    """``teacher_embeddings`` under ``root`` (``emb``), with that save and load version."""
    return EmbeddingShardsDataset(filepath=str(root / "emb"), version=Version(load, save))


def encode_version(root, job, save=None):
    """What the encode node does, then the save of its output: one run of the pipeline."""
    output = EmbeddingsWriterDataset(filepath=str(root / "emb"), version=Version(None, save))
    store = encode_to_shards(job, output.load())
    shards_dataset(root, save=save).save(store)
    return store
