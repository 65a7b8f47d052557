"""Reading a text corpus from a Hub id, a local file or folder, or a ``datasets.Dataset``.

Validation happens here, before any model is loaded: the text column must exist, the corpus
must not be empty, and invalid texts (None, empty, not a string) are skipped with a count or
rejected, as the caller chooses.

A corpus is either map-style (a memory-mapped ``datasets.Dataset``: scanned once up front, so
row counts and a content fingerprint are known before encoding) or streamed (a
``datasets.IterableDataset`` from ``streaming=True``: nothing is downloaded or cached before
encoding starts, and the texts are checked as they arrive, by :class:`TextStream`).
"""

import contextlib
import hashlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

import datasets
import numpy as np
from datasets import Dataset, DatasetDict, IterableDataset
from datasets.exceptions import DatasetGenerationError

from embedding_distillation.corpus_files import empty_file_error, explain_load_error
from embedding_distillation.encoding.shards import MANIFEST_NAME, ShardStore
from embedding_distillation.hub.reachability import check_hub_reachable
from embedding_distillation.models import looks_like_local_path

logger = logging.getLogger(__name__)

# File suffix -> `datasets` builder name for local files.
BUILDERS = {
    ".parquet": "parquet",
    ".jsonl": "json",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "text",
    ".arrow": "arrow",
}

CorpusSource: TypeAlias = str | os.PathLike[str] | Dataset | IterableDataset
Corpus: TypeAlias = Dataset | IterableDataset


def load_corpus(
    source: CorpusSource,
    *,
    split: str = "train",
    max_samples: int | None = None,
    streaming: bool = False,
    token: str | None = None,
) -> Corpus:
    """Load a corpus as a memory-mapped ``datasets.Dataset``, or stream it.

    Args:
        source: A ``Dataset`` or ``IterableDataset``, a folder saved with ``save_to_disk``, a
            teacher-embeddings shard folder, a data file (parquet, jsonl, json, csv, tsv, txt,
            arrow), a folder of such files, or a Hub id.
        split: Split to take when the source has several.
        max_samples: Keep only the first N rows.
        streaming: Read data files and Hub datasets with ``streaming=True`` (an
            ``IterableDataset``): rows are read as they are encoded, with no download or Arrow
            cache beforehand. Folders saved with ``save_to_disk`` and shard folders are
            memory-mapped already; they are streamed from their Arrow files.
        token: Hub token for a private Hub dataset (``None``: ``HF_TOKEN`` or the stored
            login); never shown.

    Returns:
        The rows, in source order.
    """
    dataset: Corpus
    if isinstance(source, Dataset | IterableDataset):
        dataset = source
    elif isinstance(source, DatasetDict):
        dataset = _pick_split(source, split, repr(source))
    else:
        dataset = _load_from_reference(os.fspath(source), split, streaming, token)
    if streaming and isinstance(dataset, Dataset):
        name = dataset.info.dataset_name
        dataset = dataset.to_iterable_dataset()
        dataset.info.dataset_name = name
    return limit_rows(dataset, max_samples)


def limit_rows(dataset: Corpus, max_samples: int | None) -> Corpus:
    """The first ``max_samples`` rows (all rows when ``None``), without copying data."""
    if max_samples is None:
        return dataset
    if isinstance(dataset, IterableDataset):
        return dataset.take(max_samples)
    if max_samples < len(dataset):
        return dataset.select(range(max_samples))
    return dataset


