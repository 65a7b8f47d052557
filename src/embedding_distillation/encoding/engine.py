"""Run an :class:`~embedding_distillation.encoding.job.EncodingJob` into a shard folder.

:class:`ShardEncoder` holds what one run loads and counts (the teacher, a stream being read, the
tokenizer thread); :func:`run_encoding` writes the shards still missing, resuming where a
previous run stopped.

Per shard, in a background thread one shard ahead of the teacher: the texts are read from the
memory-mapped corpus (or the next shard of valid texts from a streamed one), then tokenized and
cut into length-sorted batches (:mod:`~embedding_distillation.encoding.batching`). The teacher's
outputs stay on its device until the shard is done, are put back
in corpus order, and the shard is written to Parquet in a second background thread while the
teacher runs the next one.
"""

import logging
import time
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from datasets import Dataset, IterableDataset
from tqdm.auto import tqdm

from embedding_distillation import distributed
from embedding_distillation.distributed import describe
from embedding_distillation.encoding.batching import (
    Batch,
    ShardTexts,
    TokenizedShard,
    tokenize_shard,
)
from embedding_distillation.encoding.config import ROW_ID_COLUMN, EncodingConfig
from embedding_distillation.encoding.job import EncodingJob, prepare_encoding
from embedding_distillation.encoding.shards import ShardFolderError, ShardStore, embedding_array
from embedding_distillation.encoding.teacher import TeacherEncoder
from embedding_distillation.encoding.texts import TextStream
from embedding_distillation.models import load_sentence_transformer

__all__ = ["EncodingJob", "ShardEncoder", "prepare_encoding", "run_encoding"]

logger = logging.getLogger(__name__)


@dataclass
class EncodedShard:
    """One encoded shard and what it cost."""

    table: pa.Table
    tokens: int
    truncated: int


