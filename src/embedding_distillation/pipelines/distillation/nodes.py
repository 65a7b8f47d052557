"""Nodes of the ``distillation`` pipeline."""

import logging
from typing import Any

from datasets import Dataset
from matplotlib.figure import Figure
from sentence_transformers import SentenceTransformer

from embedding_distillation.compute import ComputeConfig, from_params
from embedding_distillation.datasets.hub_model_dataset import ModelPush
from embedding_distillation.evaluation import plots
from embedding_distillation.evaluation.metrics import (
    EvaluationConfig,
    evaluate_models,
    split_heldout,
)
from embedding_distillation.evaluation.report import render_report
from embedding_distillation.hub import ModelCardInfo
from embedding_distillation.models import (
    for_inference,
    load_sentence_transformer,
    resolve_model_source,
)
from embedding_distillation.training.config import EmbeddingTrainerConfig
from embedding_distillation.training.trainer import (
    check_training_data,
    evaluation_column,
    load_student,
    prepare_student,
    train_student,
)

logger = logging.getLogger(__name__)


def split_embeddings(
    teacher_embeddings: Dataset, params: dict[str, Any]
) -> tuple[Dataset, Dataset]:
    """Teacher embeddings -> (training rows, held-out rows)."""
    return split_heldout(
        teacher_embeddings, from_params(EvaluationConfig, params, group="evaluation")
    )


def train_student_model(
    train_embeddings: Dataset, params: dict[str, Any], compute: dict[str, Any]
) -> tuple[SentenceTransformer, dict[str, Any]]:
    """Training rows + options -> (trained student, training metrics)."""
    config = EmbeddingTrainerConfig.from_params(params, compute)
    target_dim = check_training_data(train_embeddings, config)
    model = prepare_student(config, target_dim, train_embeddings)
    return model, train_student(model, train_embeddings, config)


def evaluate_student(
    student_model: SentenceTransformer,
    heldout_embeddings: Dataset,
    gold_pairs: Dataset | None,
    training_metrics: dict[str, Any],
    params: dict[str, Any],
    teacher_params: dict[str, Any],
    compute: dict[str, Any],
    evaluation: dict[str, Any],
) -> dict[str, Any]:
    """Trained student + held-out rows (+ gold pairs) -> metrics for teacher and student."""
    config = EmbeddingTrainerConfig.from_params(params, compute)
    compute_config = ComputeConfig.from_params(compute)
    eval_config = from_params(EvaluationConfig, evaluation, group="evaluation")
    teacher_source = resolve_model_source(teacher_params["teacher_model"], what="teacher_model")
    models = {
        "teacher": load_sentence_transformer(teacher_source, compute_config),
        "student_before": load_student(config),
        "student_after": for_inference(student_model, compute_config),
    }
    metrics = evaluate_models(
        models,
        heldout_embeddings,
        text_column=config.text_column,
        target_column=evaluation_column(config, heldout_embeddings.column_names),
        gold_pairs=gold_pairs,
        batch_size=compute_config.batch_size,
        speed_texts=eval_config.speed_texts,
    )
    training = {k: v for k, v in training_metrics.items() if k != "log_history"}
    return {
        **metrics,
        "teacher_model": teacher_params["teacher_model"],
        "student_model": config.student_model,
        "student_layers": None if config.student_init is None else list(config.student_init),
        "target_type": config.target_type,
        "loss_type": config.loss_type,
        "training": training,
        "loss_curve": [
            {"step": e["step"], "loss": e["loss"]}
            for e in training_metrics.get("log_history", [])
            if "loss" in e
        ],
    }


def plan_model_push(
    student_model: SentenceTransformer,
    distillation_metrics: dict[str, Any],
    params: dict[str, Any],
    teacher_params: dict[str, Any],
    compute: dict[str, Any],
) -> ModelPush:
    """Trained student + metrics + options -> a Hub push request (no repo unless push_to_hub)."""
    config = EmbeddingTrainerConfig.from_params(params, compute)
    repo_id = config.hub_model_id if config.push_to_hub else None
    card = ModelCardInfo(
        teacher_model=teacher_params.get("teacher_model"),
        training_data=teacher_params.get("repo_id") or "teacher_embeddings (local Kedro dataset)",
        training_config=config.to_dict(),
        metrics=distillation_metrics,
    )
    return ModelPush(model=student_model, repo_id=repo_id, token=config.hub_token, card=card)


def plot_report(distillation_metrics: dict[str, Any]) -> tuple[Figure, Figure, Figure]:
    """Metrics -> (loss curve, cosine histogram, quality-versus-speed) figures."""
    return (
        plots.loss_curve(distillation_metrics),
        plots.cosine_histogram(distillation_metrics),
        plots.quality_vs_speed(distillation_metrics),
    )


def write_report(distillation_metrics: dict[str, Any]) -> str:
    """Metrics -> the Markdown report."""
    return render_report(distillation_metrics)
