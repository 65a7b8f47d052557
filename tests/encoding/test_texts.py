import pytest
from datasets import Dataset

from embedding_distillation.encoding.texts import check_text_column, scan_texts


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
