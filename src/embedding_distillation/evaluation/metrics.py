"""Metrics that compare a student with its teacher: agreement, gold similarity, cost."""

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from datasets import Dataset
from scipy.stats import pearsonr, spearmanr
from sentence_transformers import SentenceTransformer
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluationConfig:
    """The ``evaluation`` parameter group.

    Attributes:
        heldout_fraction: Fraction of the embedded rows kept out of training for evaluation.
        max_heldout_rows: Cap on held-out rows (evaluation cost stays bounded).
        speed_texts: Texts timed to measure texts/s of teacher and student.
        seed: Seed of the train/held-out split.
    """

    heldout_fraction: float = 0.1
    max_heldout_rows: int = 2000
    speed_texts: int = 256
    seed: int = 42

    def __post_init__(self) -> None:
        if not 0 < self.heldout_fraction < 1:
            raise ValueError(
                f"evaluation.heldout_fraction must be in (0, 1), got {self.heldout_fraction!r}."
            )
        for name in ("max_heldout_rows", "speed_texts"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"evaluation.{name} must be a positive integer, got {value!r}.")


def split_heldout(dataset: Dataset, config: EvaluationConfig) -> tuple[Dataset, Dataset]:
    """Deterministic (train, held-out) split; the held-out part is capped in size."""
    if len(dataset) < 2:
        raise ValueError(
            f"Need at least 2 embedded rows to hold some out for evaluation, got {len(dataset)}."
        )
    parts = dataset.train_test_split(
        test_size=heldout_rows(len(dataset), config), seed=config.seed, shuffle=True
    )
    return parts["train"], parts["test"]


def heldout_rows(num_rows: int, config: EvaluationConfig) -> int:
    """How many of ``num_rows`` embedded rows are held out (at least one stays for training)."""
    heldout = min(max(1, round(num_rows * config.heldout_fraction)), config.max_heldout_rows)
    return min(heldout, num_rows - 1)


PROGRESS_CHUNK = 256  # texts per encode call when a progress bar is shown


def encode(
    model: SentenceTransformer, texts: list[str], batch_size: int, *, progress: str | None = None
) -> np.ndarray:
    """Embeddings as float32 numpy (rows, dim); with ``progress``, a progress bar of that name."""
    if progress is None:
        return _encode(model, texts, batch_size)
    step = max(PROGRESS_CHUNK, batch_size)  # texts per encode call: the bar's granularity
    parts = []
    with tqdm(total=len(texts), desc=progress, unit="text", leave=False) as bar:
        for start in range(0, len(texts), step):
            parts.append(_encode(model, texts[start : start + step], batch_size))
            bar.update(len(parts[-1]))
    return np.concatenate(parts) if parts else _encode(model, texts, batch_size)


def _encode(model: SentenceTransformer, texts: list[str], batch_size: int) -> np.ndarray:
    return np.asarray(
        model.encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False),
        dtype=np.float32,
    )


def agreement(student: np.ndarray, teacher: np.ndarray) -> dict[str, float]:
    """MSE and mean cosine similarity between matching rows of two embedding matrices."""
    mse = float(np.mean((student - teacher) ** 2))
    return {"mse": mse, "mean_cosine": float(np.mean(row_cosines(student, teacher)))}


COSINE_BINS = 40  # histogram bins over [-1, 1] kept in the metrics for the report's plot


def row_cosines(student: np.ndarray, teacher: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``student`` with the same row of ``teacher``."""
    norms = np.linalg.norm(student, axis=1) * np.linalg.norm(teacher, axis=1)
    return np.sum(student * teacher, axis=1) / np.maximum(norms, 1e-12)


def neighbour_recall(embeddings: np.ndarray, reference: np.ndarray, k: int = 10) -> float:
    """Mean share of each row's ``k`` nearest ``reference`` neighbours found by ``embeddings``.

    Neighbours are by cosine similarity within the same set, a row never being its own
    neighbour; the two matrices may have different widths (it compares rankings, not vectors).
    """
    k = min(k, len(reference) - 1)
    if k < 1:
        raise ValueError("Neighbour recall needs at least 2 held-out rows.")

    def top_k(matrix: np.ndarray) -> np.ndarray:
        unit = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        similarity = unit @ unit.T  # (rows, rows)
        np.fill_diagonal(similarity, -np.inf)
        return np.argpartition(-similarity, k, axis=1)[:, :k]

    found, expected = top_k(embeddings), top_k(reference)
    hits = [len(set(a) & set(b)) for a, b in zip(found, expected, strict=True)]
    return float(np.mean(hits) / k)


def gold_similarity(
    model: SentenceTransformer, pairs: Dataset, batch_size: int
) -> dict[str, float]:
    """Pearson and Spearman correlation of cosine similarity with human scores.

    Each distinct text is encoded once (Lee50's 1,225 pairs hold 50 documents).
    """
    first, second = list(pairs["text_1"]), list(pairs["text_2"])
    unique = list(dict.fromkeys(first + second))
    vectors = dict(zip(unique, encode(model, unique, batch_size), strict=True))
    left = np.stack([vectors[text] for text in first])
    right = np.stack([vectors[text] for text in second])
    cosine = row_cosines(left, right)
    scores = np.asarray(pairs["score"], dtype=np.float64)
    return {
        "pearson": float(pearsonr(cosine, scores).statistic),
        "spearman": float(spearmanr(cosine, scores).statistic),
    }


def cost(model: SentenceTransformer, texts: list[str], batch_size: int) -> dict[str, float]:
    """Parameter count, weight size (MB) and measured texts/s on the model's device."""
    parameters = sum(p.numel() for p in model.parameters())
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    encode(model, texts[:batch_size], batch_size)  # warm-up
    started = time.perf_counter()
    encode(model, texts, batch_size)
    seconds = time.perf_counter() - started
    return {
        "parameters": int(parameters),
        "weights_mb": round(weight_bytes / 2**20, 2),
        "texts_per_second": round(len(texts) / seconds, 2) if seconds > 0 else float("inf"),
    }


def evaluate_models(
    models: dict[str, SentenceTransformer],
    heldout: Dataset,
    *,
    text_column: str,
    target_column: str,
    gold_pairs: Dataset | None,
    batch_size: int,
    speed_texts: int,
) -> dict[str, Any]:
    """Evaluate each named model (``teacher``, ``student_before``, ``student_after``).

    Agreement with the stored teacher embeddings is computed for every model whose output size
    matches the target; gold similarity when ``gold_pairs`` is given; cost always.
    """
    texts = list(heldout[text_column])
    target = np.asarray(heldout.with_format("numpy")[target_column], dtype=np.float32)
    results: dict[str, Any] = {"heldout_rows": len(heldout), "target_column": target_column}
    for name, model in models.items():
        logger.info("Evaluating %s", name)
        entry: dict[str, Any] = {}
        if name != "teacher":
            embeddings = encode(model, texts, batch_size, progress=f"Encoding held-out ({name})")
            if len(texts) > 1:
                entry["neighbours"] = {"recall_at_10": neighbour_recall(embeddings, target)}
            if embeddings.shape[1] == target.shape[1]:
                entry["heldout"] = agreement(embeddings, target)
                counts, _ = np.histogram(
                    row_cosines(embeddings, target), bins=COSINE_BINS, range=(-1.0, 1.0)
                )
                entry["heldout"]["cosine_histogram"] = counts.tolist()
        if gold_pairs is not None:
            entry["gold"] = gold_similarity(model, gold_pairs, batch_size)
        entry["cost"] = cost(model, texts[:speed_texts], batch_size)
        results[name] = entry
    return results
