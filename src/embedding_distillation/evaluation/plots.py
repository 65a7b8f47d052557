"""Figures for the distillation report: training curves, cosine histogram, quality vs speed.

And for the comparison of several students (:mod:`~.comparison`): their Pareto plot.

Built with ``matplotlib.figure.Figure`` (no pyplot, no global state, no display needed); the
Kedro ``matplotlib.MatplotlibDataset`` saves them as versioned PNG files.
"""

import textwrap
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

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


# Marker per form of a student in the comparison (the teacher is a black star).
FORM_MARKERS = {"torch": "o", "onnx": "s", "onnx_int8": "D", "openvino": "^", "openvino_int8": "v"}
FORM_LABELS = {"torch": "torch", **{k: v for k, v in NAMES.items() if k in FORM_MARKERS}}
FOOTNOTE_WIDTH = 110  # characters per footnote line (fits the figure's width in small type)
MESSAGE_SHOWN = 80  # characters of a failure's message in the footnote


def students_pareto(record: dict[str, Any]) -> Figure:
    """Quality against speed (x the teacher's texts/s, log scale) of every student and export.

    ``record`` is :func:`~.comparison.compare`'s. A colour per student, a marker per form, the
    teacher a black star at 1x; the Pareto front as a grey step line, dotted guides at the two
    recommendation bars. No text is drawn at data coordinates: names are in a legend beside the
    axes, the two recommendations in callouts anchored in opposite corners of the axes (an
    arrow points at the row), the failed students in a footnote below.
    """
    quality = record["quality"]
    rows = [
        row
        for row in record["rows"]
        if row["form"] != "failed" and row["quality"] is not None and row["speedup"] is not None
    ]
    students = [s for s in record["students"] if any(row["student"] == s for row in rows)]
    colours = {student: f"C{index % 10}" for index, student in enumerate(students)}
    forms = [f for f in FORM_MARKERS if any(row["form"] == f for row in rows)]
    entries = 4 + len(students) + len(forms)  # teacher, students, forms, front, two guides
    figure = Figure(figsize=(9.5, max(5.0, 1.6 + 0.24 * entries)), layout="constrained")
    axes = figure.add_subplot()
    for row in rows:
        if row["form"] == "teacher":
            axes.scatter(1.0, row["quality"], s=220, marker="*", color="black", zorder=4)
        else:
            axes.scatter(
                row["speedup"],
                row["quality"],
                s=55,
                marker=FORM_MARKERS.get(row["form"], "P"),
                color=colours[row["student"]],
                edgecolors="white",
                linewidths=0.5,
                zorder=3,
            )
    front = sorted((row for row in rows if row["pareto"]), key=lambda row: row["speedup"])
    # "pre": between two front points, the best quality at that speed or faster is the next's.
    axes.step(
        [row["speedup"] for row in front],
        [row["quality"] for row in front],
        where="pre",
        color="grey",
        linewidth=1.2,
        zorder=2,
    )
    speedup, share = record["min_speedup"], record["min_share"]
    axes.axvline(speedup, color="grey", linestyle=":", zorder=1)
    teacher = next((row for row in rows if row["form"] == "teacher"), None)
    if teacher is not None:
        axes.axhline(share / 100 * teacher["quality"], color="grey", linestyle=":", zorder=1)
    axes.set(
        xscale="log",
        xlabel="texts/s as a multiple of the teacher's, same evaluation (log scale)",
        ylabel=quality["label"],
        title="Students against the teacher: quality versus speed",
    )
    axes.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}x"))
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.margins(x=0.15, y=0.2)
    axes.grid(alpha=0.3)
    handles = [
        Line2D([], [], marker="*", markersize=12, color="black", linestyle="", label="teacher"),
        *(Patch(color=colours[student], label=student) for student in students),
        *(
            Line2D([], [], marker=FORM_MARKERS[f], color="dimgrey", linestyle="", label=label)
            for f, label in FORM_LABELS.items()
            if f in forms
        ),
        Line2D([], [], color="grey", label="Pareto front"),
        Line2D([], [], color="grey", linestyle=":", label=f"{speedup:g}x the teacher's speed"),
        Line2D([], [], color="grey", linestyle=":", label=f"{share:g} % of its {quality['name']}"),
    ]
    axes.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        borderaxespad=0.0,
        fontsize="small",
    )
    by_name = {row["name"]: row for row in rows}
    recommendations = record["recommendations"]
    _callout(
        axes,
        recommendations["at_speed"],
        by_name,
        quality,
        corner=(0.98, 0.97),
        title=f"Most accurate at {speedup:g}x or more",
        none="fastest",
    )
    _callout(
        axes,
        recommendations["at_quality"],
        by_name,
        quality,
        corner=(0.02, 0.03),
        title=f"Fastest keeping {share:g} %",
        none="closest",
    )
    footnote = _footnote(record, rows)
    if footnote:
        axes.annotate(
            footnote,
            xy=(0.0, 0.0),
            xycoords=("axes fraction", axes.xaxis.label),
            xytext=(0, -6),
            textcoords="offset points",
            ha="left",
            va="top",
            fontsize="small",
        )
    return figure


