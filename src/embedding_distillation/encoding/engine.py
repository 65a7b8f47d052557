"""Encode a corpus with the teacher into a shard folder, resuming where a previous run stopped.

``prepare_encoding`` validates everything that can be checked cheaply (parameters, text column,
texts, layer indices against the teacher's config) before any weights are loaded; the returned
:class:`EncodingJob` is run by :func:`run_encoding` into a :class:`ShardStore`.
"""

import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from datasets import Dataset
from tqdm.auto import tqdm

from embedding_distillation.compute import ComputeConfig
from embedding_distillation.corpus import limit_rows, valid_row_ids
from embedding_distillation.encoding.config import ROW_ID_COLUMN, EncodingConfig
from embedding_distillation.encoding.shards import ShardStore, embedding_array
from embedding_distillation.encoding.teacher import (
    TeacherEncoder,
    check_layer_indices,
    num_hidden_layers,
)
from embedding_distillation.models import (
    load_model_config,
    load_sentence_transformer,
    resolve_model_source,
    weights_fingerprint,
)

logger = logging.getLogger(__name__)


def texts_fingerprint(row_ids: list[int], texts: list[str]) -> str:
    """sha256 over (row id, text) pairs: identifies the corpus slice being encoded."""
    digest = hashlib.sha256()
    for row_id, text in zip(row_ids, texts, strict=True):
        digest.update(f"{row_id}\t{len(text)}\t".encode())
        digest.update(text.encode())
    return digest.hexdigest()


