"""The ``distillation`` pipeline: teacher embeddings -> trained student(s) -> evaluation report.

One student (``students`` empty or null): split, train, export, evaluate, report, push. Several
(``students: {minilm: {}, static: {...}}``): the split once, then the student's branch once per
name in its own Kedro namespace (``minilm.student_model``, ``kedro run --namespaces minilm``),
each reading its merged options from a ``resolve_student`` node, and ``compare_students`` over
all of them. In a namespaced branch a failing step becomes that student's failure record
(:func:`~embedding_distillation.students.isolated`) so that the other students run on.
"""

import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from kedro.pipeline import Node, Pipeline, pipeline

from embedding_distillation.pipelines.distillation.nodes import (
    compare_students,
    evaluate_student,
    export_student_model,
    plot_report,
    push_student_model,
    resolve_student,
    split_embeddings,
    train_student_model,
    write_report,
)
from embedding_distillation.students import STUDENTS, isolated

# What every student's branch reads unprefixed: the split's outputs and the shared inputs.
SHARED_INPUTS = frozenset(
    {
        "train_embeddings",
        "heldout_embeddings",
        "teacher_embeddings_provenance",
        "sts_benchmark_dev",
        "sts_benchmark",
        "gold_pairs",
        "retrieval_set",
        "hub_credentials",
    }
)
SHARED_PARAMETERS = frozenset({"distillation", "compute", "evaluation", "export"})


def create_pipeline(students: Sequence[str] = (), **kwargs) -> Pipeline:
    """Split, then one student's branch, or one branch per name in ``students`` + the comparison.

    Args:
        students: The names of the ``students`` parameters (checked names, in order); empty:
            the single-student pipeline.
        **kwargs: Unused (Kedro's ``find_pipelines`` signature).
    """
    split = Pipeline(
        [
            Node(
                func=split_embeddings,
                inputs=["teacher_embeddings", "params:evaluation", "params:export"],
                outputs=["train_embeddings", "heldout_embeddings", "teacher_embeddings_provenance"],
                name="split_embeddings",
            )
        ]
    )
    if not students:
        return split + _branch("params:distillation")
    branches = [
        pipeline(
            _resolve(name) + _branch("student_options", student=name),
            namespace=name,
            inputs=set(SHARED_INPUTS),
            parameters=set(SHARED_PARAMETERS) | {f"{STUDENTS}.{name}"},
        )
        for name in students
    ]
    with warnings.catch_warnings():
        # Kedro warns about a node outside a namespace that reads a namespaced dataset; reading
        # every student's metrics is what the comparison is for.
        warnings.filterwarnings("ignore", "One or more dataset names contain '.'", UserWarning)
        comparison = Node(
            func=compare_students,
            inputs={name: f"{name}.distillation_metrics" for name in students},
            outputs=[
                "students_comparison",
                "students_comparison_report",
                "students_comparison_plot",
            ],
            name="compare_students",
        )
    return split + sum(branches, Pipeline([])) + Pipeline([comparison])


def _resolve(name: str) -> Pipeline:
    """The node that merges ``students.<name>`` into ``distillation``: the branch's options."""
    return Pipeline(
        [
            Node(
                func=functools.update_wrapper(
                    functools.partial(resolve_student, name=name), resolve_student
                ),
                inputs=["params:distillation", f"params:{STUDENTS}.{name}"],
                outputs="student_options",
                name="resolve_student",
            )
        ]
    )


def _branch(options: str, student: str | None = None) -> Pipeline:
    """Train, export, evaluate, report, push one student whose options are ``options``.

    With ``student``, the steps that can fail (train, export, evaluate, push) are wrapped by
    :func:`~embedding_distillation.students.isolated`.
    """

    def guard(func: Callable[..., Any], step: str, outputs: int = 1) -> Callable[..., Any]:
        if student is None:
            return func
        return isolated(func, student=student, step=step, outputs=outputs)

    return Pipeline(
        [
            Node(
                func=guard(train_student_model, "train_student_model", outputs=2),
                inputs=[
                    "train_embeddings",
                    "heldout_embeddings",
                    "sts_benchmark_dev",
                    options,
                    "params:compute",
                    "hub_credentials",
                ],
                outputs=["student_model", "training_metrics"],
                name="train_student_model",
            ),
            Node(
                func=guard(export_student_model, "export_student_model"),
                inputs=["student_model", "heldout_embeddings", "params:export", options],
                outputs="student_exports",
                name="export_student_model",
            ),
            Node(
                func=guard(evaluate_student, "evaluate_student", outputs=2),
                inputs=[
                    "student_model",
                    "student_exports",
                    "heldout_embeddings",
                    "gold_pairs",
                    "sts_benchmark",
                    "training_metrics",
                    options,
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
                func=guard(push_student_model, "push_student_model"),
                inputs=[
                    "student_model",
                    "student_exports",
                    "distillation_metrics",
                    "distillation_report",
                    options,
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
