"""The shape of the distillation pipeline: one student, or one namespace per student."""

import pytest

from embedding_distillation.pipelines.distillation import create_pipeline

SINGLE = {
    "split_embeddings": (
        {"teacher_embeddings", "params:evaluation", "params:export"},
        {"train_embeddings", "heldout_embeddings", "teacher_embeddings_provenance"},
    ),
    "train_student_model": (
        {
            "train_embeddings",
            "heldout_embeddings",
            "sts_benchmark_dev",
            "params:distillation",
            "params:compute",
            "hub_credentials",
        },
        {"student_model", "training_metrics"},
    ),
    "export_student_model": (
        {"student_model", "heldout_embeddings", "params:export", "params:distillation"},
        {"student_exports"},
    ),
    "evaluate_student": (
        {
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
        },
        {"distillation_metrics", "mteb_results"},
    ),
    "push_student_model": (
        {
            "student_model",
            "student_exports",
            "distillation_metrics",
            "distillation_report",
            "params:distillation",
            "teacher_embeddings_provenance",
            "params:compute",
        },
        {"student_model_hub"},
    ),
    "plot_report": (
        {"distillation_metrics"},
        {"training_curves_plot", "cosine_histogram_plot", "quality_speed_plot"},
    ),
    "write_report": ({"distillation_metrics"}, {"distillation_report"}),
}
BRANCH = [
    "resolve_student",
    "train_student_model",
    "export_student_model",
    "evaluate_student",
    "push_student_model",
    "plot_report",
    "write_report",
]


def _shape(pipeline):
    return {node.name: (set(node.inputs), set(node.outputs)) for node in pipeline.nodes}


def test_without_students_it_is_the_single_student_pipeline():
    assert _shape(create_pipeline()) == SINGLE
    assert _shape(create_pipeline(students=())) == SINGLE


def test_each_student_gets_a_namespace_reading_the_shared_inputs():
    pipeline = create_pipeline(students=("a", "b"))
    names = {node.name for node in pipeline.nodes}
    assert names == {"split_embeddings", "compare_students"} | {
        f"{student}.{step}" for student in ("a", "b") for step in BRANCH
    }
    # kedro-viz draws one collapsible modular pipeline per node namespace
    assert {node.name: node.namespace for node in pipeline.nodes if "." in node.name} == {
        f"{student}.{step}": student for student in ("a", "b") for step in BRANCH
    }
    assert {node.namespace for node in pipeline.nodes if "." not in node.name} == {None}
    train = next(node for node in pipeline.nodes if node.name == "b.train_student_model")
    assert train.inputs == [
        "train_embeddings",
        "heldout_embeddings",
        "sts_benchmark_dev",
        "b.student_options",
        "params:compute",
        "hub_credentials",
    ]
    assert train.outputs == ["b.student_model", "b.training_metrics"]
    resolve = next(node for node in pipeline.nodes if node.name == "a.resolve_student")
    assert resolve.inputs == ["params:distillation", "params:students.a"]
    compare = next(node for node in pipeline.nodes if node.name == "compare_students")
    assert set(compare.inputs) == {"a.distillation_metrics", "b.distillation_metrics"}
    assert set(pipeline.inputs()) == {
        "teacher_embeddings",
        "sts_benchmark_dev",
        "sts_benchmark",
        "gold_pairs",
        "retrieval_set",
        "hub_credentials",
        "params:distillation",
        "params:compute",
        "params:evaluation",
        "params:export",
        "params:students.a",
        "params:students.b",
    }


def test_one_student_runs_alone_and_a_later_node_reaches_the_comparison():
    pipeline = create_pipeline(students=("a", "b"))
    alone = pipeline.only_nodes_with_namespaces(["a"])
    assert {node.name for node in alone.nodes} == {f"a.{step}" for step in BRANCH}
    tail = pipeline.from_nodes("b.evaluate_student")
    assert "compare_students" in {node.name for node in tail.nodes}
    assert not any(node.name.startswith("a.") for node in tail.nodes)
    with pytest.raises(ValueError, match=r"b\.evaluate_student"):
        pipeline.from_nodes("evaluate_student")  # Kedro suggests the namespaced names
