"""The students' comparison: rows, Pareto flags, recommendations, failures, notes, and its plot."""

import itertools
import json

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from embedding_distillation.evaluation import plots
from embedding_distillation.evaluation.comparison import (
    MIN_SHARE,
    MIN_SPEEDUP,
    StudentComparison,
    compare,
    render_comparison,
)

FORMS = ("onnx", "onnx_int8", "openvino", "openvino_int8")
TEACHER_STS = 83.5


def _scores(sts: float | None, teacher_sts: float | None) -> dict:
    if sts is None:
        return {}
    entry = {"spearman": sts, "pearson": sts + 0.8}
    if teacher_sts:
        entry["percent_of_teacher"] = 100 * sts / teacher_sts
    return {
        "sts_benchmark": entry,
        "mteb": {"STSBenchmark": {"main_score": sts / 100, "metric": "cosine_spearman"}},
    }


def _model(sts: float | None, speed: float, size: float, teacher_sts: float | None) -> dict:
    """One model's entry, shaped as evaluate_models writes it for a trained student."""
    return {
        **_scores(sts, teacher_sts),
        "neighbours": {"recall_at_10": 0.52},
        "heldout": {"mse": 0.001, "mean_cosine": 0.61, "cosine_histogram": [0] * 39 + [300]},
        "retrieval": {"ndcg_at_10": 97.3, "recall_at_10": 99.5, "seconds": 1.0},
        "retrieval_teacher_index": {"ndcg_at_10": 94.77, "recall_at_10": 99.0, "seconds": 0.5},
        "gold": {"pearson": 0.66, "spearman": 0.52},
        "cost": {"parameters": 23008128, "size_mb": size, "texts_per_second": speed},
    }


def _metrics(
    *,
    sts: float | None = 82.0,
    speed: float = 30.0,
    size: float = 87.8,
    before: float = 81.5,
    exports: dict[str, tuple[float, float, float, bool | None]] | None = None,
    teacher_speed: float = 10.0,
    teacher_sts: float | None = TEACHER_STS,
    heldout_rows: int = 300,
    retrieval_articles: int = 200,
) -> dict:
    """A distillation_metrics record (the evaluate node's), as the real one on disk is shaped.

    ``exports``: ``{form: (STS-B, texts/s, size MB, recommended)}``.
    """
    exports = exports or {}
    record = {
        "heldout_rows": heldout_rows,
        "target_column": "teacher_embedding_final",
        "models": ["teacher", "student_before", "student_after", *exports],
        "teacher": {
            **_scores(teacher_sts, None),
            "retrieval": {"ndcg_at_10": 98.1, "recall_at_10": 100.0, "seconds": 0.6},
            "gold": {"pearson": 0.69, "spearman": 0.54},
            "cost": {"parameters": 109486464, "size_mb": 417.66, "texts_per_second": teacher_speed},
        },
        "student_before": {
            **_scores(before if sts is not None else None, teacher_sts),
            "cost": {"parameters": 22713216, "size_mb": 86.64, "texts_per_second": speed},
        },
        "student_after": _model(sts, speed, size, teacher_sts) | {"sts_dev": {"spearman": 87.0}},
        "retrieval_articles": retrieval_articles,
        "teacher_model": "data/01_raw/models/all-mpnet-base-v2",
        "student_model": "data/01_raw/models/all-MiniLM-L6-v2",
        "student_type": "transformer",
        "student_layers": None,
        "target_type": "final",
        "loss_type": "similarity",
        "training": {"train_loss": 0.087, "global_step": 85, "kept_step": 85},
        "loss_curve": [{"step": 10, "loss": 0.09}],
    }
    for form, (export_sts, export_speed, export_size, recommended) in exports.items():
        record[form] = _model(export_sts, export_speed, export_size, teacher_sts) | {
            "agreement": {"min_cosine": 0.99, "mean_cosine": 0.995, "worst_text": "a text"},
            "recommended": recommended,
            "verdict": "keeps 99.8 % of the student's STS-B"
            if recommended
            else "not recommended: keeps 98.0 % of the student's STS-B (below 99 %)",
        }
    return record


def _failure(
    student: str = "static", message: str = "text_column 'missing' is not a column"
) -> dict:
    return {
        "failed": {
            "student": student,
            "step": "train_student_model",
            "error": "ValueError",
            "message": message,
            "traceback_tail": 'File "trainer.py", line 12\nValueError: ' + message,
        }
    }


