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


@pytest.mark.parametrize("plot", [plots.loss_curve, plots.cosine_histogram, plots.quality_vs_speed])
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
