"""Nodes of the ``distillation`` pipeline."""

import logging
import tempfile
from pathlib import Path
from typing import Any

from datasets import Dataset
from matplotlib.figure import Figure
from sentence_transformers import SentenceTransformer

from embedding_distillation import distributed
from embedding_distillation.compute import ComputeConfig
from embedding_distillation.encoding.provenance import EmbeddingsProvenance, TeacherEmbeddings
from embedding_distillation.evaluation import plots
from embedding_distillation.evaluation.comparison import compare, render_comparison
from embedding_distillation.evaluation.config import EvaluationConfig
from embedding_distillation.evaluation.metrics import MtebResults, split_heldout
from embedding_distillation.evaluation.regression import check_push, sts_dev_change
from embedding_distillation.evaluation.report import render_report
from embedding_distillation.evaluation.run import evaluate_distillation
from embedding_distillation.export.config import ExportConfig
from embedding_distillation.export.formats import StudentExport
from embedding_distillation.export.student_export import export_student
from embedding_distillation.hub import HubCredentials, ModelCardInfo, ModelPush
from embedding_distillation.students import StudentFailure, is_failure, student_options
from embedding_distillation.training.config import EmbeddingTrainerConfig
from embedding_distillation.training.student import check_training_data, prepare_student
from embedding_distillation.training.tracking import TrainingEvaluation, best_metric
from embedding_distillation.training.trainer import train_student

logger = logging.getLogger(__name__)


def resolve_student(
    distillation: dict[str, Any], student: dict[str, Any], *, name: str
) -> dict[str, Any]:
    """The shared ``distillation`` options + ``students.<name>`` -> that student's options."""
    return student_options(distillation, name, student or {})


def split_embeddings(
    teacher_embeddings: TeacherEmbeddings, params: dict[str, Any], export: dict[str, Any]
) -> tuple[Dataset, Dataset, dict[str, Any]]:
    """Teacher embeddings -> (training rows, held-out rows, their provenance).

    The evaluation and export options are checked first: an unknown MTEB task or export
    format, or a missing export package, stops the run here, before training.
    """
    config = EvaluationConfig.from_params(params)
    config.check_tasks()
    ExportConfig.from_params(export)
    train, heldout = split_heldout(teacher_embeddings.rows, config)
    return train, heldout, teacher_embeddings.provenance.to_dict()


def train_student_model(
    train_embeddings: Dataset,
    heldout_embeddings: Dataset,
    sts_benchmark_dev: Dataset | None,
    params: dict[str, Any],
    compute: dict[str, Any],
    hub_credentials: HubCredentials | None = None,
) -> tuple[SentenceTransformer, dict[str, Any]]:
    """Training rows + options (+ held-out rows, STS-B dev pairs) -> (student, metrics).

    The student is evaluated on the held-out rows and STS-B dev pairs while it trains; the Hub
    token and endpoint are for checkpoint pushes.
    """
    hub = hub_credentials or HubCredentials()
    config = EmbeddingTrainerConfig.from_params(params, compute, hub_token=hub.token)
    evaluation = TrainingEvaluation(heldout=heldout_embeddings, sts_dev=sts_benchmark_dev)
    best_metric(config, evaluation)  # a metric without its data fails before the student loads
    target_dim = check_training_data(train_embeddings, config)
    model = prepare_student(config, target_dim, train_embeddings)
    return model, train_student(
        model, train_embeddings, config, evaluation, hub_endpoint=hub.endpoint
    )


def export_student_model(
    student_model: SentenceTransformer,
    heldout_embeddings: Dataset,
    params: dict[str, Any],
    distillation: dict[str, Any],
) -> StudentExport:
    """Trained student -> its exports, each checked against it on the held-out texts.

    The export folder is built in a scratch location; the ``student_exports`` dataset moves it
    into its version folder. A float32 export that disagrees with the student stops the run.
    """
    config = ExportConfig.from_params(params)
    folder = Path(tempfile.mkdtemp(prefix="student-export-"))  # moved whole by the dataset
    if not distributed.is_main():  # transformers saves a model on rank 0 only
        logger.info(
            "Exports are written by rank 0 only: this process%s evaluates without them.",
            distributed.describe(),
        )
        return StudentExport(folder, ())
    texts = list(heldout_embeddings[EmbeddingTrainerConfig.from_params(distillation).text_column])
    export_student(student_model, folder, config.formats, check_texts=texts, torch_weights=False)
    return StudentExport.read(folder)