def _two_students() -> dict:
    """`a`: a MiniLM-like student with exports; `b`: a static-like one, 300x the teacher."""
    return {
        "a": _metrics(
            sts=82.5,
            speed=30.0,
            exports={
                "onnx": (82.5, 40.0, 88.0, True),  # dominates the torch student
                "onnx_int8": (82.0, 60.0, 32.8, True),
                "openvino_int8": (82.3, 80.0, 22.4, False),  # best at >= 5x, not recommended
            },
        ),
        # Its teacher timed at 20 texts/s: x teacher divides by the same evaluation's figure.
        "b": _metrics(sts=79.5, speed=6000.0, size=30.0, before=82.0, teacher_speed=20.0),
    }


def _drawn(figure: Figure) -> FigureCanvasAgg:
    """The figure drawn on an Agg canvas (a bare Figure's canvas draws nothing)."""
    canvas = FigureCanvasAgg(figure)
    figure.canvas.draw()
    return canvas


def _rows(record: dict) -> dict[str, dict]:
    return {row["name"]: row for row in record["rows"]}


def test_rows_are_the_teacher_then_each_student_and_its_exports():
    record = compare(_two_students())
    assert [row["name"] for row in record["rows"]] == [
        "teacher",
        "a",
        "a · ONNX",
        "a · ONNX int8",
        "a · OpenVINO int8",
        "b",
    ]
    rows = _rows(record)
    assert rows["teacher"]["speedup"] == 1.0
    assert rows["a · ONNX int8"]["speedup"] == pytest.approx(6.0)  # 60 / a's teacher's 10
    assert rows["b"]["speedup"] == pytest.approx(300.0)  # 6000 / b's teacher's 20
    assert rows["b"]["percent_of_teacher"] == pytest.approx(100 * 79.5 / TEACHER_STS)
    assert rows["a"]["sts_vs_untrained"] == pytest.approx(1.0)  # 82.5 - 81.5
    assert rows["b"]["sts_vs_untrained"] == pytest.approx(-2.5)
    assert rows["a · ONNX"]["sts_vs_untrained"] is None  # per student, on its trained row
    assert rows["a"]["teacher_index_ndcg_at_10"] == 94.77
    assert record["quality"]["path"] == ["sts_benchmark", "spearman"]
    assert json.loads(json.dumps(record)) == record  # plain JSON


def test_pareto_flags_rows_that_nothing_beats_in_quality_and_speed():
    rows = _rows(compare(_two_students()))
    flags = {name: row["pareto"] for name, row in rows.items()}
    assert flags == {
        "teacher": True,  # the best quality
        "a": False,  # the ONNX export is as good and faster
        "a · ONNX": True,
        "a · ONNX int8": False,  # the OpenVINO int8 export is better and faster
        "a · OpenVINO int8": True,  # on the front even though not recommended
        "b": True,  # the fastest
    }


def test_recommendations_name_the_row_with_its_figures():
    record = compare(_two_students())
    at_speed, at_quality = record["recommendations"].values()
    # OpenVINO int8 is more accurate at 8x, but its evaluation does not recommend it.
    assert at_speed["row"] == "a · ONNX int8"
    assert at_speed["sentence"] == (
        "**Most accurate at 5x the teacher's speed or more: `a` as ONNX int8**: STS-B 82.00 "
        "(98.2 % of the teacher's 83.50) at 6.0x the teacher's texts/s (60.0 against 10.0), "
        "32.8 MB."
    )
    assert at_quality["row"] == "b"
    assert at_quality["sentence"] == (
        "**Fastest keeping 95 % of the teacher's STS-B: `b`**: STS-B 79.50 (95.2 % of the "
        "teacher's 83.50) at 300.0x the teacher's texts/s (6,000.0 against 20.0), 30.0 MB."
    )
    assert (record["min_speedup"], record["min_share"]) == (MIN_SPEEDUP, MIN_SHARE)
    assert (
        "`a` as OpenVINO int8 is not a candidate for the recommendations: not recommended: "
        "keeps 98.0 % of the student's STS-B (below 99 %)." in record["notes"]
    )


def test_recommendations_say_so_when_no_student_qualifies():
    record = compare(
        {
            "a": _metrics(sts=77.7, speed=20.0, exports={"onnx": (77.7, 31.0, 88.0, True)}),
            "b": _metrics(sts=70.0, speed=45.0, exports={"onnx_int8": (69.0, 49.0, 30.0, False)}),
        }
    )
    at_speed, at_quality = record["recommendations"].values()
    assert at_speed["row"] is None
    assert at_speed["nearest"] == "b"  # b's int8 export is faster (4.9x), but not a candidate
    assert at_speed["sentence"] == (
        "No student runs at 5x the teacher's speed or more; the fastest, `b`, runs at 4.5x."
    )
    assert at_quality["row"] is None
    assert at_quality["sentence"] == (
        "No student keeps 95 % of the teacher's STS-B; the closest, `a`, keeps 93.1 %."
    )