def _load_from_reference(text: str, split: str, streaming: bool, token: str | None) -> Corpus:
    path = Path(text).expanduser()
    if path.is_file():
        builder = BUILDERS.get("".join(path.suffixes[-1:]).lower())
        if builder is None:
            raise ValueError(
                f"Cannot read corpus file {text!r}: unknown suffix. Supported: "
                f"{sorted(BUILDERS)}. Convert it, or pass a folder saved with save_to_disk."
            )
        with _clear_file_errors(path, streaming):
            loaded = datasets.load_dataset(
                builder, data_files={split: str(path)}, split=split, streaming=streaming
            )
        return _named(_as_dataset(loaded, split, text), path.stem)
    if path.is_dir():
        if (path / MANIFEST_NAME).exists():  # teacher embeddings written by this project
            return _named(ShardStore(path).load(), path.name)
        if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
            return _named(_as_dataset(datasets.load_from_disk(str(path)), split, text), path.name)
        with _clear_file_errors(path, streaming):
            loaded = datasets.load_dataset(str(path), split=split, streaming=streaming)
        return _named(_as_dataset(loaded, split, text), path.name)
    if looks_like_local_path(text) or not text:
        raise FileNotFoundError(
            f"Corpus path {text!r} does not exist (working directory: {Path.cwd()}). Pass an "
            "existing file or folder, or a Hugging Face Hub dataset id such as 'org/name'."
        )
    check_hub_reachable(text, repo_type="dataset", what="corpus")
    try:
        loaded = datasets.load_dataset(text, split=split, streaming=streaming, token=token)
    except Exception as e:  # datasets raises many types for a missing/unreachable repo
        raise OSError(
            f"Could not load dataset {text!r} (split {split!r}) from the Hugging Face Hub: {e}. "
            "Check the id, the split name and network/HF_ENDPOINT; if you meant a local path, "
            "it does not exist. A private dataset needs a token: `credentials: huggingface` on "
            "the catalog entry (conf/local/credentials.yml), or HF_TOKEN."
        ) from e
    return _as_dataset(loaded, split, text)


@contextlib.contextmanager
def _clear_file_errors(path: Path, streaming: bool) -> Iterator[None]:
    """Turn ``datasets``' generic generation error into one that names the file at fault.

    ``path`` is the data file, or the folder of data files, being loaded. A streamed corpus is
    read later, while encoding: its files are checked for 0 rows up front instead.
    """
    if streaming and (empty := empty_file_error(_data_files(path))) is not None:
        raise empty
    try:
        yield
    except DatasetGenerationError as e:
        clear = explain_load_error(_data_files(path))
        if clear is None:
            raise
        raise clear from e


def _data_files(path: Path) -> list[Path]:
    """``path`` itself, or the files in the folder ``path``."""
    return [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())


def _named(dataset: Corpus, name: str) -> Corpus:
    """Name a local corpus after its file or folder (the builder name, e.g. 'parquet', otherwise).

    The name is used in logs and in the default Hub repo name ``<user>/<name>-embeddings``.
    """
    dataset.info.dataset_name = name
    return dataset


def _as_dataset(loaded: object, split: str, name: str) -> Corpus:
    if isinstance(loaded, DatasetDict):
        return _pick_split(loaded, split, name)
    assert isinstance(loaded, Dataset | IterableDataset), type(loaded)
    return loaded


def _pick_split(dataset_dict: DatasetDict, split: str, name: str) -> Dataset:
    if split not in dataset_dict:
        raise ValueError(
            f"Split {split!r} not found in {name}; available splits: {sorted(dataset_dict)}. "
            "Set `split` to one of them."
        )
    return dataset_dict[split]


def check_text_column(dataset: Corpus, text_column: str) -> None:
    """Fail clearly when the corpus is empty or lacks ``text_column``.

    A streamed corpus is checked on its first row (its column names may be unknown before).
    """
    first: list[dict[str, object]] | None = None
    columns = dataset.column_names
    if isinstance(dataset, IterableDataset):
        first = list(dataset.take(1))
        columns = columns or (list(first[0]) if first else [])
    if text_column not in (columns or []):
        raise ValueError(
            f"Text column {text_column!r} not found in the corpus; its columns are "
            f"{columns}. Set text_column to one of them."
        )
    if (len(dataset) if first is None else len(first)) == 0:
        raise ValueError(
            "The corpus is empty (0 rows); nothing to encode. Check the source, split and "
            "max_samples."
        )


@dataclass(frozen=True)
class CorpusScan:
    """What one streaming pass over the text column found.

    Attributes:
        row_ids: Positions of the valid texts, ascending (int64).
        fingerprint: sha256 over (row id, text) of the valid rows.
        skipped: Number of None, empty or non-string texts left out.
    """

    row_ids: np.ndarray
    fingerprint: str
    skipped: int