def evaluate_student(
    student_model: SentenceTransformer,
    student_exports: StudentExport,
    heldout_embeddings: Dataset,
    gold_pairs: Dataset | None,
    sts_benchmark: Dataset | None,
    training_metrics: dict[str, Any],
    params: dict[str, Any],
    provenance: dict[str, Any],
    compute: dict[str, Any],
    evaluation: dict[str, Any],
    retrieval_set: Dataset | None = None,
    sts_benchmark_dev: Dataset | None = None,
) -> tuple[dict[str, Any], MtebResults]:
    """Trained student + held-out rows (+ gold, STS-B, retrieval, dev pairs) -> (metrics, files).

    With the STS-B dev pairs, the untrained and the trained student get their dev score, which
    ``push_student_model``'s regression check compares.
    """
    return evaluate_distillation(
        student_model,
        heldout_embeddings,
        config=EmbeddingTrainerConfig.from_params(params, compute),
        compute=ComputeConfig.from_params(compute),
        evaluation=EvaluationConfig.from_params(evaluation),
        teacher_model=EmbeddingsProvenance.from_dict(provenance).teacher_model,
        training_metrics=training_metrics,
        gold_pairs=gold_pairs,
        sts_pairs=sts_benchmark,
        exports=student_exports,
        retrieval_rows=retrieval_set,
        sts_dev_pairs=sts_benchmark_dev,
    )


def push_student_model(
    student_model: SentenceTransformer,
    student_exports: StudentExport,
    distillation_metrics: dict[str, Any],
    distillation_report: str,
    params: dict[str, Any],
    provenance: dict[str, Any],
    compute: dict[str, Any],
) -> ModelPush:
    """Trained student + metrics + report + options -> a Hub push request (none without push).

    The model card carries the report. A student that fell more than 0.2 STS-B dev points
    below its untrained self is refused unless ``allow_regression`` (the report is written by
    then). The request carries no token: ``student_model_hub`` takes it from the catalog's
    credentials.
    """
    config = EmbeddingTrainerConfig.from_params(params, compute)
    repo_id = config.hub_model_id if config.push_to_hub else None
    if repo_id is not None:
        check_push(
            sts_dev_change(distillation_metrics), repo_id=repo_id, allow=config.allow_regression
        )
    embeddings = EmbeddingsProvenance.from_dict(provenance)
    card = ModelCardInfo(
        teacher_model=embeddings.teacher_model,
        training_data=embeddings.training_data,
        training_config=config.to_dict(),
        metrics=distillation_metrics,
        report=distillation_report,
    )
    return ModelPush(
        model=student_model,
        repo_id=repo_id,
        card=card,
        exports=student_exports.folder,
    )


def plot_report(distillation_metrics: dict[str, Any]) -> tuple[Figure, Figure, Figure]:
    """Metrics -> (training curves, cosine histogram, quality-versus-speed) figures.

    A student's failure record gives three figures that say where and why it failed.
    """
    if is_failure(distillation_metrics):
        description = StudentFailure.from_record(distillation_metrics).describe()
        return (
            plots.failure_figure(description),
            plots.failure_figure(description),
            plots.failure_figure(description),
        )
    return (
        plots.training_curves(distillation_metrics),
        plots.cosine_histogram(distillation_metrics),
        plots.quality_vs_speed(distillation_metrics),
    )


def write_report(distillation_metrics: dict[str, Any]) -> str:
    """Metrics -> the Markdown report (for a failure record: where and why it failed)."""
    if is_failure(distillation_metrics):
        return StudentFailure.from_record(distillation_metrics).report()
    return render_report(distillation_metrics)


def compare_students(**distillation_metrics: dict[str, Any]) -> tuple[dict[str, Any], str, Figure]:
    """Every student's metrics (or failure record), by name -> (comparison, report, figure)."""
    record = compare(distillation_metrics)
    failed = [row["student"] for row in record["failures"]]
    if failed:
        logger.warning(
            "%d of %d students failed (%s): see students_comparison_report; rerun one alone "
            "with `kedro run --namespaces <name>`.",
            len(failed),
            len(distillation_metrics),
            ", ".join(failed),
        )
    return record, render_comparison(record), plots.students_pareto(record)
