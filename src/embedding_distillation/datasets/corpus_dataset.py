"""``CorpusDataset``: a text corpus from a local file/folder or a Hub id, read lazily."""

import logging
from pathlib import Path
from typing import Any

from datasets import Dataset, IterableDataset
from kedro.io import AbstractDataset, DatasetError

from embedding_distillation.corpus import load_corpus
from embedding_distillation.models import looks_like_local_path

logger = logging.getLogger(__name__)


class CorpusDataset(AbstractDataset[None, Dataset | IterableDataset | None]):
    """Loads a corpus as a memory-mapped ``datasets.Dataset``, or streams it; read-only.

    Describing it never touches the network (kedro-viz and ``kedro catalog`` stay offline).

    Example catalog entry::

        corpus:
          type: embedding_distillation.datasets.CorpusDataset
          source: data/01_raw/corpus/demo_corpus.parquet   # or a Hub id: org/name
          split: train
          streaming: false   # true: read rows as they are encoded, no download/cache first
          credentials: huggingface   # the token for a private Hub dataset

    Args:
        source: File (parquet, jsonl, json, csv, tsv, txt, arrow), folder, or Hub dataset id.
        split: Split to read.
        streaming: Return a ``datasets.IterableDataset`` (``streaming=True``): the
            ``teacher_embeddings`` pipeline then reads the rows while it encodes them, with no
            download or Arrow cache first.
        optional: When true and a local ``source`` is missing, ``load`` returns ``None``
            (for inputs such as gold similarity pairs that a project may not have).
        credentials: ``{"token": ...}`` for private Hub datasets (``None``: ``HF_TOKEN`` or the
            stored login); never shown.
        metadata: Free-form metadata (kedro-viz shows it).
    """

    def __init__(
        self,
        *,
        source: str,
        split: str = "train",
        streaming: bool = False,
        optional: bool = False,
        credentials: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._source = source
        self._split = split
        self._streaming = streaming
        self._optional = optional
        self._token = (credentials or {}).get("token")
        self.metadata = metadata

    def _is_missing_local(self) -> bool:
        return not Path(self._source).exists() and looks_like_local_path(self._source)

    def load(self) -> Dataset | IterableDataset | None:
        """Read the corpus (or ``None`` for a missing optional one)."""
        if self._optional and self._is_missing_local():
            logger.debug("Optional corpus %s is not there: None", self._source)  # callers say more
            return None
        return load_corpus(
            self._source, split=self._split, streaming=self._streaming, token=self._token
        )

    def save(self, data: None) -> None:
        """Corpora are inputs only."""
        raise DatasetError(f"CorpusDataset({self._source}) is read-only.")

    def _exists(self) -> bool:
        return Path(self._source).exists() or not looks_like_local_path(self._source)

    def _describe(self) -> dict[str, Any]:
        return {
            "source": self._source,
            "split": self._split,
            "streaming": self._streaming,
            "optional": self._optional,
            "credentials": "***" if self._token else None,
        }
