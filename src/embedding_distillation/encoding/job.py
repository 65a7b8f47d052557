"""What to encode, validated before any weights load: the frozen :class:`EncodingJob`.

:func:`prepare_encoding` checks everything that can be checked cheaply (parameters, text column,
every text of a map-style corpus, layer indices against the teacher's config) and returns the
job; :func:`~embedding_distillation.encoding.engine.run_encoding` runs it.
"""

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from datasets import Dataset, IterableDataset

from embedding_distillation.compute import ComputeConfig, resolve_device
from embedding_distillation.encoding.config import EncodingConfig
from embedding_distillation.encoding.teacher import (
    TeacherEncoder,
    check_layer_indices,
    num_hidden_layers,
)
from embedding_distillation.encoding.texts import scan_texts, select_texts
from embedding_distillation.models import (
    load_model_config,
    resolve_model_source,
    weights_fingerprint,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class EncodingJob:
    """A validated encoding job: which rows to encode, with which teacher, and how.

    A map-style corpus was scanned up front (``row_ids``, ``corpus_fingerprint``); a streamed
    one (``row_ids`` is ``None``) is read once while encoding, and its row and shard counts are
    known when the stream ends (they are in the manifest then).

    Attributes:
        config: The ``teacher_embeddings`` options.
        compute: Device and precision.
        corpus: The rows (``max_samples`` applied).
        teacher_source: The teacher as loadable: an absolute folder path or a Hub id.
        row_ids: Positions of the valid texts (map-style), or ``None`` for a stream.
        layers: Resolved layers for ``hidden_states`` (else ``None``).
        corpus_fingerprint: sha256 over the valid rows, or ``"streamed"``.
        skipped: Invalid texts left out (map-style; a stream counts them as it goes).
        source_name: Name of the corpus (logs, the default Hub repo name, provenance).
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

    @property
    def streaming(self) -> bool:
        """True for a streamed corpus."""
        return self.row_ids is None

    @property
    def shard_size(self) -> int:
        """Rows per shard: ``chunk_size``, or ``push_every`` when that is smaller.

        Pushes add whole shards, so shards no larger than ``push_every`` let every push add
        ``push_every`` rows as asked.
        """
        push_every = self.config.push_every
        return min(self.config.chunk_size, push_every) if push_every else self.config.chunk_size

    @property
    def num_rows(self) -> int | None:
        """Rows that will be written (valid texts only); ``None`` for a stream."""
        return None if self.row_ids is None else len(self.row_ids)

    @property
    def num_shards(self) -> int | None:
        """Shards of :attr:`shard_size` rows; ``None`` for a stream."""
        return None if self.row_ids is None else -(-len(self.row_ids) // self.shard_size)

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

    def settings_identity(self) -> dict[str, Any]:
        """The parts of the identity known before the teacher loads (all but its weights)."""
        return {
            "output_type": self.config.output_type,
            "embedding_dtype": self.config.embedding_dtype,
            "text_column": self.config.text_column,
            "chunk_size": self.shard_size,
            "precision": self.compute.precision,
            "corpus_fingerprint": self.corpus_fingerprint,
            # A stream's length is unknown up front: its limit stands in for it.
            "num_rows": self.config.max_samples if self.streaming else self.num_rows,
        }

    def identity(self, teacher: TeacherEncoder) -> dict[str, Any]:
        """What must match for shards to be reused: the settings, the teacher's weights, outputs.

        Args:
            teacher: The teacher loaded for this job.
        """
        return {
            **self.settings_identity(),
            "teacher_fingerprint": weights_fingerprint(teacher.model),
            "columns": teacher.columns(),
            "max_seq_length": teacher.max_seq_length,
        }

    def provenance(self) -> dict[str, Any]:
        """Where the embeddings come from, for the manifest (read back by distillation)."""
        return {
            "teacher_model": self.config.teacher_model,
            "teacher_source": self.teacher_source,
            "corpus": self.source_name,
            "split": self.config.split,
            "layers": self.layers,
            "repo_id": self.config.repo_id,
        }


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
        A job ready for :func:`~embedding_distillation.encoding.engine.run_encoding`.
    """
    source = resolve_model_source(config.teacher_model, what="teacher_model")  # before the scan
    layers = None
    if config.output_type == "hidden_states":
        layers = check_layer_indices(
            config.layer_indices, num_hidden_layers(load_model_config(source))
        )
    corpus = select_texts(corpus, config.text_column, config.max_samples)
    if isinstance(corpus, IterableDataset):
        row_ids, fingerprint, skipped = None, "streamed", 0
    else:
        scan = scan_texts(corpus, config.text_column, invalid_texts=config.invalid_texts)
        row_ids, fingerprint, skipped = scan.row_ids, scan.fingerprint, scan.skipped
    job = EncodingJob(
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
    if job.shard_size < config.chunk_size:
        logger.info(
            "push_every (%d) is smaller than chunk_size (%d): writing shards of %d rows, so "
            "that every push adds push_every rows",
            config.push_every,
            config.chunk_size,
            job.shard_size,
        )
    return job
