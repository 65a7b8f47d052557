"""The Markdown report: one table row per evaluated model, 'n/a' where a metric is missing."""

import pytest

from embedding_distillation.evaluation.report import render_report

HEADER = (
    "| model | STS-B Spearman | % of teacher | STS-B Pearson | held-out cosine | held-out MSE "
    "| neighbour recall@10 | gold Pearson | gold Spearman | params | size MB | texts/s |"
)


def _metrics() -> dict:
    return {
        "teacher_model": "org/teacher",
        "student_model": "org/student",
        "target_column": "teacher_embedding_final",
        "heldout_rows": 1234,
        "teacher": {
            "sts_benchmark": {"spearman": 83.4249, "pearson": 84.04},
            "gold": {"pearson": 0.81234, "spearman": 0.79},
            "cost": {"parameters": 1234567, "size_mb": 4.71, "texts_per_second": 150.25},
        },
        "student_before": {
            "heldout": {"mse": 0.0123456789, "mean_cosine": 0.5},
            "cost": {"parameters": 20000, "size_mb": 0.08, "texts_per_second": 900.0},
        },
        "student_after": {
            "sts_benchmark": {"spearman": 82.1, "pearson": 82.9, "percent_of_teacher": 98.4117},
            "heldout": {"mse": 0.001, "mean_cosine": 0.95},
            "neighbours": {"recall_at_10": 0.8},
            "gold": {"pearson": 0.7, "spearman": 0.65},
            "cost": {"parameters": 20000, "size_mb": 0.08, "texts_per_second": 910.04},
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
    assert table[1] == "|---|" + "---|" * 11
    assert table[2:5] == [
        "| Teacher | 83.42 | n/a | 84.04 | n/a | n/a | n/a | 0.8123 | 0.7900 | 1,234,567 | 4.7 "
        "| 150.2 |",
        "| Student (before) | n/a | n/a | n/a | 0.5000 | 0.012346 | n/a | n/a | n/a | 20,000 | 0.1 "
        "| 900.0 |",
        "| Student (after) | 82.10 | 98.4 | 82.90 | 0.9500 | 0.001000 | 0.8000 | 0.7000 | 0.6500 "
        "| 20,000 | 0.1 | 910.0 |",
    ]
    assert report[2] == (
        "**The student keeps 98.4 % of the teacher's STS Benchmark score at 6.1x its speed** "
        "(cosine Spearman x100 on the test split: 82.10 vs 83.42)."
    )
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
    assert "| Student (after) |" + " n/a |" * 11 in report
    assert "keeps" not in report  # no STS-B: no headline
    assert "Teacher: `?`; student: `?`" in report
    assert "Training:" not in report


def test_rows_follow_the_evaluation_order_and_unknown_keys_show_as_they_are():
    metrics = {**_metrics(), "other": {"cost": {"texts_per_second": 2000.0}}}
    metrics["models"] = ["teacher", "student_after", "other"]
    lines = render_report(metrics).splitlines()
    table = lines[lines.index(HEADER) + 2 :]
    rows = [line.split(" | ")[0] for line in table[: table.index("")]]
    assert rows == ["| Teacher", "| Student (after)", "| other"]


def test_mteb_main_scores_get_a_table_of_their_own():
    metrics = _metrics()
    for key, score in (("teacher", 0.8), ("student_after", 0.7512)):
        metrics[key]["mteb"] = {
            "STSBenchmark": {"main_score": score, "metric": "cosine_spearman"},
            "SICK-R": {"main_score": score - 0.1, "metric": "cosine_spearman"},
        }
    report = render_report(metrics).splitlines()
    start = report.index("| model | STSBenchmark | SICK-R |")
    assert report[start - 2] == (
        "MTEB main scores (x100): STSBenchmark (cosine_spearman), SICK-R (cosine_spearman)."
    )
    assert report[start + 2 : start + 5] == [
        "| Teacher | 80.00 | 70.00 |",
        "| Student (before) | n/a | n/a |",
        "| Student (after) | 75.12 | 65.12 |",
    ]


def _with_exports() -> dict:
    metrics = _metrics()
    metrics["models"] = ["teacher", "student_before", "student_after", "onnx", "onnx_int8"]
    metrics["onnx"] = {
        "sts_benchmark": {
            "spearman": 82.1,
            "percent_of_teacher": 98.41,
            "percent_of_student": 100.0,
        },
        "agreement": {"min_cosine": 0.9999987, "mean_cosine": 1.0, "worst_text": "x"},
        "cost": {"size_mb": 87.95, "texts_per_second": 1800.0},
        "recommended": True,
        "verdict": "matches the torch student (agreement gate passed)",
    }
    metrics["onnx_int8"] = {
        "sts_benchmark": {
            "spearman": 80.0,
            "percent_of_teacher": 95.9,
            "percent_of_student": 97.44,
        },
        "agreement": {"min_cosine": 0.981234, "mean_cosine": 0.99, "worst_text": "y"},
        "cost": {"size_mb": 32.8, "texts_per_second": 3000.0},
        "recommended": False,
        "verdict": "not recommended: keeps 97.4 % of the student's STS-B (below 99 %)",
    }
    return metrics


def test_exports_get_their_own_table_with_verdicts():
    report = render_report(_with_exports()).splitlines()
    start = report.index(
        "| export | size MB | texts/s | STS-B Spearman | % of the student | min cosine to the "
        "student | verdict |"
    )
    assert report[start + 2 : start + 4] == [
        "| ONNX | 88.0 | 1,800.0 | 82.10 | 100.0 | 0.999999 | matches the torch student "
        "(agreement gate passed) |",
        "| ONNX int8 | 32.8 | 3,000.0 | 80.00 | 97.4 | 0.981234 | not recommended: keeps 97.4 % "
        "of the student's STS-B (below 99 %) |",
    ]
    assert "| ONNX int8 | 80.00 | 95.9 |" in "\n".join(report)  # and a row of the main table


def test_the_headline_names_the_fastest_recommended_export():
    metrics = _with_exports()
    assert (
        "Its fastest recommended export, ONNX, keeps 98.4 % of it at 12.0x the teacher's speed, "
        "without torch." in render_report(metrics)
    )
    metrics["onnx"]["recommended"] = False
    assert "fastest recommended export" not in render_report(metrics)


def test_report_says_a_static_student_and_whose_vocabulary_it_comes_from():
    report = render_report({**_metrics(), "student_type": "static"})
    assert (
        "student: a static-embedding student (model2vec) from the vocabulary of `org/student`; "
        "target:" in report
    )
    assert "student: `org/student`; target:" in render_report(_metrics())