def _callout(
    axes: Any,
    recommendation: dict[str, Any],
    by_name: dict[str, dict[str, Any]],
    quality: dict[str, Any],
    *,
    corner: tuple[float, float],
    title: str,
    none: str,
) -> None:
    """A recommendation in a box at ``corner`` (axes fraction), with an arrow to its row."""
    row = by_name.get(recommendation["row"] or "")
    shown = row or by_name.get(recommendation.get("nearest") or "")
    if shown is None:
        text = f"{title}:\nnone"
    else:
        figures = (
            f"{quality['name']} {shown['quality']:.{quality['digits']}f} "
            f"({shown['percent_of_teacher']:.1f} %), {shown['speedup']:.1f}x"
        )
        text = (
            f"{title}:\n{shown['name']}\n{figures}"
            if row is not None
            else f"{title}: none\n({none}: {shown['name']}, {figures})"
        )
    right, top = corner[0] > 0.5, corner[1] > 0.5
    axes.annotate(
        text,
        xy=(shown["speedup"], shown["quality"]) if shown else corner,
        xycoords="data" if shown else "axes fraction",
        xytext=corner,
        textcoords="axes fraction",
        ha="right" if right else "left",
        va="top" if top else "bottom",
        multialignment="left",
        fontsize="small",
        bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "grey", "alpha": 0.9},
        arrowprops=(
            {"arrowstyle": "->", "color": "dimgrey", "shrinkB": 6} if row is not None else None
        ),
        zorder=5,
    )


def _footnote(record: dict[str, Any], plotted: list[dict[str, Any]]) -> str:
    """The failed students, and the rows left out for want of a quality score or a speed."""
    parts = [
        f"{failure.get('student', '?')} at {failure.get('step', '?')} "
        f"({failure.get('error', '?')}: "
        f"{textwrap.shorten(str(failure.get('message', '')), MESSAGE_SHOWN, placeholder='...')})"
        for failure in record["failures"]
    ]
    lines = ["Failed, not plotted: " + "; ".join(parts) + "."] if parts else []
    missing = [
        row["name"]
        for row in record["rows"]
        if row["form"] != "failed" and not any(row is kept for kept in plotted)
    ]
    if missing:
        lines.append(f"No {record['quality']['name']} or speed, not plotted: {', '.join(missing)}.")
    return "\n".join(textwrap.fill(line, FOOTNOTE_WIDTH) for line in lines)


def failure_figure(description: str) -> Figure:
    """A figure that only says what failed (a failed student's report plots have no data)."""
    figure = Figure(figsize=(8, 2.5))
    figure.text(
        0.5,
        0.5,
        textwrap.fill(description, 80),
        ha="center",
        va="center",
        wrap=True,
    )
    return figure
