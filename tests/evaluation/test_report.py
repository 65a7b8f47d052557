"""The Markdown report: one table row per evaluated model, 'n/a' where a metric is missing."""

import pytest

from embedding_distillation.evaluation.report import render_report

HEADER = (
    "| model | STS-B Spearman | % of teacher | STS-B Pearson | retrieval nDCG@10 "
    "| retrieval recall@10 | teacher-index nDCG@10 | teacher-index recall@10 | held-out cosine "
    "| held-out MSE | neighbour recall@10 | gold Pearson | gold Spearman | params | size MB "
    "| texts/s |"
)
NO_RETRIEVAL = "n/a | n/a | n/a | n/a"


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
    assert table[1] == "|---|" + "---|" * 15
    assert table[2:5] == [
        f"| Teacher | 83.42 | n/a | 84.04 | {NO_RETRIEVAL} | n/a | n/a | n/a | 0.8123 | 0.7900 "
        "| 1,234,567 | 4.7 | 150.2 |",
        f"| Student (before) | n/a | n/a | n/a | {NO_RETRIEVAL} | 0.5000 | 0.012346 | n/a | n/a "
        "| n/a | 20,000 | 0.1 | 900.0 |",
        f"| Student (after) | 82.10 | 98.4 | 82.90 | {NO_RETRIEVAL} | 0.9500 | 0.001000 | 0.8000 "
        "| 0.7000 | 0.6500 | 20,000 | 0.1 | 910.0 |",
    ]
    assert not any(line.startswith("Retrieval:") for line in report)  # no retrieval rows
    assert report[2] == (  # no STS-B of the untrained student here: no change to give
        "**The student scores 82.10 on STS-B at 6.1x the teacher's speed** (STS-B: cosine "
        "Spearman x100 on the test split; the teacher scores 83.42, the student keeps 98.4 % of it.)"
    )
    assert "Training: mean loss over the run 0.012346, 7 steps, 100.0 samples/s." in report


def test_retrieval_columns_and_their_explanation():
    metrics = _metrics() | {"retrieval_articles": 300}
    metrics["teacher"]["retrieval"] = {"ndcg_at_10": 71.234, "recall_at_10": 88.0}
    metrics["student_before"]["retrieval"] = {"ndcg_at_10": 65.0, "recall_at_10": 81.666}
    metrics["student_after"]["retrieval"] = {"ndcg_at_10": 66.0, "recall_at_10": 83.0}
    metrics["student_after"]["retrieval_teacher_index"] = {"ndcg_at_10": 60.5, "recall_at_10": 77.0}
    report = render_report(metrics).splitlines()
    table = report[report.index(HEADER) :]
    assert "| Teacher | 83.42 | n/a | 84.04 | 71.23 | 88.00 | n/a | n/a | n/a |" in table[2]
    assert "| Student (before) | n/a | n/a | n/a | 65.00 | 81.67 | n/a | n/a | 0.5000 |" in table[3]
    assert "| Student (after) | 82.10 | 98.4 | 82.90 | 66.00 | 83.00 | 60.50 | 77.00 |" in table[4]
    paragraph = next(line for line in report if line.startswith("Retrieval: 300 Wikipedia"))
    assert "among the 300 (mteb's retrieval evaluator, x100)" in paragraph
    assert "Teacher-index: the model encodes the queries and the teacher the extracts" in paragraph


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
        "Its fastest recommended export, ONNX, keeps 98.4 % of the teacher's STS-B at 12.0x the "
        "teacher's speed, without torch." in render_report(metrics)
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


def _change(before: float, after: float, *, kept_step: int = 7, retrieval=None) -> str:
    metrics = _metrics()
    metrics["student_before"]["sts_benchmark"] = {"spearman": before}
    metrics["student_after"]["sts_benchmark"] |= {
        "spearman": after,
        "percent_of_teacher": 100 * after / metrics["teacher"]["sts_benchmark"]["spearman"],
    }
    if retrieval is not None:
        metrics["student_before"]["retrieval"] = {"ndcg_at_10": retrieval[0]}
        metrics["student_after"]["retrieval"] = {"ndcg_at_10": retrieval[1]}
    metrics["training"]["kept_step"] = kept_step
    return render_report(metrics).splitlines()[2]


def test_the_headline_gives_the_change_from_the_untrained_student():
    assert _change(82.03, 82.41) == (
        "**Distillation improved the student: STS-B 82.03 -> 82.41 (+0.38) at 6.1x the teacher's "
        "speed.** (STS-B: cosine Spearman x100 on the test split; the teacher scores 83.42, the "
        "student keeps 98.8 % of it.)"
    )


@pytest.mark.parametrize(
    ("retrieval", "named"),
    [(None, "STS-B"), ((96.9, 97.0), "STS-B"), ((96.9, 95.0), "STS-B and retrieval nDCG@10")],
)
def test_a_student_below_its_untrained_self_says_so_first(retrieval, named):
    line = _change(82.03, 80.14, retrieval=retrieval)
    assert line.startswith(
        f"**Distillation made the student worse than it started on {named}**: "
        "STS-B 82.03 -> 80.14 (-1.89)"
    )


def test_retrieval_alone_getting_worse_is_named_too():
    line = _change(82.03, 82.41, retrieval=(96.94, 95.12))
    assert line.startswith(
        "**Distillation made the student worse than it started on retrieval nDCG@10**: STS-B "
        "82.03 -> 82.41 (+0.38), retrieval nDCG@10 96.94 -> 95.12 (-1.82) at 6.1x"
    )


def test_a_run_that_kept_step_zero_says_it_kept_the_untrained_student():
    assert _change(82.03, 82.03, kept_step=0).startswith(
        "**No training step beat the untrained student, so the run kept it (step 0)**: STS-B "
        "82.03 -> 82.03 (+0.00) at 6.1x the teacher's speed."
    )


def test_a_kept_step_zero_below_the_untrained_student_blames_its_projection():
    assert _change(82.03, 80.67, kept_step=0).startswith(
        "**No training step beat step 0, so the run kept it, but its starting projection left "
        "the student worse than it started on STS-B**: STS-B 82.03 -> 80.67 (-1.36)"
    )


def test_the_training_line_says_which_step_was_kept_and_the_dev_change():
    metrics = _metrics()
    metrics["training"] |= {
        "train_runtime": 80.0,
        "evaluations": [{"step": 0}, {"step": 4}, {"step": 7}],
        "best_metric": "sts_dev",
        "kept_step": 4,
        "evaluation_seconds": 12.0,
    }
    metrics["student_before"]["sts_dev"] = {"spearman": 86.72}
    metrics["student_after"]["sts_dev"] = {"spearman": 86.9}
    report = render_report(metrics).splitlines()
    assert (
        "Evaluated 3 times while training (best by sts_dev; 12 s, 15 % of the run's 80 s); the "
        "saved weights are step 4 of 7." in report
    )
    assert (
        "STS-B dev (the split steps are chosen on; push_to_hub refuses a student below 86.52): 86.72 -> "
        "86.90 (+0.18)." in report
    )
    metrics["training"]["kept_step"] = 0
    assert "the saved weights are step 0's (the untrained student with its starting " in (
        render_report(metrics)
    )


def test_a_student_equal_to_its_untrained_self_is_said_to_be_where_it_started():
    assert _change(82.03, 82.03, kept_step=5).startswith(
        "**Distillation left the student where it started: STS-B 82.03 -> 82.03 (+0.00)"
    )
