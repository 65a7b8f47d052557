"""Figures for the distillation report: training curves, cosine histogram, quality vs speed.

Built with ``matplotlib.figure.Figure`` (no pyplot, no global state, no display needed); the
Kedro ``matplotlib.MatplotlibDataset`` saves them as versioned PNG files.
"""

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from embedding_distillation.evaluation.metrics import COSINE_BINS
from embedding_distillation.evaluation.report import NAMES


def training_curves(metrics: dict[str, Any]) -> Figure:
    """Training loss, and the in-training evaluations (STS-B dev, held-out cosine), per step.

    The step the run kept (the best evaluated one) is marked on the evaluation panel.
    """
    training = metrics.get("training", {})
    evaluations = training.get("evaluations", [])
    figure = Figure(figsize=(6, 6 if evaluations else 4), layout="constrained")
    loss_axes, *rest = figure.subplots(2 if evaluations else 1, 1, sharex=True, squeeze=False)[:, 0]
    points = metrics.get("loss_curve", [])
    loss_axes.plot([p["step"] for p in points], [p["loss"] for p in points], marker=".")
    loss_axes.set(ylabel=f"{metrics.get('loss_type', '')} loss", title="Training")
    loss_axes.grid(alpha=0.3)
    if not evaluations:
        loss_axes.set_xlabel("optimizer step")
        return figure
    quality = rest[0]
    quality.set_xlabel("optimizer step")
    quality.grid(alpha=0.3)
    handles = []
    sts = [(p["step"], p["sts_dev"]) for p in evaluations if "sts_dev" in p]
    if sts:
        handles += quality.plot(*zip(*sts, strict=True), marker="o", label="STS-B dev x100")
        quality.set_ylabel("STS-B dev Spearman x100")
    cosine = [(p["step"], p["heldout_cosine"]) for p in evaluations if "heldout_cosine" in p]
    if cosine:
        axes = quality.twinx() if sts else quality
        handles += axes.plot(
            *zip(*cosine, strict=True), marker="s", color="tab:orange", label="held-out cosine"
        )
        axes.set_ylabel("held-out cosine to the teacher")
    kept = training.get("kept_step")
    if kept is not None:
        handles.append(
            quality.axvline(kept, color="grey", linestyle="--", label=f"kept: step {kept}")
        )
    quality.legend(handles=handles, loc="lower right")
    return figure


def cosine_histogram(metrics: dict[str, Any]) -> Figure:
    """Distribution of each held-out row's cosine to its teacher embedding."""
    figure = Figure(figsize=(6, 4))
    axes = figure.add_subplot()
    edges = np.linspace(-1, 1, COSINE_BINS + 1)
    for key in ("student_before", "student_after"):
        counts = metrics.get(key, {}).get("heldout", {}).get("cosine_histogram")
        if counts is not None:
            axes.stairs(counts, edges, label=NAMES[key], fill=key == "student_after", alpha=0.6)
    axes.set(xlabel="cosine to the teacher", ylabel="held-out rows", title="Agreement per row")
    axes.legend(loc="upper left")
    return figure


MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*", "<", ">")  # one per model, in order
# (metrics path, y-axis label) of the quality measure, first one the teacher has.
QUALITY = (
    (("sts_benchmark", "spearman"), "STS-B cosine Spearman x100"),
    (("gold", "pearson"), "gold Pearson"),
)


def quality_vs_speed(metrics: dict[str, Any]) -> Figure:
    """Texts/s against STS-B Spearman, one marker per model, named in the legend.

    Without STS-B, gold Pearson; without either, held-out cosine to the teacher (1 for it). The
    names go in a legend beside the axes, so they never print on top of each other (exports sit
    on the student's quality); an arrow shows the untrained student's move to the trained one.
    """
    figure = Figure(figsize=(7.5, 4), layout="constrained")
    axes = figure.add_subplot()
    teacher = metrics.get("teacher", {})
    path, label = next(
        ((p, lbl) for p, lbl in QUALITY if p[0] in teacher),
        (("heldout", "mean_cosine"), "held-out cosine to the teacher"),
    )
    placed: dict[str, tuple[float, float]] = {}
    for index, key in enumerate(key for key in metrics.get("models", NAMES) if key in metrics):
        entry = metrics[key]
        quality = entry.get(path[0], {}).get(path[1])
        if quality is None and key == "teacher" and path[0] == "heldout":
            quality = 1.0
        if quality is None:
            continue
        speed = entry["cost"]["texts_per_second"]
        placed[key] = (speed, quality)
        axes.scatter(
            speed,
            quality,
            s=60,
            marker=MARKERS[index % len(MARKERS)],
            label=NAMES.get(key, key),
            zorder=3,
        )
    if "student_before" in placed and "student_after" in placed:
        axes.annotate(
            "",
            xy=placed["student_after"],
            xytext=placed["student_before"],
            arrowprops={"arrowstyle": "->", "color": "grey", "lw": 1.5},
            zorder=2,
        )
    axes.set(
        xscale="log",
        xlabel="texts/s (log scale)",
        ylabel=label,
        title="Quality versus speed",
    )
    axes.margins(x=0.15, y=0.15)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    return figure
