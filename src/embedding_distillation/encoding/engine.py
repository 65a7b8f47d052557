"""Encode a corpus with the teacher into a shard folder, resuming where a previous run stopped.

``prepare_encoding`` validates everything that can be checked cheaply (parameters, text column,
texts, layer indices against the teacher's config) before any weights are loaded; the returned
:class:`EncodingJob` is run by :func:`run_encoding` into a :class:`ShardStore`.

Per shard, in a background thread one shard ahead of the teacher: the texts are read from the
memory-mapped corpus (or the next ``chunk_size`` valid texts from a streamed one), tokenized
once, sorted by length and cut into batches (``batch_size`` texts, or ``max_tokens_per_batch``
padded tokens). The teacher's outputs stay on its device until the shard is done, are put back
in corpus order, and the shard is written to Parquet in a second background thread while the
teacher runs the next one.
"""

import logging
import time
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from datasets import Dataset, IterableDataset
from tqdm.auto import tqdm

from embedding_distillation import distributed
from embedding_distillation.compute import ComputeConfig, resolve_device
from embedding_distillation.corpus import TextStream, check_text_column, limit_rows, scan_texts
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

TOKENIZE_WINDOW = 4096  # texts tokenized and padded together (the longest batch of short texts)


@dataclass
class ShardTexts:
    """The rows of one shard: their row ids (positions in the corpus) and texts."""

    index: int
    row_ids: np.ndarray
    texts: list[str]


@dataclass
class TokenizedShard:
    """One shard's texts, tokenized and cut into length-sorted batches."""

    shard: ShardTexts
    batches: list[tuple[np.ndarray, dict[str, Any]]]  # (positions in the shard, features)
    tokens: int
    truncated: int

    @property
    def index(self) -> int:
        """The shard's number."""
        return self.shard.index


@dataclass
class EncodedShard:
    """One encoded shard and what it cost."""

    table: pa.Table
    tokens: int
    truncated: int