class ShardEncoder:
    """One run of an :class:`EncodingJob`: the loaded teacher, the stream, the tokenizer thread.

    The job says what to encode and stays as it was; everything a run loads or counts lives
    here.

    Args:
        job: The validated job.
        teacher: A teacher loaded already for this job (``None``: loaded on first use).
    """

    def __init__(self, job: EncodingJob, teacher: TeacherEncoder | None = None) -> None:
        self.job = job
        self._teacher = teacher
        self._identity: dict[str, Any] | None = None
        self._stream: TextStream | None = None
        self._tokenizer_thread: ThreadPoolExecutor | None = None

    @property
    def config(self) -> EncodingConfig:
        """The job's options."""
        return self.job.config

    def teacher(self) -> TeacherEncoder:
        """The teacher, loaded on first use."""
        if self._teacher is None:
            logger.info(
                "Loading teacher %s (%s)", self.config.teacher_model, self.job.compute.precision
            )
            model = load_sentence_transformer(self.job.teacher_source, self.job.compute)
            self._teacher = TeacherEncoder(model, self.config.output_type, self.job.layers)
        return self._teacher

    def identity(self) -> dict[str, Any]:
        """The job's identity (:meth:`EncodingJob.identity`) with the teacher, loaded here."""
        if self._identity is None:
            self._identity = self.job.identity(self.teacher())
        return self._identity

    @property
    def num_rows(self) -> int | None:
        """Rows that will be written; for a stream, once it has ended."""
        if not self.job.streaming:
            return self.job.num_rows
        if self._stream is None or not self._stream.ended:
            return None
        return self._stream.rows_read - self._stream.skipped

    @property
    def num_shards(self) -> int | None:
        """Shards of the job; for a stream, once it has ended."""
        if not self.job.streaming:
            return self.job.num_shards
        return self._stream.chunks_read if self._stream and self._stream.ended else None

    @property
    def skipped(self) -> int:
        """Invalid texts left out (a stream's count is complete once it has ended)."""
        return self._stream.skipped if self._stream is not None else self.job.skipped

    def shards(
        self, done: set[int], check_done: Callable[[ShardTexts], None] | None = None
    ) -> Generator[ShardTexts]:
        """This process's shards still to encode, in order, with their texts.

        The i-th shard missing from ``done`` goes to rank ``i % world_size``. A map-style
        corpus reads only those shards; a stream is read to its end (each process reads all of
        it), and ``check_done`` sees each done shard as it passes, so a resumed run can check
        that the stream still holds the rows it wrote before.
        """
        rank, world = distributed.rank(), distributed.world_size()
        missing = 0
        for index, row_ids, texts in self._all_shards():
            if index in done:
                if check_done is not None and texts is not None:
                    check_done(ShardTexts(index, row_ids, texts))
                continue
            if missing % world == rank:
                yield ShardTexts(
                    index, row_ids, self._read_texts(row_ids) if texts is None else texts
                )
            missing += 1

    def _all_shards(self) -> Iterator[tuple[int, np.ndarray, list[str] | None]]:
        """Every shard in order: (index, row ids, texts, or None where not read yet)."""
        job = self.job
        size = job.shard_size
        if job.row_ids is not None:  # texts are read only for the shards that are encoded
            for index in range(job.num_shards or 0):
                yield index, job.row_ids[index * size : (index + 1) * size], None
            return
        assert isinstance(job.corpus, IterableDataset)
        self._stream = TextStream(job.corpus, self.config.text_column, self.config.invalid_texts)
        yield from ((i, ids, texts) for i, (ids, texts) in enumerate(self._stream.chunks(size)))

    def _read_texts(self, row_ids: np.ndarray) -> list[str]:
        assert isinstance(self.job.corpus, Dataset)
        return list(self.job.corpus.select(row_ids)[self.config.text_column])

    def encode_shard(self, tokenized: TokenizedShard) -> EncodedShard:
        """Encode a tokenized shard: its rows in corpus order, plus token and truncation counts."""
        embeddings = self.encode_batches(tokenized.batches)
        columns: dict[str, pa.Array] = {
            ROW_ID_COLUMN: pa.array(tokenized.shard.row_ids, type=pa.int64()),
            self.config.text_column: pa.array(tokenized.shard.texts, type=pa.string()),
        }
        for name in self.teacher().columns():
            columns[name] = embedding_array(embeddings[name], self.config.embedding_dtype)
        return EncodedShard(pa.table(columns), tokenized.tokens, tokenized.truncated)

    def tokenize_next(self, shards: Iterator[ShardTexts]) -> "Future[TokenizedShard | None]":
        """Read and tokenize the next of ``shards`` in the background (``None`` at the end).

        Every tokenizer call and every read of ``shards`` runs in this one thread, in order: a
        fast tokenizer must not be used from two threads at once.
        """
        if self._tokenizer_thread is None:
            self._tokenizer_thread = ThreadPoolExecutor(1, thread_name_prefix="tokenize")

        def work() -> TokenizedShard | None:
            shard = next(shards, None)
            return None if shard is None else self.tokenize(shard)

        return self._tokenizer_thread.submit(work)

    def stop_tokenizing(self) -> None:
        """Drop the queued tokenization, wait for the running one and end the thread."""
        if self._tokenizer_thread is not None:
            self._tokenizer_thread.shutdown(wait=True, cancel_futures=True)
        self._tokenizer_thread = None

    def tokenize(self, shard: ShardTexts) -> TokenizedShard:
        """Tokenize a shard's texts once, as the teacher does, and cut them into batches."""
        return tokenize_shard(
            self.teacher(),
            shard,
            batch_size=self.job.compute.batch_size,
            max_tokens=self.config.max_tokens_per_batch,
            pin=self.job.device.type == "cuda",
        )

    def encode_texts(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Encode ``texts`` in length-sorted batches; column -> (rows, dim) float32, in order."""
        shard = ShardTexts(0, np.arange(len(texts), dtype=np.int64), texts)
        return self.encode_batches(self.tokenize(shard).batches)

    def encode_batches(self, batches: list[Batch]) -> dict[str, np.ndarray]:
        """Run the teacher on every batch; outputs come back in the shard's order."""
        teacher = self.teacher()
        parts: dict[str, list[torch.Tensor]] = {}
        for _, features in batches:
            for name, values in teacher.forward_on_device(features).items():
                parts.setdefault(name, []).append(values)
        positions = np.concatenate([p for p, _ in batches]) if batches else np.empty(0, int)
        inverse = torch.from_numpy(np.argsort(positions, kind="stable"))
        return {  # one copy to the host per column and shard
            name: torch.cat(chunks).cpu()[inverse].numpy() for name, chunks in parts.items()
        }


ShardsListed = Callable[[ShardStore, bool], None]
"""``on_listed(store, all_listed)``: called on rank 0 whenever the manifest lists more shards."""


def run_encoding(
    job: EncodingJob,
    store: ShardStore,
    *,
    encoder: ShardEncoder | None = None,
    on_listed: ShardsListed | None = None,
) -> ShardStore:
    """Write every missing shard of ``job`` into ``store`` and mark it complete.

    Resumes when ``store`` holds a partial run of the same job (shards already written are
    skipped, damaged ones encoded again); a complete folder of the same job is reused as it is.

    Under ``torchrun`` every process calls this with the same job and folder, once it has
    joined the process group (:func:`~embedding_distillation.encoding.run.encode_to_shards`
    joins it): the shards still missing are dealt out in turn (the i-th missing shard to rank
    ``i % world_size``), each process writes its own shard files, and rank 0 alone writes the
    manifest, calls ``on_listed`` and marks the folder complete once every process is done. The
    folder must be on a filesystem that every process sees.

    Args:
        job: The prepared job.
        store: The shard folder.
        encoder: The run's state, when the caller made it already (its loaded teacher).
        on_listed: Called on rank 0 as ``on_listed(store, all_listed)`` after each shard the
            manifest newly lists (incremental Hub pushes); ``all_listed`` is true for the last.
    """
    encoder = encoder or ShardEncoder(job)
    identity = encoder.identity()  # every process loads the teacher: each one encodes
    done, complete = distributed.on_main(
        lambda: (store.begin(identity, job.provenance()), store.is_complete())
    )
    main = distributed.is_main()
    if complete:
        logger.info("Reusing the complete teacher embeddings in %s", store.folder)
        return store
    _log_share(encoder, done, store)
    started = time.perf_counter()
    check_done = _same_rows_as(store, job.config.text_column) if main and job.streaming else None
    rows, tokens, truncated = _encode_shards(encoder, store, done, check_done, on_listed, started)
    counts = distributed.all_gather_object((rows, tokens, truncated))  # every process's share
    rows, tokens, truncated = (sum(c[i] for c in counts) for i in range(3))
    elapsed = time.perf_counter() - started
    if main:
        _check_all_listed(encoder, store)
        store.finish(**_summary(encoder, rows, elapsed, tokens, truncated))
        if truncated:
            logger.warning(
                "%d texts were longer than the teacher's %d-token limit and were truncated",
                truncated,
                encoder.teacher().max_seq_length,
            )
        logger.info("Encoded %d texts in %.1f s into %s", rows, elapsed, store.folder)
    distributed.barrier()  # nobody reads the folder before rank 0 marks it complete
    return store


def _encode_shards(
    encoder: ShardEncoder,
    store: ShardStore,
    done: set[int],
    check_done: Callable[[ShardTexts], None] | None,
    on_listed: ShardsListed | None,
    started: float,
) -> tuple[int, int, int]:
    """Encode and write this process's shards; returns (rows, tokens, truncated).

    The next shard is tokenized and the previous one written while the teacher runs this one.
    ``started`` (``time.perf_counter()``) is when the run began, for the tokens/s shown.
    """
    main = distributed.is_main()
    rows = tokens = truncated = 0

    def write(index: int, shard: EncodedShard) -> int:  # in the writer thread
        store.write_shard_file(index, shard.table)
        logger.info(
            "Shard %d%s written (%d rows, %s)%s",
            index + 1,
            f"/{encoder.num_shards}" if encoder.num_shards is not None else "",
            shard.table.num_rows,
            store.shard_file(index),
            describe(),
        )
        return store.list_completed() if main else 0

    def written(listed: int) -> None:  # back in this thread, one write at a time
        progress.update(listed)
        progress.set_postfix(
            tokens_per_s=f"{tokens / max(time.perf_counter() - started, 1e-9):,.0f}"
        )
        if listed and on_listed is not None:
            on_listed(store, _all_listed(encoder, store))

    shards = encoder.shards(done, check_done)
    with (
        tqdm(  # rank 0 shows the rows listed in the manifest, whoever encoded them
            total=encoder.job.expected_rows,
            initial=(store.manifest() or {}).get("num_rows", 0) if main else 0,
            desc="Encoding",
            unit="text",
            dynamic_ncols=True,
            disable=not main,
        ) as progress,
        ThreadPoolExecutor(1, thread_name_prefix="write-shard") as writer,
    ):
        writing: Future[int] | None = None
        try:
            upcoming = encoder.tokenize_next(shards)
            while (tokenized := upcoming.result()) is not None:
                upcoming = encoder.tokenize_next(shards)  # tokenized while this one encodes
                shard = encoder.encode_shard(tokenized)
                rows += shard.table.num_rows
                tokens += shard.tokens
                truncated += shard.truncated
                listed = writing.result() if writing is not None else 0  # a failed write stops
                try:  # the previous shard's bookkeeping (and Hub push) first, in order
                    written(listed)
                finally:  # this shard is written even when that push failed
                    writing = writer.submit(write, tokenized.index, shard)
            if writing is not None:
                written(writing.result())
        finally:
            encoder.stop_tokenizing()
            shards.close()
        distributed.barrier()  # every shard file is written
        if main:
            listed = store.list_completed()  # the shards other processes wrote last
            progress.update(listed)
            if listed and on_listed is not None:
                on_listed(store, _all_listed(encoder, store))
    return rows, tokens, truncated


def _log_share(encoder: ShardEncoder, done: set[int], store: ShardStore) -> None:
    total = encoder.num_shards  # None for a stream
    if done:
        of_total = f" of {total}" if total is not None else ""
        logger.info("Resuming: %d%s shards already done in %s", len(done), of_total, store.folder)
    world = distributed.world_size()
    if world == 1:
        return
    if total is None:
        logger.info("Encoding every %d-th shard still missing from the stream%s", world, describe())
        return
    missing = [index for index in range(total) if index not in done]
    mine = len(missing[distributed.rank() :: world])
    logger.info("Encoding %d of the %d missing shards%s", mine, len(missing), describe())


def _all_listed(encoder: ShardEncoder, store: ShardStore) -> bool:
    """True when the manifest lists every shard (never before a stream has ended)."""
    return encoder.num_shards is not None and store.num_listed() >= encoder.num_shards


def _same_rows_as(store: ShardStore, text_column: str) -> Callable[[ShardTexts], None]:
    """A check that a streamed shard holds the rows that ``store`` wrote for it before."""

    def check(shard: ShardTexts) -> None:
        path = store.folder / store.shard_file(shard.index)
        table = pq.read_table(path, columns=[ROW_ID_COLUMN, text_column])
        same_ids = np.array_equal(table.column(ROW_ID_COLUMN).to_numpy(), shard.row_ids)
        if not (same_ids and table.column(text_column).to_pylist() == shard.texts):
            raise ShardFolderError(
                f"The streamed corpus no longer matches {store.folder}: shard {shard.index} "
                "was written from other rows. The source changed since the first run; delete "
                "that folder or choose another output folder to start fresh."
            )

    return check


def _check_all_listed(encoder: ShardEncoder, store: ShardStore) -> None:
    listed = store.num_listed()
    if listed != encoder.num_shards:
        missing = store.shard_file(listed)
        raise ShardFolderError(
            f"After every process finished, {store.folder} lists {listed} of "
            f"{encoder.num_shards} shards: {missing} is missing. Under torchrun with several "
            "nodes the output folder must be on a filesystem every node sees (NFS, Lustre, "
            "...); point it there and run the same command again to resume."
        )


def _summary(
    encoder: ShardEncoder, encoded: int, elapsed: float, tokens: int, truncated: int
) -> dict[str, Any]:
    return {
        "teacher_model": encoder.config.teacher_model,
        "layers": encoder.job.layers,
        "skipped_texts": encoder.skipped,
        "truncated_texts": truncated,
        "seconds": round(elapsed, 3),
        "texts_per_second": round(encoded / elapsed, 2) if elapsed > 0 else None,
        "tokens_per_second": round(tokens / elapsed, 1) if elapsed > 0 else None,
    }