@dataclass
class EncodingJob:
    """A validated encoding job: the texts to encode and how; the teacher loads lazily."""

    config: EncodingConfig
    compute: ComputeConfig
    teacher_source: str
    row_ids: list[int]
    texts: list[str]
    layers: list[int] | None
    corpus_fingerprint: str
    source_name: str = "corpus"
    _encoder: TeacherEncoder | None = field(default=None, repr=False)
    _identity: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def num_rows(self) -> int:
        """Rows that will be written (valid texts only)."""
        return len(self.row_ids)

    @property
    def num_shards(self) -> int:
        """Shards of ``chunk_size`` rows."""
        return -(-self.num_rows // self.config.chunk_size)

    def encoder(self) -> TeacherEncoder:
        """Load the teacher on first use."""
        if self._encoder is None:
            logger.info(
                "Loading teacher %s (%s)", self.config.teacher_model, self.compute.precision
            )
            model = load_sentence_transformer(self.teacher_source, self.compute)
            self._encoder = TeacherEncoder(model, self.config.output_type, self.layers)
        return self._encoder

    def identity(self) -> dict[str, Any]:
        """What must match for shards to be reused: teacher content, settings and corpus."""
        if self._identity is None:
            self._identity = self._compute_identity()
        return self._identity

    def _compute_identity(self) -> dict[str, Any]:
        encoder = self.encoder()
        return {
            "teacher_fingerprint": weights_fingerprint(encoder.model),
            "output_type": self.config.output_type,
            "columns": encoder.columns(),
            "embedding_dtype": self.config.embedding_dtype,
            "text_column": self.config.text_column,
            "chunk_size": self.config.chunk_size,
            "max_seq_length": encoder.max_seq_length,
            "precision": self.compute.precision,
            "corpus_fingerprint": self.corpus_fingerprint,
            "num_rows": self.num_rows,
        }

    def shard_table(self, index: int) -> pa.Table:
        """Encode shard ``index`` and return it as an Arrow table in corpus order."""
        start = index * self.config.chunk_size
        stop = min(start + self.config.chunk_size, self.num_rows)
        texts = self.texts[start:stop]
        embeddings = self.encode_texts(texts)
        columns: dict[str, pa.Array] = {
            ROW_ID_COLUMN: pa.array(self.row_ids[start:stop], type=pa.int64()),
            self.config.text_column: pa.array(texts, type=pa.string()),
        }
        for name in self.encoder().columns():
            columns[name] = embedding_array(embeddings[name], self.config.embedding_dtype)
        return pa.table(columns)

    def encode_texts(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Encode texts in length-sorted batches; outputs come back in input order."""
        encoder = self.encoder()
        order = np.argsort([-len(t) for t in texts], kind="stable")
        parts: dict[str, list[np.ndarray]] = {}
        for batch in self._batches([texts[i] for i in order], encoder):
            for name, values in encoder.forward(encoder.tokenize(batch)).items():
                parts.setdefault(name, []).append(values)
        inverse = np.argsort(order, kind="stable")
        return {name: np.concatenate(chunks)[inverse] for name, chunks in parts.items()}

    def _batches(self, texts: list[str], encoder: TeacherEncoder) -> Iterator[list[str]]:
        budget = self.config.max_tokens_per_batch
        if budget is None:
            size = self.compute.batch_size
            yield from (texts[i : i + size] for i in range(0, len(texts), size))
            return
        lengths = token_lengths(encoder, texts)
        batch: list[str] = []
        longest = 0
        for text, length in zip(texts, lengths, strict=True):
            longest = max(longest, length)
            if batch and longest * (len(batch) + 1) > budget:
                yield batch
                batch, longest = [], length
            batch.append(text)
        if batch:
            yield batch


def token_lengths(encoder: TeacherEncoder, texts: list[str]) -> list[int]:
    """Token count of each text after truncation to the teacher's limit."""
    tokenizer = encoder.model.tokenizer
    ids = tokenizer(texts, truncation=True, max_length=encoder.max_seq_length)["input_ids"]
    return [len(i) for i in ids]


def prepare_encoding(
    corpus: Dataset, config: EncodingConfig, compute: ComputeConfig, *, source_name: str = "corpus"
) -> EncodingJob:
    """Validate the corpus and options against the teacher's config; load no weights.

    Args:
        corpus: The source rows (``max_samples`` already applied or not; applied here).
        config: The ``teacher_embeddings`` options.
        compute: Device and precision options.
        source_name: Name of the corpus (for logs and the default Hub repo name).

    Returns:
        A job ready for :func:`run_encoding`.
    """
    corpus = limit_rows(corpus, config.max_samples)
    row_ids = valid_row_ids(corpus, config.text_column, invalid_texts=config.invalid_texts)
    source = resolve_model_source(config.teacher_model, what="teacher_model")
    layers = None
    if config.output_type == "hidden_states":
        layers = check_layer_indices(
            config.layer_indices, num_hidden_layers(load_model_config(source))
        )
    all_texts = corpus[config.text_column]
    texts = [all_texts[i] for i in row_ids]
    return EncodingJob(
        config=config,
        compute=compute,
        teacher_source=source,
        row_ids=row_ids,
        texts=texts,
        layers=layers,
        corpus_fingerprint=texts_fingerprint(row_ids, texts),
        source_name=source_name,
    )


ShardCallback = Callable[[ShardStore, int, bool], None]


def run_encoding(
    job: EncodingJob, store: ShardStore, *, on_shard: ShardCallback | None = None
) -> ShardStore:
    """Write every missing shard of ``job`` into ``store`` and mark it complete.

    Resumes after the last complete shard when ``store`` holds a partial run of the same job.

    Args:
        job: The prepared job.
        store: The shard folder.
        on_shard: Called after each shard as ``on_shard(store, rows, is_last)`` (Hub pushes).
    """
    first_shard = store.begin(job.identity())
    done_rows = min(first_shard * job.config.chunk_size, job.num_rows)
    if first_shard:
        logger.info(
            "Resuming: %d of %d shards already done in %s",
            first_shard,
            job.num_shards,
            store.folder,
        )
    started = time.perf_counter()
    with tqdm(
        total=job.num_rows, initial=done_rows, desc="Encoding", unit="text", dynamic_ncols=True
    ) as progress:
        for index in range(first_shard, job.num_shards):
            table = job.shard_table(index)
            store.write_shard(index, table)
            if on_shard is not None:
                on_shard(store, table.num_rows, index == job.num_shards - 1)
            progress.update(table.num_rows)
            logger.info(
                "Shard %d/%d written (%d rows, %s)",
                index + 1,
                job.num_shards,
                table.num_rows,
                store.shard_file(index),
            )
    elapsed = time.perf_counter() - started
    encoded = job.num_rows - done_rows
    store.finish(
        teacher_model=job.config.teacher_model,
        layers=job.layers,
        seconds=round(elapsed, 3),
        texts_per_second=round(encoded / elapsed, 2) if elapsed > 0 else None,
    )
    logger.info("Encoded %d texts in %.1f s into %s", encoded, elapsed, store.folder)
    return store