def test_a_failed_student_is_a_row_a_failure_and_a_rerun_hint():
    record = compare({"a": _two_students()["a"], "static": _failure()})
    failed = _rows(record)["static"]
    assert failed["form"] == "failed"
    assert failed["failed"] == (
        "failed at train_student_model: ValueError: text_column 'missing' is not a column"
    )
    assert (failed["pareto"], failed["recommended"], failed["speedup"]) == (False, False, None)
    assert record["failures"] == [_failure()["failed"]]
    assert record["recommendations"]["at_speed"]["row"] == "a · ONNX int8"  # a still counts
    report = render_comparison(record).splitlines()
    row = next(line for line in report if line.startswith("| `static` |"))
    assert "failed at train_student_model: ValueError: text_column 'missing'" in row
    assert row.count("|") == report[report.index("|---|" + "---|" * 10) - 1].count("|")
    assert (
        "- `static` at `train_student_model`: ValueError: text_column 'missing' is not a column "
        "Rerun it alone: `kedro run --namespaces static`." in report
    )
    assert "  ValueError: text_column 'missing' is not a column" in report  # traceback tail


def test_every_student_failed():
    record = compare({"a": _failure("a"), "b": _failure("b")})
    assert [row["form"] for row in record["rows"]] == ["failed", "failed"]
    assert record["recommendations"]["at_speed"]["sentence"] == (
        "No student runs at 5x the teacher's speed or more; no student was evaluated."
    )
    assert [f["student"] for f in record["failures"]] == ["a", "b"]
    figure = plots.students_pareto(record)
    _drawn(figure)
    assert [text.get_text().split(":")[0] for text in figure.axes[0].texts] == [
        "Most accurate at 5x or more",
        "Fastest keeping 95 %",
        "Failed, not plotted",
    ]


def test_comparability_notes_name_what_differs():
    students = _two_students()
    students["b"] = _metrics(sts=79.5, speed=6000.0, heldout_rows=250, retrieval_articles=100)
    notes = compare(students)["notes"]
    assert "Not comparable: the held-out rows differ (`a`: 300, `b`: 250)." in notes
    assert "Not comparable: the retrieval articles differ (`a`: 200, `b`: 100)." in notes
    assert not [note for note in notes if "teacher models" in note]  # the same teacher
    assert notes[0].startswith("The teacher ran at 10.00 texts/s over 2 evaluations;")
    assert not [note for note in compare(_two_students())["notes"] if "Not comparable" in note]


def test_without_sts_b_everywhere_quality_falls_back_to_gold_pearson_with_a_note():
    students = {
        "a": _metrics(sts=82.0, speed=60.0),
        "b": _metrics(sts=None, speed=600.0, teacher_sts=None),  # evaluated without STS-B pairs
    }
    record = compare(students)
    assert record["quality"] | {"path": None} == {
        "path": None,
        "name": "gold Pearson",
        "label": "gold Pearson",
        "digits": 4,
    }
    assert _rows(record)["b"]["percent_of_teacher"] == pytest.approx(100 * 0.66 / 0.69)
    assert (
        "Not comparable: STS-B scores only in some records (`a`: yes, `b`: no)."
        in (record["notes"])
    )
    report = render_comparison(record)
    assert "| model | STS-B Spearman | % of teacher's gold Pearson | gold Pearson |" in report
    assert (
        "**Fastest keeping 95 % of the teacher's gold Pearson: `b`**: gold Pearson 0.6600 (95.7 % "
        "of the teacher's 0.6900) at 60.0x the teacher's texts/s (600.0 against 10.0), 87.8 MB."
    ) in report


def test_report_puts_the_recommendations_first_then_table_failures_and_notes():
    students = _two_students() | {"static": _failure()}
    record = compare(students)
    report = render_comparison(record).splitlines()
    at_speed, at_quality = (r["sentence"] for r in record["recommendations"].values())
    assert report[:5] == ["# Students compared", "", at_speed, "", at_quality]
    header = next(index for index, line in enumerate(report) if line.startswith("| model |"))
    assert report[header + 2 : header + 4] == [
        "| Teacher | 83.50 | 100.0 | 98.10 | n/a | n/a | 10.0 | 1.0 | 417.7 | yes |  |",
        "| `a` | 82.50 | 98.8 | 97.30 | 94.77 | 0.6100 | 30.0 | 3.0 | 87.8 |  | +1.00 |",
    ]
    assert header < report.index("Failed students (the others ran on):") < report.index("Notes:")


