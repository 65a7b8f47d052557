import re

import pytest
from datasets import Dataset, IterableDataset

from embedding_distillation.encoding.texts import TextStream, check_text_column, scan_texts

NOT_UTF8 = (
    "The streamed corpus 'news' is not valid UTF-8: byte 0xe9 at or after row {row} of the "
    "stream does not decode, and `datasets` reads text files as UTF-8 (its error names neither "
    "the file nor the offset). Re-encode the dataset's text files to UTF-8 (`iconv -f latin1 -t "
    "utf-8 FILE > NEW`, naming the real encoding after -f) and upload them again. To find the "
    "file and byte offset, download the dataset (`hf download <dataset id> --repo-type dataset "
    "--local-dir DIR`) and point the corpus at DIR: local files are checked before encoding."
)


def test_missing_text_column_names_the_existing_ones(corpus):
    with pytest.raises(
        ValueError, match=r"Text column 'sentence' not found .*\['text', 'source'\]"
    ):
        check_text_column(corpus, "sentence")


def test_empty_corpus_is_rejected():
    with pytest.raises(ValueError, match=r"The corpus is empty \(0 rows\)"):
        check_text_column(Dataset.from_dict({"text": []}), "text")


def test_invalid_texts_are_skipped_with_a_count(caplog):
    data = Dataset.from_dict({"text": ["ok", None, "  ", "fine", ""]})
    with caplog.at_level("WARNING"):
        scan = scan_texts(data, "text", invalid_texts="skip", batch_size=2)
    assert scan.row_ids.tolist() == [0, 3]
    assert scan.skipped == 3
    assert "Skipping 3 of 5 rows" in caplog.text


def test_invalid_texts_fail_when_asked():
    data = Dataset.from_dict({"text": ["ok", None]})
    with pytest.raises(
        ValueError,
        match=r"1 of 2 texts in column 'text' are None, empty or not strings \(row 1: None\)",
    ):
        scan_texts(data, "text", invalid_texts="fail")


def test_all_invalid_texts_leave_nothing_to_encode():
    with pytest.raises(ValueError, match="All 2 texts in column 'text' are None, empty"):
        scan_texts(Dataset.from_dict({"text": ["", " "]}), "text", invalid_texts="skip")


def test_the_fingerprint_follows_the_valid_texts_and_their_positions():
    def fingerprint(texts):
        return scan_texts(
            Dataset.from_dict({"text": texts}), "text", invalid_texts="skip"
        ).fingerprint

    assert fingerprint(["a", "b"]) == fingerprint(["a", "b"])
    assert fingerprint(["a", "b"]) != fingerprint(["a", "c"])
    assert fingerprint(["a", "b"]) != fingerprint(["a", "", "b"])  # row ids moved


def _rows_then_latin1(rows: int):
    """``rows`` good rows, then what ``datasets`` raises on a Latin-1 byte in a text file."""
    for i in range(rows):
        yield {"text": f"row {i}"}
    b"caf\xe9".decode("utf-8")


def _stream(rows: int) -> IterableDataset:
    stream = IterableDataset.from_generator(_rows_then_latin1, gen_kwargs={"rows": rows})
    stream.info.dataset_name = "news"  # as a Hub dataset is named
    return stream


def test_a_stream_that_is_not_utf8_at_its_first_row_says_so_before_encoding():
    with pytest.raises(ValueError, match=re.escape(NOT_UTF8.format(row=0)) + "$"):
        check_text_column(_stream(0), "text")


def test_a_stream_that_stops_being_utf8_keeps_the_chunks_before():
    stream = TextStream(_stream(5), "text", invalid_texts="skip")
    chunks = []
    message = NOT_UTF8.format(row=4) + " The shards written before this row are kept."
    with pytest.raises(ValueError, match=re.escape(message)):
        chunks.extend(stream.chunks(size=2, batch_size=2))
    assert [ids.tolist() for ids, _ in chunks] == [[0, 1], [2, 3]]
    assert not stream.ended
