"""Local corpus files that ``datasets`` cannot read get an error naming the file and the fix."""

import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from kedro.io import DatasetError

from embedding_distillation import corpus_files
from embedding_distillation.corpus import load_corpus
from embedding_distillation.corpus_files import first_invalid_utf8
from embedding_distillation.datasets import CorpusDataset

LATIN1 = "the first line\nsecond line, café au lait\nthird\n".encode("latin-1")
BAD_OFFSET = LATIN1.index(b"\xe9")  # 31: the é of café, on line 2


def _empty_parquet(path):
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), path)
    return path


@pytest.mark.parametrize("streaming", [False, True])
def test_an_empty_parquet_file_says_0_rows(tmp_path, streaming):
    path = _empty_parquet(tmp_path / "corpus.parquet")
    with pytest.raises(
        ValueError,
        match=(
            rf"The corpus file {re.escape(str(path))} has 0 rows \(a Parquet schema and no "
            r"data\), so there is nothing to encode\. Point the corpus .* at a file with rows"
        ),
    ):
        load_corpus(path, streaming=streaming)


@pytest.mark.parametrize("streaming", [False, True])
def test_an_empty_parquet_file_in_a_folder_is_named(tmp_path, streaming):
    pq.write_table(pa.table({"text": ["a", "b"]}), tmp_path / "a.parquet")
    path = _empty_parquet(tmp_path / "b.parquet")
    with pytest.raises(ValueError, match=rf"corpus file {re.escape(str(path))} has 0 rows"):
        load_corpus(tmp_path, streaming=streaming)


@pytest.mark.parametrize("streaming", [False, True])
def test_an_empty_text_file_says_0_rows(tmp_path, streaming):
    path = tmp_path / "corpus.txt"
    path.write_bytes(b"")
    with pytest.raises(
        ValueError,
        match=rf"The corpus file {re.escape(str(path))} is empty \(0 bytes, 0 rows\)",
    ):
        load_corpus(path, streaming=streaming)


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize(
    ("name", "content", "offset", "line"),
    [
        ("corpus.txt", LATIN1, BAD_OFFSET, 2),
        ("corpus.csv", b"text\n" + LATIN1, BAD_OFFSET + 5, 3),
    ],
)
def test_a_file_that_is_not_utf8_names_the_byte_offset_and_the_fix(
    tmp_path, name, content, offset, line, streaming
):
    """A stream is checked before it is read: the same error, not one in the middle of encoding."""
    path = tmp_path / name
    path.write_bytes(content)
    stem, suffix = name.split(".")
    with pytest.raises(
        ValueError,
        match=(
            rf"The corpus file {re.escape(str(path))} is not valid UTF-8: byte 0xe9 at byte "
            rf"offset {offset} \(line {line}\) is the first that does not decode, and `datasets` "
            r"reads text files as UTF-8\. Re-encode it to UTF-8, e\.g\. `iconv -f latin1 -t "
            rf"utf-8 {re.escape(str(path))} > {stem}\.utf8\.{suffix}`"
        ),
    ):
        load_corpus(path, streaming=streaming)


@pytest.mark.parametrize("streaming", [False, True])
def test_a_folder_names_its_file_that_is_not_utf8(tmp_path, streaming):
    (tmp_path / "a.txt").write_text("fine\nlines\n")
    path = tmp_path / "b.txt"
    path.write_bytes(LATIN1)
    with pytest.raises(
        ValueError,
        match=(
            rf"The corpus file {re.escape(str(path))} is not valid UTF-8: byte 0xe9 at byte "
            rf"offset {BAD_OFFSET} \(line 2\)"
        ),
    ):
        load_corpus(tmp_path, streaming=streaming)


@pytest.mark.parametrize("streaming", [False, True])
def test_the_corpus_dataset_shows_the_clear_error(tmp_path, streaming):
    path = tmp_path / "corpus.txt"
    path.write_bytes(LATIN1)
    with pytest.raises(DatasetError, match=f"byte 0xe9 at byte offset {BAD_OFFSET}"):
        CorpusDataset(source=str(path), streaming=streaming).load()


def test_the_re_encoded_file_loads(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes(LATIN1.decode("latin-1").encode("utf-8"))
    assert load_corpus(path)["text"][1] == "second line, café au lait"


def test_other_generation_errors_are_left_as_they_are(tmp_path, monkeypatch):
    from datasets.exceptions import DatasetGenerationError

    path = tmp_path / "corpus.txt"
    path.write_text("fine\n")

    def broken(*args, **kwargs):
        raise DatasetGenerationError("An error occurred while generating the dataset")

    monkeypatch.setattr("datasets.load_dataset", broken)
    with pytest.raises(DatasetGenerationError, match="An error occurred while generating"):
        load_corpus(path)


@pytest.mark.parametrize("block", [1, 2, 3, 1 << 20])
def test_the_first_invalid_byte_is_found_across_read_blocks(tmp_path, monkeypatch, block):
    """A multi-byte character split by a block boundary is valid; the offset is in the file."""
    monkeypatch.setattr(corpus_files, "READ_BLOCK", block)
    path = tmp_path / "t.txt"
    path.write_bytes("ünïcödé\nline 2 \u20ac\n".encode() + b"caf\xe9\n")
    found = first_invalid_utf8(path)
    assert found is not None
    assert (found.offset, found.line, found.byte) == (
        len("ünïcödé\nline 2 €\ncaf".encode()),
        3,
        0xE9,
    )


@pytest.mark.parametrize("block", [1, 1 << 20])
def test_valid_utf8_and_a_sequence_cut_off_at_the_end(tmp_path, monkeypatch, block):
    monkeypatch.setattr(corpus_files, "READ_BLOCK", block)
    path = tmp_path / "t.txt"
    path.write_bytes("all fine €\n".encode())
    assert first_invalid_utf8(path) is None
    path.write_bytes("cut €".encode()[:-1])  # the euro sign's last byte is missing
    found = first_invalid_utf8(path)
    assert found is not None and (found.offset, found.line, found.byte) == (4, 1, 0xE2)