@pytest.mark.parametrize(
    ("by_student", "match"),
    [
        ({}, "No students to compare"),
        ({"a": {"heldout_rows": 3}}, r"Student 'a': expected its distillation_metrics record"),
        ({"a": [1]}, r"Student 'a'.*got list"),
    ],
)
def test_compare_refuses_what_it_cannot_read(by_student, match):
    with pytest.raises(ValueError, match=match):
        compare(by_student)


def test_student_comparison_draws_its_figure_and_raises_its_failures():
    record = compare({"a": _two_students()["a"], "static": _failure()})
    comparison = StudentComparison(
        record=record,
        models={},
        failures={"static": _failure()["failed"]},
        report=render_comparison(record),
    )
    assert isinstance(comparison.figure(), Figure)
    with pytest.raises(ExceptionGroup, match="1 of 2 students failed") as raised:
        comparison.raise_failures()
    (error,) = raised.value.exceptions
    assert str(error) == (
        "static failed at train_student_model: ValueError: text_column 'missing' is not a column"
    )
    StudentComparison(record=record, models={}, failures={}, report="").raise_failures()


def test_students_pareto_plots_x_teacher_on_a_log_axis_with_the_front():
    record = compare(_two_students())
    axes = plots.students_pareto(record).axes[0]
    assert axes.get_xscale() == "log"
    offsets = [tuple(c.get_offsets()[0]) for c in axes.collections]
    assert offsets[0] == (1.0, TEACHER_STS)  # the teacher, a black star
    assert axes.collections[0].get_facecolor()[0].tolist() == [0.0, 0.0, 0.0, 1.0]
    assert offsets[1:] == [
        pytest.approx((row["speedup"], row["quality"])) for row in record["rows"][1:]
    ]
    front = axes.lines[0]  # the step line, through the Pareto rows by speed
    assert front.get_drawstyle() == "steps-pre"
    assert list(front.get_xdata()) == pytest.approx([1.0, 4.0, 8.0, 300.0])
    labels = [text.get_text() for text in axes.get_legend().get_texts()]
    assert labels[:3] == ["teacher", "a", "b"]
    assert "ONNX int8" in labels
    callouts = [text.get_text() for text in axes.texts]
    assert callouts[0].startswith("Most accurate at 5x or more:\na · ONNX int8\n")
    assert callouts[1].startswith("Fastest keeping 95 %:\nb\n")


def test_students_pareto_labels_never_overlap_and_stay_inside_the_figure():
    """6 students x 5 forms plus a failed one: legend, callouts and footnote are disjoint."""
    students = {
        f"student_{index}": _metrics(
            sts=70.0 + 2 * index,
            speed=12.0 * 3**index,
            exports={
                form: (69.5 + 2 * index, 15.0 * 3**index * (1 + k), 30.0, k != 2)
                for k, form in enumerate(FORMS)
            },
        )
        for index in range(6)
    }
    long_message = "a very long message that explains everything that went wrong " * 6
    students["broken_student_with_a_long_name"] = _failure("broken_student", long_message)
    record = compare(students)
    figure = plots.students_pareto(record)
    renderer = _drawn(figure).get_renderer()
    axes = figure.axes[0]
    legend = axes.get_legend().get_texts()
    assert len(legend) == 1 + 6 + 5 + 3  # teacher, students, forms, front and two guides
    callouts, footnote = axes.texts[:2], axes.texts[2]
    assert footnote.get_text().startswith("Failed, not plotted: broken_student at")
    assert all(text.anncoords != "data" for text in axes.texts)  # nothing at data coordinates
    boxes = [text.get_window_extent(renderer) for text in [*legend, footnote]]
    boxes += [text.get_bbox_patch().get_window_extent(renderer) for text in callouts]
    boxes += [axes.title.get_window_extent(renderer), axes.xaxis.label.get_window_extent(renderer)]
    inside = figure.bbox
    for box in boxes:
        assert inside.x0 <= box.x0 and box.x1 <= inside.x1, box
        assert inside.y0 <= box.y0 and box.y1 <= inside.y1, box
    for first, second in itertools.combinations(boxes, 2):
        assert not first.overlaps(second), (first, second)
