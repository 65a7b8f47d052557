"""Nodes of the ``teacher_embeddings`` pipeline."""

import logging
from typing import Any

from datasets import Dataset, IterableDataset

from embedding_distillation.compute import ComputeConfig
from embedding_distillation.corpus import check_text_column, limit_rows
from embedding_distillation.encoding.config import EncodingConfig
from embedding_distillation.encoding.engine import EncodingJob, prepare_encoding

logger = logging.getLogger(__name__)


def select_corpus(
    corpus: Dataset | IterableDataset, params: dict[str, Any]
) -> Dataset | IterableDataset:
    """Corpus rows -> the first ``max_samples`` rows, after checking the text column."""
    config = EncodingConfig.from_params(params)
    check_text_column(corpus, config.text_column)
    corpus = limit_rows(corpus, config.max_samples)
    if isinstance(corpus, IterableDataset):
        limit = f"up to {config.max_samples} rows" if config.max_samples else "all rows"
        logger.info("Corpus: streamed, %s, text column %r", limit, config.text_column)
    else:
        logger.info("Corpus: %d rows, text column %r", len(corpus), config.text_column)
    return corpus


def encode_corpus(
    corpus: Dataset | IterableDataset, params: dict[str, Any], compute: dict[str, Any]
) -> EncodingJob:
    """Corpus + options -> a validated encoding job.

    The ``teacher_embeddings`` dataset runs the job shard by shard when it saves it, so it can
    resume an interrupted run in its own folder and push shards to the Hub as they complete.
    """
    config = EncodingConfig.from_params(params)
    name = corpus.info.dataset_name or "corpus"
    return prepare_encoding(corpus, config, ComputeConfig.from_params(compute), source_name=name)
