"""Every demo asset, fetched or built in dependency order."""

from pathlib import Path

from embedding_distillation.demo.gensim_data import ensure_corpus
from embedding_distillation.demo.large_corpus import ensure_large_corpus
from embedding_distillation.demo.models import ensure_gemma, ensure_student, ensure_teacher
from embedding_distillation.demo.retrieval import ensure_retrieval_set
from embedding_distillation.demo.sts_benchmark import STS_B_SPLITS, ensure_sts_benchmark


def ensure_all(data_dir: Path, with_gemma: bool = False) -> dict[str, Path]:
    """Fetch or build every demo asset that is not already present.

    The STS Benchmark comes first, since the corpora leave out its sentences, and the
    retrieval set before the large corpus, which leaves out its articles; the data assets
    (small) come before the models (about 500 MB).

    Args:
        data_dir: The project's data folder.
        with_gemma: Also fetch EmbeddingGemma-300M (1.15 GB).

    Returns:
        Output path per asset name (``sts_b_train``, ``sts_b_dev``, ``sts_b_test``,
        ``corpus``, ``lee50``, ``retrieval``, ``large_corpus``, ``teacher``, ``student``, and
        ``gemma`` when requested).
    """
    data_dir = Path(data_dir)
    sts_b = ensure_sts_benchmark(data_dir)
    corpus, lee50 = ensure_corpus(data_dir)
    assets = {f"sts_b_{split}": sts_b[split] for split in STS_B_SPLITS}
    assets |= {
        "corpus": corpus,
        "lee50": lee50,
        "retrieval": ensure_retrieval_set(data_dir),
        "large_corpus": ensure_large_corpus(data_dir),
        "teacher": ensure_teacher(data_dir),
        "student": ensure_student(data_dir),
    }
    if with_gemma:
        assets["gemma"] = ensure_gemma(data_dir)
    return assets
