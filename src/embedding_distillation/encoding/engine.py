"""Encode a corpus with the teacher into a shard folder, resuming where a previous run stopped.

``prepare_encoding`` validates everything that can be checked cheaply (parameters, text column,
texts, layer indices against the teacher's config) before any weights are loaded; the returned
:class:`EncodingJob` is run by :func:`run_encoding` into a :class:`ShardStore`.

Per shard: the texts are read from the memory-mapped corpus, measured in tokens once, sorted
by length, cut into batches (``batch_size`` texts, or ``max_tokens_per_batch`` padded tokens),
tokenized one batch ahead in a background thread while the teacher runs, and written back in
corpus order.
"""

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from datasets import Dataset
from tqdm.auto import tqdm

from embedding_distillation import distributed
from embedding_distillation.compute import ComputeConfig, resolve_device
from embedding_distillation.corpus import limit_rows, scan_texts
from embedding_distillation.distributed import describe
from embedding_distillation.encoding.config import ROW_ID_COLUMN, EncodingConfig
from embedding_distillation.encoding.shards import ShardFolderError, ShardStore, embedding_array
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


@dataclass
class EncodedShard:
    """One encoded shard and what it cost."""

    table: pa.Table
    tokens: int
    truncated: int


@dataclass
class EncodingJob:
    """A validated encoding job: which rows to encode and how; the teacher loads lazily."""

    config: EncodingConfig
    compute: ComputeConfig
    corpus: Dataset
    teacher_source: str
    row_ids: np.ndarray
    layers: list[int] | None
    corpus_fingerprint: str
    skipped: int = 0
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

    @property
    def device(self) -> torch.device:
        """The device this process encodes on (under torchrun: GPU ``LOCAL_RANK``)."""
        return resolve_device(self.compute.device)

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
            encoder = self.encoder()
            self._identity = {
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
        return self._identity

    def shard_rows(self, index: int) -> np.ndarray:
        """Row ids of shard ``index``."""
        start = index * self.config.chunk_size
        return self.row_ids[start : start + self.config.chunk_size]

    def encode_shard(self, index: int) -> EncodedShard:
        """Encode shard ``index``: its rows in corpus order, plus token and truncation counts."""
        row_ids = self.shard_rows(index)
        texts = list(self.corpus.select(row_ids)[self.config.text_column])
        embeddings, tokens, truncated = self.encode_texts(texts)
        columns: dict[str, pa.Array] = {
            ROW_ID_COLUMN: pa.array(row_ids, type=pa.int64()),
            self.config.text_column: pa.array(texts, type=pa.string()),
        }
        for name in self.encoder().columns():
            columns[name] = embedding_array(embeddings[name], self.config.embedding_dtype)
        return EncodedShard(pa.table(columns), tokens, truncated)

    def encode_texts(self, texts: list[str]) -> tuple[dict[str, np.ndarray], int, int]:
        """Encode texts in length-sorted batches; outputs come back in input order.

        Returns:
            (column -> (rows, dim) float32 array, tokens read, texts truncated).
        """
        encoder = self.encoder()
        full_lengths = token_lengths(encoder, texts)
        limit = encoder.max_seq_length
        lengths = np.minimum(full_lengths, limit)
        order = np.argsort(-lengths, kind="stable")
        batches = list(self._batches(order, lengths))
        parts: dict[str, list[np.ndarray]] = {}
        with ThreadPoolExecutor(max_workers=1) as pool:  # tokenize the next batch meanwhile
            pending = pool.submit(encoder.tokenize, [texts[i] for i in batches[0]])
            for number in range(len(batches)):
                features = pending.result()
                if number + 1 < len(batches):
                    next_texts = [texts[i] for i in batches[number + 1]]
                    pending = pool.submit(encoder.tokenize, next_texts)
                for name, values in encoder.forward(features).items():
                    parts.setdefault(name, []).append(values)
        inverse = np.argsort(order, kind="stable")
        outputs = {name: np.concatenate(chunks)[inverse] for name, chunks in parts.items()}
        return outputs, int(lengths.sum()), int((full_lengths > limit).sum())

    def _batches(self, order: np.ndarray, lengths: np.ndarray) -> Iterator[np.ndarray]:
        """Cut the length-sorted positions into batches by count or by padded-token budget."""
        budget = self.config.max_tokens_per_batch
        if budget is None:
            size = self.compute.batch_size
            yield from (order[i : i + size] for i in range(0, len(order), size))
            return
        start = 0
        while start < len(order):
            longest = int(lengths[order[start]])  # sorted descending: the first is the longest
            count = max(1, budget // max(longest, 1))
            yield order[start : start + count]
            start += count


def token_lengths(encoder: TeacherEncoder, texts: list[str]) -> np.ndarray:
    """Token count of each text with special tokens, before truncation."""
    tokenizer = encoder.model.tokenizer
    ids = tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
    return np.fromiter((len(i) for i in ids), dtype=np.int64, count=len(texts))


def prepare_encoding(
    corpus: Dataset, config: EncodingConfig, compute: ComputeConfig, *, source_name: str = "corpus"
) -> EncodingJob:
    """Validate the corpus and options against the teacher's config; load no weights.

    Args:
        corpus: The source rows (read lazily from its Arrow files).
        config: The ``teacher_embeddings`` options (``max_samples`` is applied here).
        compute: Device and precision options.
        source_name: Name of the corpus (for logs and the default Hub repo name).

    Returns:
        A job ready for :func:`run_encoding`.
    """
    corpus = limit_rows(corpus, config.max_samples)
    scan = scan_texts(corpus, config.text_column, invalid_texts=config.invalid_texts)
    source = resolve_model_source(config.teacher_model, what="teacher_model")
    layers = None
    if config.output_type == "hidden_states":
        layers = check_layer_indices(
            config.layer_indices, num_hidden_layers(load_model_config(source))
        )
    return EncodingJob(
        config=config,
        compute=compute,
        corpus=corpus,
        teacher_source=source,
        row_ids=scan.row_ids,
        layers=layers,
        corpus_fingerprint=scan.fingerprint,
        skipped=scan.skipped,
        source_name=source_name,
    )


ShardCallback = Callable[[ShardStore, int, bool], None]


def run_encoding(
    job: EncodingJob, store: ShardStore, *, on_shard: ShardCallback | None = None
) -> ShardStore:
    """Write every missing shard of ``job`` into ``store`` and mark it complete.

    Resumes when ``store`` holds a partial run of the same job (shards already written are
    skipped); a complete folder of the same job is reused as it is.

    Under ``torchrun`` every process calls this with the same job and folder: the shards still
    missing are dealt out in turn (the i-th missing shard to rank ``i % world_size``), each
    process writes its own shard files, and rank 0 alone writes the manifest, calls
    ``on_shard`` and marks the folder complete once every process is done. The folder must be
    on a filesystem that every process sees.

    Args:
        job: The prepared job.
        store: The shard folder.
        on_shard: Called on rank 0 as ``on_shard(store, rows, is_last)`` whenever the manifest
            lists ``rows`` more rows (Hub pushes); the last call comes after the manifest is
            marked complete.
    """
    distributed.init(job.device)
    identity = job.identity()  # every process loads the teacher: each one encodes
    done, complete = distributed.on_main(lambda: (store.begin(identity), store.is_complete()))
    main = distributed.is_main()
    if complete:
        logger.info("Reusing the complete teacher embeddings in %s", store.folder)
        if main and on_shard is not None:
            on_shard(store, 0, True)
        return store
    missing = [index for index in range(job.num_shards) if index not in done]
    mine = missing[distributed.rank() :: distributed.world_size()]
    if done:
        logger.info(
            "Resuming: %d of %d shards already done in %s", len(done), job.num_shards, store.folder
        )
    if distributed.world_size() > 1:
        logger.info("Encoding %d of the %d missing shards%s", len(mine), len(missing), describe())
    done_rows = sum(len(job.shard_rows(index)) for index in done)
    started = time.perf_counter()
    tokens = truncated = unreported = 0
    with tqdm(  # rank 0 shows the rows listed in the manifest, whoever encoded them
        total=job.num_rows,
        initial=(store.manifest() or {}).get("num_rows", 0) if main else 0,
        desc="Encoding",
        unit="text",
        dynamic_ncols=True,
        disable=not main,
    ) as progress:
        for index in mine:
            shard = job.encode_shard(index)
            store.write_shard_file(index, shard.table)
            tokens += shard.tokens
            truncated += shard.truncated
            logger.info(
                "Shard %d/%d written (%d rows, %s)%s",
                index + 1,
                job.num_shards,
                shard.table.num_rows,
                store.shard_file(index),
                describe(),
            )
            if not main:
                continue
            listed = store.list_completed()
            progress.update(listed)
            progress.set_postfix(
                tokens_per_s=f"{tokens / max(time.perf_counter() - started, 1e-9):,.0f}"
            )
            unreported += listed
            if unreported and on_shard is not None and store.num_listed() < job.num_shards:
                on_shard(store, unreported, False)
                unreported = 0
        distributed.barrier()  # every shard file is written
        if main:
            listed = store.list_completed()
            progress.update(listed)
            unreported += listed
    counts = distributed.all_gather_object((tokens, truncated))  # every process's share
    tokens, truncated = sum(c[0] for c in counts), sum(c[1] for c in counts)
    elapsed = time.perf_counter() - started
    if main:
        _check_all_listed(job, store)
        store.finish(**_summary(job, done_rows, elapsed, tokens, truncated))
        if on_shard is not None:
            on_shard(store, unreported, True)
        if truncated:
            logger.warning(
                "%d texts were longer than the teacher's %d-token limit and were truncated",
                truncated,
                job.encoder().max_seq_length,
            )
        logger.info(
            "Encoded %d texts in %.1f s into %s",
            job.num_rows - done_rows,
            elapsed,
            store.folder,
        )
    distributed.barrier()  # nobody reads the folder before rank 0 marks it complete
    return store


def _check_all_listed(job: EncodingJob, store: ShardStore) -> None:
    listed = store.num_listed()
    if listed != job.num_shards:
        missing = store.shard_file(listed)
        raise ShardFolderError(
            f"After every process finished, {store.folder} lists {listed} of {job.num_shards} "
            f"shards: {missing} is missing. Under torchrun with several nodes the output folder "
            "must be on a filesystem every node sees (NFS, Lustre, ...); point it there and run "
            "the same command again to resume."
        )


def _summary(
    job: EncodingJob, done_rows: int, elapsed: float, tokens: int, truncated: int
) -> dict[str, Any]:
    encoded = job.num_rows - done_rows
    return {
        "teacher_model": job.config.teacher_model,
        "layers": job.layers,
        "skipped_texts": job.skipped,
        "truncated_texts": truncated,
        "seconds": round(elapsed, 3),
        "texts_per_second": round(encoded / elapsed, 2) if elapsed > 0 else None,
        "tokens_per_second": round(tokens / elapsed, 1) if elapsed > 0 else None,
    }
