"""The Markdown report: one table row per evaluated model, 'n/a' where a metric is missing."""

import pytest

from embedding_distillation.evaluation.report import render_report

HEADER = (
    "| model | held-out cosine | held-out MSE | neighbour recall@10 | gold Pearson "
    "| gold Spearman | params | texts/s |"
)


def _metrics() -> dict:
    return {
        "teacher_model": "org/teacher",
        "student_model": "org/student",
        "target_column": "teacher_embedding_final",
        "heldout_rows": 1234,
        "teacher": {
            "gold": {"pearson": 0.81234, "spearman": 0.79},
            "cost": {"parameters": 1234567, "weights_mb": 4.71, "texts_per_second": 150.25},
        },
        "student_before": {
            "heldout": {"mse": 0.0123456789, "mean_cosine": 0.5},
            "cost": {"parameters": 20000, "weights_mb": 0.08, "texts_per_second": 900.0},
        },
        "student_after": {
            "heldout": {"mse": 0.001, "mean_cosine": 0.95},
            "neighbours": {"recall_at_10": 0.8},
            "gold": {"pearson": 0.7, "spearman": 0.65},
            "cost": {"parameters": 20000, "weights_mb": 0.08, "texts_per_second": 910.04},
        },
        "training": {"train_loss": 0.0123456, "global_step": 7, "train_samples_per_second": 99.96},
    }


def test_report_has_one_row_per_model_with_formatted_values():
    report = render_report(_metrics()).splitlines()
    assert report[0] == "# Distillation report"
    assert (
        "Teacher: `org/teacher`; student: `org/student`; target: `teacher_embedding_final`; "
        "held-out rows: 1,234." in report
    )
    table = report[report.index(HEADER) :]
    assert table[1] == "|---|---|---|---|---|---|---|---|"
    assert table[2:5] == [
        "| Teacher | n/a | n/a | n/a | 0.8123 | 0.7900 | 1,234,567 | 150.2 |",
        "| Student (before) | 0.5000 | 0.012346 | n/a | n/a | n/a | 20,000 | 900.0 |",
        "| Student (after) | 0.9500 | 0.001000 | 0.8000 | 0.7000 | 0.6500 | 20,000 | 910.0 |",
    ]
    assert "Training: mean loss over the run 0.012346, 7 steps, 100.0 samples/s." in report


def test_report_names_the_kept_layers_and_the_last_logged_loss():
    metrics = {
        **_metrics(),
        "student_layers": [0, 2, 4],
        "loss_curve": [{"step": 10, "loss": 0.5}, {"step": 1210, "loss": 0.0975512}],
        "training": {**_metrics()["training"], "global_step": 1210},
    }
    report = render_report(metrics)
    assert "student: `org/student` cut to its layers [0, 2, 4]; target:" in report
    assert (
        "Training: mean loss over the run 0.012346, last logged loss 0.097551 (step 1,210), "
        "1,210 steps, 100.0 samples/s." in report
    )


@pytest.mark.parametrize("missing", ["teacher", "student_before", "student_after"])
def test_a_model_that_was_not_evaluated_has_no_row(missing):
    metrics = _metrics()
    del metrics[missing]
    report = render_report(metrics)
    names = {"teacher": "| Teacher |", "student_before": "| Student (before) |"}
    names["student_after"] = "| Student (after) |"
    assert names.pop(missing) not in report
    assert all(name in report for name in names.values())


def test_empty_entries_show_n_a_everywhere():
    metrics = {"target_column": "t", "heldout_rows": 3, "student_after": {}}
    report = render_report(metrics)
    assert "| Student (after) | n/a | n/a | n/a | n/a | n/a | n/a |" in report
    assert "Teacher: `?`; student: `?`" in report
    assert "Training:" not in report
