"""Which texts of a corpus get encoded: the first ``max_samples`` rows, with a valid text.

Every check here runs before any model loads. A map-style corpus is scanned once up front, so
row counts and a content fingerprint are known before encoding; a streamed one is checked as its
texts arrive (:class:`TextStream`).
"""

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TypeAlias

import numpy as np
from datasets import Dataset, IterableDataset

logger = logging.getLogger(__name__)

Corpus: TypeAlias = Dataset | IterableDataset


def limit_rows(dataset: Corpus, max_samples: int | None) -> Corpus:
    """The first ``max_samples`` rows (all rows when ``None``), without copying data."""
    if max_samples is None:
        return dataset
    if isinstance(dataset, IterableDataset):
        return dataset.take(max_samples)
    if max_samples < len(dataset):
        return dataset.select(range(max_samples))
    return dataset


def check_text_column(dataset: Corpus, text_column: str) -> None:
    """Fail clearly when the corpus is empty or lacks ``text_column``.

    A streamed corpus is checked on its first row (its column names may be unknown before).
    """
    first: list[dict[str, object]] | None = None
    columns = dataset.column_names
    if isinstance(dataset, IterableDataset):
        try:
            first = list(dataset.take(1))
        except UnicodeDecodeError as e:
            raise not_utf8_stream_error(e, dataset, rows_read=0) from e
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


def select_texts(dataset: Corpus, text_column: str, max_samples: int | None) -> Corpus:
    """The text column of the first ``max_samples`` rows, once the column is checked.

    The one place where ``text_column`` and ``max_samples`` pick the rows to encode: the
    ``select_corpus`` node and :func:`~embedding_distillation.encoding.job.prepare_encoding`
    (so the Python API and the dry run too) call it.
    """
    check_text_column(dataset, text_column)
    return limit_rows(dataset, max_samples).select_columns([text_column])


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


def not_utf8_stream_error(
    error: UnicodeDecodeError, dataset: IterableDataset, *, rows_read: int
) -> ValueError:
    """A clear error for a streamed corpus that stops being UTF-8 after ``rows_read`` rows.

    Local files are checked before they are streamed
    (:func:`~embedding_distillation.corpus_files.explain_load_error` names the file and byte
    offset); a Hub dataset's files are not read beforehand, and ``datasets``' error names
    neither the file nor an offset in it, so the fix says how to get both.
    """
    bad = error.object[error.start] if isinstance(error.object, bytes) else None
    what = f"byte 0x{bad:02x}" if bad is not None else "a byte"
    kept = " The shards written before this row are kept." if rows_read else ""
    return ValueError(
        f"The streamed corpus {dataset.info.dataset_name or 'stream'!r} is not valid UTF-8: "
        f"{what} at or after row {rows_read} of the stream does not decode, and `datasets` "
        "reads text files as UTF-8 (its error names neither the file nor the offset). "
        "Re-encode the dataset's text files to UTF-8 (`iconv -f latin1 -t utf-8 FILE > NEW`, "
        "naming the real encoding after -f) and upload them again. To find the file and byte "
        "offset, download the dataset (`hf download <dataset id> --repo-type dataset "
        "--local-dir DIR`) and point the corpus at DIR: local files are checked before "
        f"encoding.{kept}"
    )


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
        except UnicodeDecodeError as e:
            raise not_utf8_stream_error(e, self.dataset, rows_read=self.rows_read) from e
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
