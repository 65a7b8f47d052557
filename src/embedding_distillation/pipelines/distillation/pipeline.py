"""The ``distillation`` pipeline: teacher embeddings -> trained student -> evaluation report."""

from kedro.pipeline import Node, Pipeline

from embedding_distillation.pipelines.distillation.nodes import (
    evaluate_student,
    export_student_model,
    plot_report,
    push_student_model,
    split_embeddings,
    train_student_model,
    write_report,
)


def create_pipeline(**kwargs) -> Pipeline:
    """Split, train, export, evaluate, report, push."""
    return Pipeline(
        [
            Node(
                func=split_embeddings,
                inputs=["teacher_embeddings", "params:evaluation", "params:export"],
                outputs=["train_embeddings", "heldout_embeddings", "teacher_embeddings_provenance"],
                name="split_embeddings",
            ),
            Node(
                func=train_student_model,
                inputs=[
                    "train_embeddings",
                    "heldout_embeddings",
                    "sts_benchmark_dev",
                    "params:distillation",
                    "params:compute",
                    "hub_credentials",
                ],
                outputs=["student_model", "training_metrics"],
                name="train_student_model",
            ),
            Node(
                func=export_student_model,
                inputs=[
                    "student_model",
                    "heldout_embeddings",
                    "params:export",
                    "params:distillation",
                ],
                outputs="student_exports",
                name="export_student_model",
            ),
            Node(
                func=evaluate_student,
                inputs=[
                    "student_model",
                    "student_exports",
                    "heldout_embeddings",
                    "gold_pairs",
                    "sts_benchmark",
                    "training_metrics",
                    "params:distillation",
                    "teacher_embeddings_provenance",
                    "params:compute",
                    "params:evaluation",
                    "retrieval_set",
                    "sts_benchmark_dev",
                ],
                outputs=["distillation_metrics", "mteb_results"],
                name="evaluate_student",
            ),
            Node(
                func=push_student_model,
                inputs=[
                    "student_model",
                    "student_exports",
                    "distillation_metrics",
                    "distillation_report",
                    "params:distillation",
                    "teacher_embeddings_provenance",
                    "params:compute",
                ],
                outputs="student_model_hub",
                name="push_student_model",
            ),
            Node(
                func=plot_report,
                inputs="distillation_metrics",
                outputs=["training_curves_plot", "cosine_histogram_plot", "quality_speed_plot"],
                name="plot_report",
            ),
            Node(
                func=write_report,
                inputs="distillation_metrics",
                outputs="distillation_report",
                name="write_report",
            ),
        ]
    )
