"""Nodes of the ``teacher_embeddings`` pipeline."""

import logging
from typing import Any

from datasets import Dataset, IterableDataset

from embedding_distillation.compute import ComputeConfig
from embedding_distillation.corpus import corpus_name
from embedding_distillation.encoding.config import EncodingConfig
from embedding_distillation.encoding.job import prepare_encoding
from embedding_distillation.encoding.output import ShardOutput
from embedding_distillation.encoding.provenance import TeacherEmbeddings
from embedding_distillation.encoding.run import encode_to_shards
from embedding_distillation.encoding.shards import ShardStore
from embedding_distillation.encoding.texts import select_texts
from embedding_distillation.hub import EmbeddingsPush, EmbeddingsPusher, HubCredentials

logger = logging.getLogger(__name__)


def select_corpus(
    corpus: Dataset | IterableDataset, params: dict[str, Any]
) -> Dataset | IterableDataset:
    """Corpus rows -> the text column of the first ``max_samples`` rows, after checking it."""
    config = EncodingConfig.from_params(params)
    selected = select_texts(corpus, config.text_column, config.max_samples)
    if isinstance(selected, IterableDataset):
        limit = f"up to {config.max_samples} rows" if config.max_samples else "all rows"
        logger.info("Corpus: streamed, %s, text column %r", limit, config.text_column)
    else:
        logger.info("Corpus: %d rows, text column %r", len(selected), config.text_column)
    return selected


def encode_corpus(
    corpus: Dataset | IterableDataset,
    params: dict[str, Any],
    compute: dict[str, Any],
    output: ShardOutput,
    hub_credentials: HubCredentials | None = None,
) -> ShardStore:
    """Selected corpus + options -> the complete shard folder, written shard by shard.

    ``output`` (the ``teacher_embeddings_writer`` dataset) says where: this run's
    ``teacher_embeddings`` version, or an unfinished one of the same job, which the run
    continues. With ``push_every`` set, shards go to the Hub as they complete.
    """
    config = EncodingConfig.from_params(params)
    name = corpus_name(corpus)
    job = prepare_encoding(corpus, config, ComputeConfig.from_params(compute), source_name=name)
    hub = hub_credentials or HubCredentials()
    pusher = EmbeddingsPusher.create(
        config, source_name=job.source_name, token=hub.token, endpoint=hub.endpoint
    )
    return encode_to_shards(job, output, pusher=pusher)


def push_teacher_embeddings(
    teacher_embeddings: TeacherEmbeddings, params: dict[str, Any]
) -> EmbeddingsPush:
    """Stored embeddings + options -> a Hub push request (no push unless push_every is set)."""
    config = EncodingConfig.from_params(params)
    return EmbeddingsPush(
        embeddings=teacher_embeddings,
        push_every=config.push_every,
        repo_id=config.repo_id,
        private=config.private,
    )
