"""Figures for the distillation report: loss curve, cosine histogram, quality versus speed.

Built with ``matplotlib.figure.Figure`` (no pyplot, no global state, no display needed); the
Kedro ``matplotlib.MatplotlibDataset`` saves them as versioned PNG files.
"""

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from embedding_distillation.evaluation.metrics import COSINE_BINS
from embedding_distillation.evaluation.report import NAMES


def loss_curve(metrics: dict[str, Any]) -> Figure:
    """Training loss per logged step."""
    figure = Figure(figsize=(6, 4))
    axes = figure.add_subplot()
    points = metrics.get("loss_curve", [])
    axes.plot([p["step"] for p in points], [p["loss"] for p in points], marker=".")
    axes.set(
        xlabel="optimizer step",
        ylabel=f"{metrics.get('loss_type', '')} loss",
        title="Training loss",
    )
    axes.grid(alpha=0.3)
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


# (metrics path, y-axis label) of the quality measure, first one the teacher has.
QUALITY = (
    (("sts_benchmark", "spearman"), "STS-B cosine Spearman x100"),
    (("gold", "pearson"), "gold Pearson"),
)


def quality_vs_speed(metrics: dict[str, Any]) -> Figure:
    """Texts/s against STS-B Spearman, one dot per model.

    Without STS-B, gold Pearson; without either, held-out cosine to the teacher (1 for it).
    """
    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.add_subplot()
    teacher = metrics.get("teacher", {})
    path, label = next(
        ((p, lbl) for p, lbl in QUALITY if p[0] in teacher),
        (("heldout", "mean_cosine"), "held-out cosine to the teacher"),
    )
    for key in [key for key in metrics.get("models", NAMES) if key in metrics]:
        entry = metrics[key]
        quality = entry.get(path[0], {}).get(path[1])
        if quality is None and key == "teacher" and path[0] == "heldout":
            quality = 1.0
        if quality is None:
            continue
        speed = entry["cost"]["texts_per_second"]
        axes.scatter(speed, quality, s=40)
        axes.annotate(
            NAMES.get(key, key), (speed, quality), textcoords="offset points", xytext=(5, 5)
        )
    axes.set(
        xscale="log",
        xlabel="texts/s (log scale)",
        ylabel=label,
        title="Quality versus speed",
    )
    axes.margins(x=0.35, y=0.15)  # room for the labels
    axes.grid(alpha=0.3)
    return figure
