"""Readable errors for local corpus files that ``datasets`` cannot read.

``datasets.load_dataset`` reports an empty Parquet file and a text file that is not UTF-8 alike,
as "An error occurred while generating the dataset" (the cause, ``BatchSize must be greater
than 0`` or a ``UnicodeDecodeError`` at a position within one read block, is buried in the
chain). After such a failure, :func:`explain_load_error` looks at the files themselves and says
which one is at fault, where, and how to fix it. Nothing here runs when loading succeeds,
except for a streamed corpus, whose errors would otherwise come in the middle of encoding: its
files get the same checks up front (a Parquet footer or a size per file, and one read of each
text file).
"""

import codecs
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

TEXT_SUFFIXES = frozenset({".txt", ".csv", ".tsv", ".json", ".jsonl"})
READ_BLOCK = 1 << 20  # bytes read at a time when looking for the first invalid UTF-8 byte


@dataclass(frozen=True)
class InvalidUtf8:
    """Where a file stops being UTF-8.

    Attributes:
        offset: Byte offset of the first byte that is not valid UTF-8 (0-based).
        line: Line number of that byte (1-based).
        byte: Its value.
    """

    offset: int
    line: int
    byte: int


def explain_load_error(files: Iterable[Path]) -> ValueError | None:
    """A clear error for the first of ``files`` that has 0 rows or is not UTF-8, else ``None``.

    Args:
        files: The local data files a failed ``datasets.load_dataset`` call read.
    """
    files = list(files)
    return empty_file_error(files) or not_utf8_error(files)


def empty_file_error(files: Iterable[Path]) -> ValueError | None:
    """A clear error for the first of ``files`` with 0 rows (Parquet) or 0 bytes, else ``None``.

    Cheap (a Parquet footer, a file size), so a streamed corpus is checked with it up front:
    ``datasets`` would stop at such a file in the middle of the stream.
    """
    for path in files:
        suffix = path.suffix.lower()
        if suffix == ".parquet" and _parquet_rows(path) == 0:
            return ValueError(
                f"The corpus file {path} has 0 rows (a Parquet schema and no data), so there is "
                "nothing to encode. Point the corpus (the catalog's corpus source, or the "
                "dataset argument of the Python API) at a file with rows, or write this one again."
            )
        if suffix in TEXT_SUFFIXES and path.stat().st_size == 0:
            return ValueError(
                f"The corpus file {path} is empty (0 bytes, 0 rows), so there is nothing to "
                "encode. Point the corpus at a file with rows, or write this one again."
            )
    return None


def not_utf8_error(files: Iterable[Path]) -> ValueError | None:
    """A clear error for the first text file of ``files`` that is not UTF-8, else ``None``."""
    for path in files:
        if path.suffix.lower() not in TEXT_SUFFIXES:
            continue
        bad = first_invalid_utf8(path)
        if bad is not None:
            return ValueError(
                f"The corpus file {path} is not valid UTF-8: byte 0x{bad.byte:02x} at byte "
                f"offset {bad.offset} (line {bad.line}) is the first that does not decode, "
                "and `datasets` reads text files as UTF-8. Re-encode it to UTF-8, e.g. "
                f"`iconv -f latin1 -t utf-8 {path} > {path.stem}.utf8{path.suffix}` (name "
                "the file's real encoding after -f), and point the corpus at the new file."
            )
    return None


def first_invalid_utf8(path: Path) -> InvalidUtf8 | None:
    """The first byte of ``path`` that is not valid UTF-8, read in blocks; ``None`` if all is.

    A sequence cut off by the end of the file counts as invalid at its first byte.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    start = 0  # file offset of the block being decoded
    lines = 0  # newlines before ``start``
    with path.open("rb") as file:
        while True:
            block = file.read(READ_BLOCK)
            pending = len(decoder.getstate()[0])  # bytes of a sequence split across blocks
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as error:
                # ``error.object`` is the pending bytes followed by this block.
                offset = start - pending + error.start
                before = error.object[: error.start].count(b"\n")
                return InvalidUtf8(
                    offset=offset, line=lines + before + 1, byte=error.object[error.start]
                )
            if not block:
                return None
            start += len(block)
            lines += block.count(b"\n")


def _parquet_rows(path: Path) -> int | None:
    """Rows in the Parquet footer of ``path``, or ``None`` when it cannot be read."""
    try:
        return pq.read_metadata(path).num_rows
    except (OSError, ValueError):
        return None