@dataclass
class EncodingJob:
    """A validated encoding job: which rows to encode and how; the teacher loads lazily.

    A map-style corpus was scanned up front (``row_ids``, ``corpus_fingerprint``); a streamed
    one (``row_ids`` is ``None``) is read once while encoding, and its row and shard counts are
    known when the stream ends.
    """

    config: EncodingConfig
    compute: ComputeConfig
    corpus: Dataset | IterableDataset
    teacher_source: str
    row_ids: np.ndarray | None
    layers: list[int] | None
    corpus_fingerprint: str
    skipped: int = 0
    source_name: str = "corpus"
    _encoder: TeacherEncoder | None = field(default=None, repr=False)
    _identity: dict[str, Any] | None = field(default=None, repr=False)
    _stream: TextStream | None = field(default=None, repr=False)
    _tokenizer_thread: ThreadPoolExecutor | None = field(default=None, repr=False)

    @property
    def streaming(self) -> bool:
        """True for a streamed corpus."""
        return self.row_ids is None

    @property
    def num_rows(self) -> int | None:
        """Rows that will be written (valid texts only); for a stream, once it has ended."""
        if self.row_ids is not None:
            return len(self.row_ids)
        if self._stream is None or not self._stream.ended:
            return None
        return self._stream.rows_read - self._stream.skipped

    @property
    def num_shards(self) -> int | None:
        """Shards of ``chunk_size`` rows; for a stream, once it has ended."""
        if self.row_ids is None:
            return self._stream.chunks_read if self._stream and self._stream.ended else None
        return -(-len(self.row_ids) // self.config.chunk_size)

    @property
    def expected_rows(self) -> int | None:
        """Rows to expect, for progress bars: exact when scanned, else what the source says."""
        if self.row_ids is not None:
            return len(self.row_ids)
        split = (self.corpus.info.splits or {}).get(self.config.split)
        announced = split.num_examples if split is not None and split.num_examples else None
        limits = [n for n in (announced, self.config.max_samples) if n]
        return min(limits) if limits else None

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
                # A stream's length is unknown up front: its limit stands in for it.
                "num_rows": self.config.max_samples if self.streaming else self.num_rows,
            }
        return self._identity

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
        if self.row_ids is not None:  # texts are read only for the shards that are encoded
            size = self.config.chunk_size
            for index in range(self.num_shards or 0):
                yield index, self.row_ids[index * size : (index + 1) * size], None
            return
        assert isinstance(self.corpus, IterableDataset)
        self._stream = TextStream(self.corpus, self.config.text_column, self.config.invalid_texts)
        for index, (row_ids, texts) in enumerate(self._stream.chunks(self.config.chunk_size)):
            yield index, row_ids, texts
        self.skipped = self._stream.skipped

    def _read_texts(self, row_ids: np.ndarray) -> list[str]:
        assert isinstance(self.corpus, Dataset)
        return list(self.corpus.select(row_ids)[self.config.text_column])

    def encode_shard(self, tokenized: TokenizedShard) -> EncodedShard:
        """Encode a tokenized shard: its rows in corpus order, plus token and truncation counts."""
        embeddings = self.encode_batches(tokenized.batches)
        columns: dict[str, pa.Array] = {
            ROW_ID_COLUMN: pa.array(tokenized.shard.row_ids, type=pa.int64()),
            self.config.text_column: pa.array(tokenized.shard.texts, type=pa.string()),
        }
        for name in self.encoder().columns():
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
        """Tokenize a shard's texts once, as the teacher does, and cut them into batches.

        Texts are taken longest first (by characters) in windows of ``TOKENIZE_WINDOW``, each
        tokenized and padded on its own, so the token ids held stay close to the real tokens
        however large ``chunk_size`` is; within a window, batches follow the token lengths.
        """
        texts = shard.texts
        encoder = self.encoder()
        limit = encoder.max_seq_length
        pin = self.device.type == "cuda"
        left = encoder.model.tokenizer.padding_side == "left"
        by_chars = (
            np.argsort([-len(text) for text in texts], kind="stable")
            if len(texts) > TOKENIZE_WINDOW
            else np.arange(len(texts))  # one window: the order does not matter
        )
        batches: list[tuple[np.ndarray, dict[str, Any]]] = []
        tokens = truncated = 0
        for start in range(0, len(texts), TOKENIZE_WINDOW):
            window = by_chars[start : start + TOKENIZE_WINDOW]
            features = encoder.tokenize([texts[i] for i in window])
            lengths = features["attention_mask"].sum(dim=1).numpy()
            at_limit = window[lengths >= limit]  # truncated, or exactly at the limit
            truncated += int((token_lengths(encoder, [texts[i] for i in at_limit]) > limit).sum())
            tokens += int(lengths.sum())
            order = np.argsort(-lengths, kind="stable")
            for rows in self._batches(order, lengths):
                width = int(lengths[rows].max())
                batches.append((window[rows], _slice_batch(features, rows, width, left, pin)))
        return TokenizedShard(shard, batches, tokens, truncated)

    def encode_texts(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Encode ``texts`` in length-sorted batches; column -> (rows, dim) float32, in order."""
        shard = ShardTexts(0, np.arange(len(texts), dtype=np.int64), texts)
        return self.encode_batches(self.tokenize(shard).batches)

    def encode_batches(
        self, batches: list[tuple[np.ndarray, dict[str, Any]]]
    ) -> dict[str, np.ndarray]:
        """Run the teacher on every batch; outputs come back in the shard's order."""
        encoder = self.encoder()
        parts: dict[str, list[torch.Tensor]] = {}
        for _, features in batches:
            for name, values in encoder.forward_on_device(features).items():
                parts.setdefault(name, []).append(values)
        positions = np.concatenate([p for p, _ in batches]) if batches else np.empty(0, int)
        inverse = torch.from_numpy(np.argsort(positions, kind="stable"))
        return {  # one copy to the host per column and shard
            name: torch.cat(chunks).cpu()[inverse].numpy() for name, chunks in parts.items()
        }

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


def _slice_batch(
    features: dict[str, Any], positions: np.ndarray, width: int, left: bool, pin: bool
) -> dict[str, Any]:
    """The rows ``positions`` of a shard's padded features, cut to the batch's longest text."""
    rows = torch.from_numpy(positions)
    batch: dict[str, Any] = {}
    for key, value in features.items():
        if not isinstance(value, torch.Tensor) or value.dim() == 0:
            batch[key] = value  # e.g. "modality"
            continue
        picked = value[rows]
        if picked.dim() == 2:
            picked = picked[:, -width:] if left else picked[:, :width]
        batch[key] = picked.pin_memory() if pin else picked
    return batch


def token_lengths(encoder: TeacherEncoder, texts: list[str]) -> np.ndarray:
    """Token count of each text with special tokens, before truncation."""
    if not texts:
        return np.zeros(0, dtype=np.int64)
    tokenizer = encoder.model.tokenizer
    ids = tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
    return np.fromiter((len(i) for i in ids), dtype=np.int64, count=len(texts))


def prepare_encoding(
    corpus: Dataset | IterableDataset,
    config: EncodingConfig,
    compute: ComputeConfig,
    *,
    source_name: str = "corpus",
) -> EncodingJob:
    """Validate the corpus and options against the teacher's config; load no weights.

    A map-style corpus is scanned in full here (every text checked, rows counted,
    fingerprinted); a streamed one is checked on its first row, and its texts as they arrive.

    Args:
        corpus: The source rows (read lazily from its Arrow files, or streamed).
        config: The ``teacher_embeddings`` options (``max_samples`` is applied here).
        compute: Device and precision options.
        source_name: Name of the corpus (for logs and the default Hub repo name).

    Returns:
        A job ready for :func:`run_encoding`.
    """
    corpus = limit_rows(corpus, config.max_samples)
    if isinstance(corpus, IterableDataset):
        check_text_column(corpus, config.text_column)
        row_ids, fingerprint, skipped = None, "streamed", 0
    else:
        scan = scan_texts(corpus, config.text_column, invalid_texts=config.invalid_texts)
        row_ids, fingerprint, skipped = scan.row_ids, scan.fingerprint, scan.skipped
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
        row_ids=row_ids,
        layers=layers,
        corpus_fingerprint=fingerprint,
        skipped=skipped,
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
    _log_share(job, done, store)
    started = time.perf_counter()
    check_done = _same_rows_as(store, job.config.text_column) if main and job.streaming else None
    rows, tokens, truncated, unreported = _encode_shards(
        job, store, done, check_done, on_shard, started
    )
    counts = distributed.all_gather_object((rows, tokens, truncated))  # every process's share
    rows, tokens, truncated = (sum(c[i] for c in counts) for i in range(3))
    elapsed = time.perf_counter() - started
    if main:
        _check_all_listed(job, store)
        store.finish(**_summary(job, rows, elapsed, tokens, truncated))
        if on_shard is not None:
            on_shard(store, unreported, True)
        if truncated:
            logger.warning(
                "%d texts were longer than the teacher's %d-token limit and were truncated",
                truncated,
                job.encoder().max_seq_length,
            )
        logger.info("Encoded %d texts in %.1f s into %s", rows, elapsed, store.folder)
    distributed.barrier()  # nobody reads the folder before rank 0 marks it complete
    return store


def _encode_shards(
    job: EncodingJob,
    store: ShardStore,
    done: set[int],
    check_done: Callable[[ShardTexts], None] | None,
    on_shard: ShardCallback | None,
    started: float,
) -> tuple[int, int, int, int]:
    """Encode and write this process's shards; returns (rows, tokens, truncated, unreported).

    The next shard is tokenized and the previous one written while the teacher runs this one.
    ``started`` (``time.perf_counter()``) is when the run began, for the tokens/s shown.
    """
    main = distributed.is_main()
    rows = tokens = truncated = unreported = 0

    def write(index: int, shard: EncodedShard) -> int:  # in the writer thread
        store.write_shard_file(index, shard.table)
        logger.info(
            "Shard %d%s written (%d rows, %s)%s",
            index + 1,
            f"/{job.num_shards}" if job.num_shards is not None else "",
            shard.table.num_rows,
            store.shard_file(index),
            describe(),
        )
        return store.list_completed() if main else 0

    def written(listed: int) -> None:  # back in this thread, one write at a time
        nonlocal unreported
        progress.update(listed)
        progress.set_postfix(
            tokens_per_s=f"{tokens / max(time.perf_counter() - started, 1e-9):,.0f}"
        )
        unreported += listed
        if unreported and on_shard is not None and not _all_listed(job, store):
            on_shard(store, unreported, False)
            unreported = 0

    shards = job.shards(done, check_done)
    with (
        tqdm(  # rank 0 shows the rows listed in the manifest, whoever encoded them
            total=job.expected_rows,
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
            upcoming = job.tokenize_next(shards)
            while (tokenized := upcoming.result()) is not None:
                upcoming = job.tokenize_next(shards)  # tokenized while this one encodes
                shard = job.encode_shard(tokenized)
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
            job.stop_tokenizing()
            shards.close()
        distributed.barrier()  # every shard file is written
        if main:
            listed = store.list_completed()
            progress.update(listed)
            unreported += listed
    return rows, tokens, truncated, unreported


def _log_share(job: EncodingJob, done: set[int], store: ShardStore) -> None:
    total = job.num_shards  # None for a stream
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


def _all_listed(job: EncodingJob, store: ShardStore) -> bool:
    """True when the manifest lists every shard (never before a stream has ended)."""
    return job.num_shards is not None and store.num_listed() >= job.num_shards


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
    job: EncodingJob, encoded: int, elapsed: float, tokens: int, truncated: int
) -> dict[str, Any]:
    return {
        "teacher_model": job.config.teacher_model,
        "layers": job.layers,
        "skipped_texts": job.skipped,
        "truncated_texts": truncated,
        "seconds": round(elapsed, 3),
        "texts_per_second": round(encoded / elapsed, 2) if elapsed > 0 else None,
        "tokens_per_second": round(tokens / elapsed, 1) if elapsed > 0 else None,
    }
