"""Metrics that compare a student with its teacher: benchmarks, agreement, gold similarity, cost."""

import logging
import tempfile
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from datasets import Dataset
from scipy.stats import pearsonr, spearmanr
from tqdm.auto import tqdm

from embedding_distillation.evaluation.config import EvaluationConfig
from embedding_distillation.evaluation.embedding_cache import mteb_encoders
from embedding_distillation.evaluation.encoders import EvaluatedModel, TextEncoder
from embedding_distillation.evaluation.mteb_tasks import (
    main_scores,
    run_encoder,
    sts_benchmark_scores,
)
from embedding_distillation.evaluation.retrieval import score_retrieval

if TYPE_CHECKING:
    from mteb import AbsTask, TaskResult
    from mteb.models.model_meta import ModelMeta

logger = logging.getLogger(__name__)

REFERENCE = "teacher"  # the model every other one is measured against


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
    encoder: TextEncoder, texts: list[str], batch_size: int, *, progress: str | None = None
) -> np.ndarray:
    """Embeddings as float32 numpy (rows, dim); with ``progress``, a progress bar of that name."""
    if progress is None:
        return _encode(encoder, texts, batch_size)
    step = max(PROGRESS_CHUNK, batch_size)  # texts per encode call: the bar's granularity
    parts = []
    with tqdm(total=len(texts), desc=progress, unit="text", leave=False) as bar:
        for start in range(0, len(texts), step):
            parts.append(_encode(encoder, texts[start : start + step], batch_size))
            bar.update(len(parts[-1]))
    return np.concatenate(parts) if parts else _encode(encoder, texts, batch_size)


def _encode(encoder: TextEncoder, texts: list[str], batch_size: int) -> np.ndarray:
    return np.asarray(encoder.encode(texts, batch_size=batch_size), dtype=np.float32)


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


def gold_similarity(encoder: TextEncoder, pairs: Dataset, batch_size: int) -> dict[str, float]:
    """Pearson and Spearman correlation of cosine similarity with human scores.

    Each distinct text is encoded once (Lee50's 1,225 pairs hold 50 documents).
    """
    first, second = list(pairs["text_1"]), list(pairs["text_2"])
    unique = list(dict.fromkeys(first + second))
    vectors = dict(zip(unique, encode(encoder, unique, batch_size), strict=True))
    left = np.stack([vectors[text] for text in first])
    right = np.stack([vectors[text] for text in second])
    cosine = row_cosines(left, right)
    scores = np.asarray(pairs["score"], dtype=np.float64)
    return {
        "pearson": float(pearsonr(cosine, scores).statistic),
        "spearman": float(spearmanr(cosine, scores).statistic),
    }


def cost(model: EvaluatedModel, texts: list[str], batch_size: int) -> dict[str, Any]:
    """Parameter count, size (MB) and measured texts/s (after a one-batch warm-up)."""
    encode(model.encoder, texts[:batch_size], batch_size)  # warm-up
    started = time.perf_counter()
    encode(model.encoder, texts, batch_size)
    seconds = time.perf_counter() - started
    return {
        "parameters": model.parameters,
        "size_mb": model.size_mb,
        "texts_per_second": round(len(texts) / seconds, 2) if seconds > 0 else float("inf"),
    }


MtebResults = list[tuple["ModelMeta", "TaskResult"]]


