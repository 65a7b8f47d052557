import pytest
from matplotlib.figure import Figure

from embedding_distillation.evaluation import plots

METRICS = {
    "loss_type": "cosine",
    "loss_curve": [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.4}],
    "teacher": {"gold": {"pearson": 0.69}, "cost": {"texts_per_second": 20.0}},
    "student_before": {"gold": {"pearson": 0.65}, "cost": {"texts_per_second": 200.0}},
    "student_after": {
        "gold": {"pearson": 0.67},
        "heldout": {"cosine_histogram": [0] * 39 + [10]},
        "cost": {"texts_per_second": 210.0},
    },
}


@pytest.mark.parametrize(
    "plot", [plots.training_curves, plots.cosine_histogram, plots.quality_vs_speed]
)
def test_each_plot_draws_its_data(plot):
    figure = plot(METRICS)
    assert isinstance(figure, Figure)
    axes = figure.axes[0]
    assert axes.get_title()
    assert axes.lines or axes.collections or axes.patches


def test_quality_vs_speed_places_one_dot_per_model():
    axes = plots.quality_vs_speed(METRICS).axes[0]
    offsets = [tuple(c.get_offsets()[0]) for c in axes.collections]
    assert offsets == [(20.0, 0.69), (200.0, 0.65), (210.0, 0.67)]
    assert axes.get_ylabel() == "gold Pearson"


def test_quality_vs_speed_plots_sts_benchmark_when_the_teacher_has_it():
    metrics = {
        key: {**entry, "sts_benchmark": {"spearman": value}}
        for (key, entry), value in zip(
            ((k, METRICS[k]) for k in ("teacher", "student_before", "student_after")),
            (83.4, 82.0, 82.9),
            strict=True,
        )
    }
    axes = plots.quality_vs_speed(metrics).axes[0]
    offsets = [tuple(c.get_offsets()[0]) for c in axes.collections]
    assert offsets == [(20.0, 83.4), (200.0, 82.0), (210.0, 82.9)]
    assert axes.get_ylabel() == "STS-B cosine Spearman x100"


def test_quality_vs_speed_names_every_model_in_a_legend_and_draws_the_move():
    metrics = {
        **METRICS,
        "models": ["teacher", "student_before", "student_after", "onnx", "openvino"],
        "onnx": {"gold": {"pearson": 0.67}, "cost": {"texts_per_second": 212.0}},
        "openvino": {"gold": {"pearson": 0.67}, "cost": {"texts_per_second": 211.0}},
    }
    axes = plots.quality_vs_speed(metrics).axes[0]
    names = [text.get_text() for text in axes.get_legend().get_texts()]
    assert names == ["Teacher", "Student (before)", "Student (after)", "ONNX", "OpenVINO"]
    assert not [t for t in axes.texts if t.get_text()]  # no names printed beside the dots
    (arrow,) = [t for t in axes.texts if t.arrow_patch is not None]
    assert tuple(arrow.xy) == (210.0, 0.67)  # points at the trained student
    assert tuple(arrow.xyann) == (200.0, 0.65)  # from the untrained one


def test_training_curves_show_the_evaluations_and_the_kept_step():
    metrics = {
        **METRICS,
        "training": {
            "evaluations": [
                {"step": 0, "sts_dev": 82.0, "heldout_cosine": 0.65},
                {"step": 2, "sts_dev": 82.4, "heldout_cosine": 0.70},
            ],
            "kept_step": 2,
        },
    }
    figure = plots.training_curves(metrics)
    loss, quality, cosine = figure.axes
    assert list(loss.lines[0].get_ydata()) == [0.5, 0.4]
    assert list(quality.lines[0].get_ydata()) == [82.0, 82.4]
    assert list(cosine.lines[0].get_ydata()) == [0.65, 0.70]
    assert list(quality.lines[1].get_xdata()) == [2, 2]  # the kept step
    legend = [text.get_text() for text in quality.get_legend().get_texts()]
    assert legend == ["STS-B dev x100", "held-out cosine", "kept: step 2"]