def scan_texts(
    dataset: Dataset, text_column: str, *, invalid_texts: str, batch_size: int = 10_000
) -> CorpusScan:
    """Check every text in one streaming pass (memory stays flat as the corpus grows).

    Args:
        dataset: The corpus (Arrow-backed; read ``batch_size`` rows at a time).
        text_column: Column holding the texts.
        invalid_texts: ``"skip"`` leaves out None/empty/non-string texts and logs the count;
            ``"fail"`` raises instead.
        batch_size: Rows read per step.

    Returns:
        The valid row ids, their fingerprint and the skipped count.
    """
    check_text_column(dataset, text_column)
    digest = hashlib.sha256()
    valid: list[np.ndarray] = []
    bad_examples: list[str] = []
    skipped = 0
    texts_only = dataset.select_columns([text_column])
    for start, batch in zip(
        range(0, len(dataset), batch_size),
        texts_only.iter(batch_size=batch_size),
        strict=True,
    ):
        keep = []
        for offset, text in enumerate(batch[text_column]):
            if isinstance(text, str) and text.strip():
                keep.append(start + offset)
                digest.update(f"{start + offset}\t{len(text)}\t".encode())
                digest.update(text.encode())
            else:
                skipped += 1
                if len(bad_examples) < 3:
                    bad_examples.append(f"row {start + offset}: {text!r}")
        valid.append(np.asarray(keep, dtype=np.int64))
    row_ids = np.concatenate(valid) if valid else np.zeros(0, dtype=np.int64)
    total = len(dataset)
    if skipped:
        examples = ", ".join(bad_examples)
        if invalid_texts == "fail":
            raise ValueError(
                f"{skipped} of {total} texts in column {text_column!r} are None, empty or not "
                f"strings ({examples}). Clean the corpus, or set invalid_texts: skip to drop them."
            )
        if skipped == total:
            raise ValueError(
                f"All {total} texts in column {text_column!r} are None, empty or not strings "
                f"({examples}); nothing to encode."
            )
        logger.warning(
            "Skipping %d of %d rows whose %r is None, empty or not a string (%s)",
            skipped,
            total,
            text_column,
            examples,
        )
    return CorpusScan(row_ids=row_ids, fingerprint=digest.hexdigest(), skipped=skipped)


@dataclass
class TextStream:
    """The valid texts of a streamed corpus, in chunks, checked as they are read.

    Row ids are positions in the stream, as for a map-style corpus. Read it once: the counts
    (``rows_read``, ``skipped``, ``chunks_read``) are complete once ``ended`` is true.

    Args:
        dataset: The streamed corpus.
        text_column: Column holding the texts.
        invalid_texts: ``"skip"`` or ``"fail"`` (raised at the first invalid text; the chunks
            read before it are not lost).
    """

    dataset: IterableDataset
    text_column: str
    invalid_texts: str
    rows_read: int = 0
    skipped: int = 0
    chunks_read: int = 0
    ended: bool = False
    _examples: list[str] = field(default_factory=list, repr=False)

    def chunks(self, size: int, batch_size: int = 1000) -> Iterator[tuple[np.ndarray, list[str]]]:
        """(row ids, texts) of ``size`` valid texts at a time; the last chunk may be shorter."""
        row_ids: list[int] = []
        texts: list[str] = []
        batches = self.dataset.select_columns([self.text_column]).iter(batch_size=batch_size)
        try:
            for batch in batches:
                for text in batch[self.text_column]:
                    position = self.rows_read
                    self.rows_read += 1
                    if not (isinstance(text, str) and text.strip()):
                        self._invalid(position, text)
                        continue
                    row_ids.append(position)
                    texts.append(text)
                    if len(texts) == size:
                        self.chunks_read += 1
                        yield np.asarray(row_ids, dtype=np.int64), texts
                        row_ids, texts = [], []
        finally:
            batches.close()  # type: ignore[attr-defined]
        if texts:
            self.chunks_read += 1
            yield np.asarray(row_ids, dtype=np.int64), texts
        self._report()
        self.ended = True

    def _invalid(self, position: int, text: object) -> None:
        if self.invalid_texts == "fail":
            raise ValueError(
                f"Row {position} of the streamed corpus has a None, empty or non-string "
                f"{self.text_column!r} ({text!r}). Clean the corpus, or set invalid_texts: skip "
                "to drop such rows; the shards written before this row are kept."
            )
        self.skipped += 1
        if len(self._examples) < 3:
            self._examples.append(f"row {position}: {text!r}")

    def _report(self) -> None:
        if self.skipped == self.rows_read:
            raise ValueError(
                f"All {self.rows_read} texts in column {self.text_column!r} of the streamed "
                f"corpus are None, empty or not strings; nothing to encode."
            )
        if self.skipped:
            logger.warning(
                "Skipped %d of %d streamed rows whose %r is None, empty or not a string (%s)",
                self.skipped,
                self.rows_read,
                self.text_column,
                ", ".join(self._examples),
            )