def evaluate_models(
    models: dict[str, EvaluatedModel],
    heldout: Dataset,
    *,
    text_column: str,
    target_column: str,
    gold_pairs: Dataset | None,
    tasks: Sequence["AbsTask"] = (),
    retrieval: "AbsTask | None" = None,
    batch_size: int,
    speed_texts: int,
    exports_of: dict[str, str] | None = None,
    cache_dir: Path | None = None,
    cached: Collection[str] = (),
) -> tuple[dict[str, Any], MtebResults]:
    """Evaluate each named model (``teacher``, ``student_before``, ``student_after``, exports).

    Per model: the MTEB ``tasks`` (the STS Benchmark first; scores in ``sts_benchmark`` x100
    and ``mteb``), agreement with the stored teacher embeddings for every model whose output
    size matches the target, neighbour recall, the ``retrieval`` task (and, for every model
    but the teacher whose output has the teacher's width, ``retrieval_teacher_index``: its
    queries against the teacher's documents), gold similarity when ``gold_pairs`` is given, and
    cost. Every model but the teacher also gets its share of the teacher's STS-B and retrieval
    scores.

    Args:
        models: The models by role, in the report's order.
        heldout: Held-out rows with texts and the stored teacher embeddings.
        text_column: Column of ``heldout`` with the texts.
        target_column: Column of ``heldout`` with the embeddings to compare with.
        gold_pairs: ``text_1``, ``text_2``, ``score`` rows, or ``None``.
        tasks: MTEB tasks (:func:`~.mteb_tasks.resolve_tasks`).
        retrieval: The retrieval task (:func:`~.retrieval.local_retrieval_task`), or ``None``.
        batch_size: Texts per encode call.
        speed_texts: Held-out texts timed for texts/s.
        exports_of: ``{export: model}`` (``{"onnx_int8": "student_after"}``): each export is
            also compared row by row with that model on the held-out texts (``agreement``),
            which must come before it in ``models``.
        cache_dir: Embedding cache of the roles in ``cached`` (:mod:`~.embedding_cache`).
        cached: The roles whose task embeddings are kept in ``cache_dir`` between runs.

    Returns:
        The metrics, and the mteb results for the result files (``(model meta, task result)``).
    """
    exports_of = exports_of or {}
    kept: dict[str, np.ndarray] = {}  # held-out embeddings of the models exports follow
    texts = list(heldout[text_column])
    target = np.asarray(heldout.with_format("numpy")[target_column], dtype=np.float32)
    results: dict[str, Any] = {
        "heldout_rows": len(heldout),
        "target_column": target_column,
        "models": list(models),  # evaluation order: the report's row order
    }
    all_runs: MtebResults = []
    with (
        tempfile.TemporaryDirectory(prefix="embedding-cache-") as scratch,
        mteb_encoders(
            models,
            cache_dir=cache_dir,
            cached=cached,
            scratch=Path(scratch) if retrieval is not None else None,
        ) as encoders,
    ):
        teacher_width = None
        if retrieval is not None and REFERENCE in models:
            teacher_width = encode(models[REFERENCE].encoder, texts[:1], 1).shape[1]
        for name, model in models.items():
            logger.info("Evaluating %s", name)
            entry: dict[str, Any] = {}
            runs = run_encoder(encoders[name], tasks, batch_size=batch_size)
            all_runs += runs
            if runs:
                entry["sts_benchmark"] = sts_benchmark_scores(runs)
                entry["mteb"] = main_scores(runs)
            width = teacher_width
            if name != REFERENCE:
                embeddings = encode(
                    model.encoder, texts, batch_size, progress=f"Encoding held-out ({name})"
                )
                width = embeddings.shape[1]
                if name in exports_of.values():
                    kept[name] = embeddings
                entry |= _heldout_metrics(
                    embeddings, target, texts, kept.get(exports_of.get(name, ""))
                )
            if retrieval is not None:
                index = name != REFERENCE and teacher_width is not None and width == teacher_width
                if name != REFERENCE and teacher_width is not None and not index:
                    logger.info(
                        "%s: %d-d output, the teacher's is %d-d: no teacher-index retrieval",
                        name,
                        width,
                        teacher_width,
                    )
                found, runs = score_retrieval(
                    encoders[name],
                    retrieval,
                    model=model,
                    role=name,
                    teacher=encoders[REFERENCE] if index else None,
                    batch_size=batch_size,
                )
                entry |= found
                all_runs += runs
            if gold_pairs is not None:
                entry["gold"] = gold_similarity(model.encoder, gold_pairs, batch_size)
            entry["cost"] = cost(model, texts[:speed_texts], batch_size)
            results[name] = entry
    add_share_of_teacher(results)
    for name, reference in exports_of.items():
        add_share_of_student(results, name, reference)
    return results, all_runs


def _heldout_metrics(
    embeddings: np.ndarray, target: np.ndarray, texts: list[str], reference: np.ndarray | None
) -> dict[str, Any]:
    """Neighbour recall, agreement with the target (same width), an export's with ``reference``."""
    entry: dict[str, Any] = {}
    if reference is not None:
        entry["agreement"] = export_agreement(reference, embeddings, texts)
    if len(texts) > 1:
        entry["neighbours"] = {"recall_at_10": neighbour_recall(embeddings, target)}
    if embeddings.shape[1] == target.shape[1]:
        entry["heldout"] = agreement(embeddings, target)
        counts, _ = np.histogram(
            row_cosines(embeddings, target), bins=COSINE_BINS, range=(-1.0, 1.0)
        )
        entry["heldout"]["cosine_histogram"] = counts.tolist()
    return entry


WORST_TEXT_SHOWN = 200  # characters of an export's worst-agreeing text kept in the metrics


def export_agreement(reference: np.ndarray, exported: np.ndarray, texts: list[str]) -> dict:
    """Min and mean row cosine of an export to its torch model, and the text it agrees on least."""
    from embedding_distillation.export.agreement import agreement as row_agreement

    found = row_agreement(reference, exported, texts)
    return {
        "min_cosine": found.min_cosine,
        "mean_cosine": found.mean_cosine,
        "worst_text": found.worst_text[:WORST_TEXT_SHOWN],
    }


def add_share_of_student(results: dict[str, Any], export: str, reference: str) -> None:
    """Give an export's STS-B entry ``percent_of_student``: its Spearman / its torch model's."""
    sts = results.get(export, {}).get("sts_benchmark")
    base = results.get(reference, {}).get("sts_benchmark", {}).get("spearman")
    if sts and base:
        sts["percent_of_student"] = 100 * sts["spearman"] / base


def add_share_of_teacher(results: dict[str, Any]) -> None:
    """Give each model's STS-B entry ``percent_of_teacher`` (its Spearman / the teacher's).

    Its ``retrieval`` and ``retrieval_teacher_index`` entries get one too: their nDCG@10 / the
    teacher's own retrieval nDCG@10.
    """
    teacher = results.get(REFERENCE, {})
    shares = {
        "sts_benchmark": ("spearman", teacher.get("sts_benchmark", {}).get("spearman")),
        "retrieval": ("ndcg_at_10", teacher.get("retrieval", {}).get("ndcg_at_10")),
        "retrieval_teacher_index": ("ndcg_at_10", teacher.get("retrieval", {}).get("ndcg_at_10")),
    }
    for name, entry in results.items():
        if name == REFERENCE or not isinstance(entry, dict):
            continue
        for key, (score, reference) in shares.items():
            if reference and entry.get(key):
                entry[key]["percent_of_teacher"] = 100 * entry[key][score] / reference
