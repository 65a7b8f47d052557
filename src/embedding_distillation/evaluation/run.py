"""One evaluation of a distillation run: which models are compared, and the record it leaves."""

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer

from embedding_distillation.compute import ComputeConfig
from embedding_distillation.evaluation.config import EvaluationConfig
from embedding_distillation.evaluation.encoders import EvaluatedModel, from_sentence_transformer
from embedding_distillation.evaluation.exports import add_verdicts, export_models
from embedding_distillation.evaluation.metrics import MtebResults, evaluate_models
from embedding_distillation.evaluation.mteb_tasks import resolve_tasks
from embedding_distillation.evaluation.retrieval import local_retrieval_task
from embedding_distillation.models import (
    for_inference,
    load_sentence_transformer,
    looks_like_local_path,
    resolve_model_source,
)
from embedding_distillation.training.config import EmbeddingTrainerConfig
from embedding_distillation.training.student import load_student
from embedding_distillation.training.tracking import sts_dev_spearman
from embedding_distillation.training.trainer import evaluation_column

if TYPE_CHECKING:
    from embedding_distillation.datasets.student_export_dataset import StudentExport

logger = logging.getLogger(__name__)

# The roles whose weights are the same from one run to the next: their task embeddings are
# worth keeping in evaluation.embedding_cache_dir (the teacher's retrieval documents above all).
CACHED_ROLES = ("teacher", "student_before")


def source_name(source: str) -> str:
    """A model's short name for result files: a folder's name, or a Hub id as it is."""
    return Path(source).name if looks_like_local_path(source) or Path(source).exists() else source


def evaluate_distillation(
    student: SentenceTransformer,
    heldout: Dataset,
    *,
    config: EmbeddingTrainerConfig,
    compute: ComputeConfig,
    evaluation: EvaluationConfig,
    teacher_model: str,
    training_metrics: dict[str, Any],
    gold_pairs: Dataset | None = None,
    sts_pairs: Dataset | None = None,
    exports: "StudentExport | None" = None,
    retrieval_rows: Dataset | None = None,
    sts_dev_pairs: Dataset | None = None,
) -> tuple[dict[str, Any], MtebResults]:
    """Measure the teacher, the untrained and the trained student, and its exports, side by side.

    Every torch model runs at the device, precision and encoding batch size of ``compute``,
    the exports on the CPU with as many threads as torch uses; all on the same held-out rows,
    STS Benchmark pairs and retrieval rows (when given) and MTEB tasks. Each export is also
    compared row by row with the trained student, and int8 exports get a verdict
    (:mod:`~embedding_distillation.evaluation.exports`). The teacher's and the untrained
    student's task embeddings are kept in ``evaluation.embedding_cache_dir`` when it is set.
    With ``sts_dev_pairs``, the untrained and trained student also get their STS-B dev score
    (``sts_dev``), which the Hub push's regression check compares.

    Returns:
        The metrics record (what the report, plots and model card show) and mteb's results.
    """
    if sts_pairs is None:
        logger.info(
            "No STS Benchmark pairs (catalog entry sts_benchmark): the report's STS-B columns are "
            "n/a. `python -m embedding_distillation.demo` fetches them."
        )
    if gold_pairs is None:
        logger.info("No gold pairs (catalog entry gold_pairs): the report's gold columns are n/a.")
    retrieval, retrieval_articles = None, 0
    if retrieval_rows is None:
        logger.info(
            "No retrieval rows (catalog entry retrieval_set): the report's retrieval columns are "
            "n/a. `python -m embedding_distillation.demo` builds them."
        )
    else:
        limit = evaluation.retrieval_max_articles
        retrieval = local_retrieval_task(retrieval_rows, limit)
        retrieval_articles = (
            len(retrieval_rows) if limit is None else min(limit, len(retrieval_rows))
        )
    cache_dir = evaluation.embedding_cache_dir
    teacher = load_sentence_transformer(
        resolve_model_source(teacher_model, what="teacher_model"), compute
    )
    student_source = source_name(config.student_model)
    evaluated, untrained = for_inference(student, compute), load_student(config)
    trained = from_sentence_transformer(evaluated, student_source)
    models: dict[str, EvaluatedModel] = {
        "teacher": from_sentence_transformer(teacher, source_name(teacher_model)),
        "student_before": from_sentence_transformer(untrained, student_source),
        "student_after": trained,
    }
    formats = exports.formats if exports is not None else ()
    if exports is not None:
        models |= export_models(
            exports.folder,
            formats,
            source=student_source,
            threads=torch.get_num_threads(),
            prompts=trained.prompts,
        )
    metrics, mteb_results = evaluate_models(
        models,
        heldout,
        text_column=config.text_column,
        target_column=evaluation_column(config, heldout.column_names),
        gold_pairs=gold_pairs,
        tasks=resolve_tasks(evaluation.mteb_tasks, sts_pairs),
        retrieval=retrieval,
        batch_size=compute.batch_size,
        speed_texts=evaluation.speed_texts,
        exports_of=dict.fromkeys(formats, "student_after"),
        cache_dir=Path(cache_dir) if cache_dir is not None else None,
        cached=CACHED_ROLES,
    )
    add_verdicts(metrics, formats)
    if sts_dev_pairs is not None:  # what the push's regression check compares
        for role, model in (("student_before", untrained), ("student_after", evaluated)):
            spearman = sts_dev_spearman(model, sts_dev_pairs, compute.batch_size)
            metrics[role]["sts_dev"] = {"spearman": spearman}
    return {
        **metrics,
        **({"retrieval_articles": retrieval_articles} if retrieval is not None else {}),
        "teacher_model": teacher_model,
        "student_model": config.student_model,
        "student_type": config.student_type,
        "student_layers": None if config.student_init is None else list(config.student_init),
        "target_type": config.target_type,
        "loss_type": config.loss_type,
        "training": {k: v for k, v in training_metrics.items() if k != "log_history"},
        "loss_curve": [
            {"step": e["step"], "loss": e["loss"]}
            for e in training_metrics.get("log_history", [])
            if "loss" in e
        ],
    }, mteb_results
