"""The Markdown report a person reads first: STS-B and speed up front, then the details."""

from typing import Any

from embedding_distillation.evaluation.exports import NAMES as EXPORT_NAMES
from embedding_distillation.evaluation.regression import REGRESSION_TOLERANCE

NAMES = {
    "teacher": "Teacher",
    "student_before": "Student (before)",
    "student_after": "Student (after)",
    **EXPORT_NAMES,
}
STUDENT = "student_after"

# (header, path into a model's metrics, digits) per column of the main table, in order.
COLUMNS: tuple[tuple[str, tuple[str, ...], int], ...] = (
    ("STS-B Spearman", ("sts_benchmark", "spearman"), 2),
    ("% of teacher", ("sts_benchmark", "percent_of_teacher"), 1),
    ("STS-B Pearson", ("sts_benchmark", "pearson"), 2),
    ("retrieval nDCG@10", ("retrieval", "ndcg_at_10"), 2),
    ("retrieval recall@10", ("retrieval", "recall_at_10"), 2),
    ("teacher-index nDCG@10", ("retrieval_teacher_index", "ndcg_at_10"), 2),
    ("teacher-index recall@10", ("retrieval_teacher_index", "recall_at_10"), 2),
    ("held-out cosine", ("heldout", "mean_cosine"), 4),
    ("held-out MSE", ("heldout", "mse"), 6),
    ("neighbour recall@10", ("neighbours", "recall_at_10"), 4),
    ("gold Pearson", ("gold", "pearson"), 4),
    ("gold Spearman", ("gold", "spearman"), 4),
    ("params", ("cost", "parameters"), 0),
    ("size MB", ("cost", "size_mb"), 1),
    ("texts/s", ("cost", "texts_per_second"), 1),
)


def value_at(entry: Any, keys: tuple[str, ...]) -> Any:
    """``entry[keys[0]][keys[1]]...``, or ``None`` where a key is missing."""
    for key in keys:
        if not isinstance(entry, dict) or key not in entry:
            return None
        entry = entry[key]
    return entry


def cell(entry: dict[str, Any], keys: tuple[str, ...], digits: int) -> str:
    """The figure at ``keys`` for a table cell: ``digits`` decimals, ``n/a`` when missing."""
    value = value_at(entry, keys)
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"


def _tracking_lines(metrics: dict[str, Any]) -> list[str]:
    """What the evaluation while training chose, and the STS-B dev change the push checks."""
    training = metrics.get("training", {})
    lines = []
    curve = training.get("evaluations", [])
    if curve:
        kept, steps = training.get("kept_step"), training.get("global_step", 0)
        runtime = training.get("train_runtime") or 0.0
        seconds = training.get("evaluation_seconds", 0.0)
        share = (
            f", {100 * seconds / runtime:.0f} % of the run's {runtime:,.0f} s" if runtime else ""
        )
        choice = (
            "step 0's (the untrained student with its starting projection)"
            if kept == 0
            else f"step {kept:,} of {steps:,}"
            if kept is not None
            else "the last step's"
        )
        lines.append(
            f"Evaluated {len(curve)} times while training (best by "
            f"{training.get('best_metric', '?')}; {seconds:.0f} s{share}); the saved weights "
            f"are {choice}."
        )
    before = value_at(metrics.get("student_before", {}), ("sts_dev", "spearman"))
    after = value_at(metrics.get(STUDENT, {}), ("sts_dev", "spearman"))
    if before is not None and after is not None:
        lines.append(
            f"STS-B dev (the split steps are chosen on; push_to_hub refuses a student below "
            f"{before - REGRESSION_TOLERANCE:.2f}): {before:.2f} -> {after:.2f} "
            f"({after - before:+.2f})."
        )
    return lines


def _last_loss(loss_curve: list[dict[str, Any]]) -> str:
    """The report's last-logged-loss clause from the saved loss curve; empty without one."""
    if not loss_curve:
        return ""
    last = loss_curve[-1]
    return f", last logged loss {last['loss']:.6f} (step {last['step']:,})"


def headline(metrics: dict[str, Any], key: str = STUDENT) -> str | None:
    """The report's first sentence: what distillation did to the student, then its share.

    "STS-B 82.03 -> 82.41 (+0.38), retrieval nDCG@10 ... at 7.7x the teacher's speed": the
    untrained student's score next to the trained one's. A student that ends below its
    untrained self says so first, in words; one that kept its untrained weights (no evaluated
    step beat step 0) says that. ``None`` without STS-B scores of the student and the teacher.
    """
    student, teacher = metrics.get(key, {}), metrics.get("teacher", {})
    before = metrics.get("student_before", {})
    after_sts = value_at(student, ("sts_benchmark", "spearman"))
    teacher_sts = value_at(teacher, ("sts_benchmark", "spearman"))
    if after_sts is None or teacher_sts is None:
        return None
    speed = value_at(student, ("cost", "texts_per_second"))
    teacher_speed = value_at(teacher, ("cost", "texts_per_second"))
    pace = (
        f" at {speed / teacher_speed:.1f}x the teacher's speed" if speed and teacher_speed else ""
    )
    kept = value_at(student, ("sts_benchmark", "percent_of_teacher"))
    if kept is None:
        kept = 100 * after_sts / teacher_sts
    share = (
        f"(STS-B: cosine Spearman x100 on the test split; the teacher scores {teacher_sts:.2f}, "
        f"the student keeps {kept:.1f} % of it.)"
    )
    changes = [
        (name, value_at(before, path), value_at(student, path))
        for name, path in (
            ("STS-B", ("sts_benchmark", "spearman")),
            ("retrieval nDCG@10", ("retrieval", "ndcg_at_10")),
        )
    ]
    changes = [(name, b, a) for name, b, a in changes if b is not None and a is not None]
    if not changes:
        return f"**The student scores {after_sts:.2f} on STS-B{pace}** {share}"
    moves = ", ".join(f"{name} {b:.2f} -> {a:.2f} ({a - b:+.2f})" for name, b, a in changes)
    worse = [name for name, b, a in changes if round(a, 2) < round(b, 2)]
    better = [name for name, b, a in changes if round(a, 2) > round(b, 2)]
    kept_start = metrics.get("training", {}).get("kept_step") == 0
    if kept_start and worse:
        lead = (
            "**No training step beat step 0, so the run kept it, but its starting projection "
            f"left the student worse than it started on {' and '.join(worse)}**: {moves}{pace}."
        )
    elif worse:
        lead = (
            f"**Distillation made the student worse than it started on {' and '.join(worse)}**: "
            f"{moves}{pace}."
        )
    elif kept_start:
        lead = (
            "**No training step beat the untrained student, so the run kept it (step 0)**: "
            f"{moves}{pace}."
        )
    elif better:
        lead = f"**Distillation improved the student: {moves}{pace}.**"
    else:
        lead = f"**Distillation left the student where it started: {moves}{pace}.**"
    return f"{lead} {share}"


def export_headline(metrics: dict[str, Any]) -> str | None:
    """The fastest recommended export's share of the teacher's STS-B and speed (or None)."""
    teacher_speed = value_at(metrics.get("teacher", {}), ("cost", "texts_per_second"))
    candidates = [
        (value_at(metrics[key], ("cost", "texts_per_second")) or 0.0, key)
        for key in metrics.get("models", [])
        if key in EXPORT_NAMES and metrics[key].get("recommended")
    ]
    if not candidates or not teacher_speed:
        return None
    speed, key = max(candidates)
    share = value_at(metrics[key], ("sts_benchmark", "percent_of_teacher"))
    if share is None:
        return None
    return (
        f"Its fastest recommended export, {EXPORT_NAMES[key]}, keeps {share:.1f} % of the "
        f"teacher's STS-B at {speed / teacher_speed:.1f}x the teacher's speed, without torch."
    )


def _exports_table(metrics: dict[str, Any], keys: list[str]) -> list[str]:
    exports = [key for key in keys if key in EXPORT_NAMES]
    if not exports:
        return []
    lines = [
        "",
        "Exports (run with `embedding_distillation.export.load_encoder`, no torch), against "
        "the trained student on the held-out rows:",
        "",
        "| export | size MB | texts/s | STS-B Spearman | % of the student | min cosine to the "
        "student | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for key in exports:
        entry = metrics[key]
        cells = [
            cell(entry, ("cost", "size_mb"), 1),
            cell(entry, ("cost", "texts_per_second"), 1),
            cell(entry, ("sts_benchmark", "spearman"), 2),
            cell(entry, ("sts_benchmark", "percent_of_student"), 1),
            cell(entry, ("agreement", "min_cosine"), 6),
            entry.get("verdict", "n/a"),
        ]
        lines.append(f"| {EXPORT_NAMES[key]} | " + " | ".join(cells) + " |")
    return lines


def _mteb_table(metrics: dict[str, Any], keys: list[str]) -> list[str]:
    tasks = list(dict.fromkeys(t for k in keys for t in metrics[k].get("mteb", {})))
    if not tasks:
        return []
    lines = [
        "",
        "MTEB main scores (x100): "
        + ", ".join(
            f"{task} ({metrics[keys[0]]['mteb'].get(task, {}).get('metric', '?')})"
            for task in tasks
        )
        + ".",
        "",
        "| model | " + " | ".join(tasks) + " |",
        "|---|" + "---|" * len(tasks),
    ]
    for key in keys:
        scores = metrics[key].get("mteb", {})
        cells = [
            f"{100 * scores[task]['main_score']:.2f}" if task in scores else "n/a" for task in tasks
        ]
        lines.append(f"| {NAMES.get(key, key)} | " + " | ".join(cells) + " |")
    return lines


def render_report(metrics: dict[str, Any]) -> str:
    """Render evaluation metrics (from ``evaluate_models`` plus training info) as Markdown."""
    student = f"`{metrics.get('student_model', '?')}`"
    if metrics.get("student_type") == "static":
        student = f"a static-embedding student (model2vec) from the vocabulary of {student}"
    if metrics.get("student_layers") is not None:
        student += f" cut to its layers {metrics['student_layers']}"
    keys = [key for key in metrics.get("models", NAMES) if key in metrics]
    lines = ["# Distillation report", ""]
    summary = headline(metrics)
    if summary:
        exported = export_headline(metrics)
        lines += [summary + (f" {exported}" if exported else ""), ""]
    lines += [
        f"Teacher: `{metrics.get('teacher_model', '?')}`; student: {student}; "
        f"target: `{metrics['target_column']}`; held-out rows: {metrics['heldout_rows']:,}.",
        "",
        "| model | " + " | ".join(header for header, _, _ in COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    for key in keys:
        entry = metrics[key]
        cells = [cell(entry, path, digits) for _, path, digits in COLUMNS]
        lines.append(f"| {NAMES.get(key, key)} | " + " | ".join(cells) + " |")
    lines += _exports_table(metrics, keys)
    lines += _mteb_table(metrics, keys)
    training = metrics.get("training", {})
    if training:
        lines += [
            "",
            f"Training: mean loss over the run {training.get('train_loss', float('nan')):.6f}"
            f"{_last_loss(metrics.get('loss_curve', []))}, "
            f"{training.get('global_step', 0):,} steps, "
            f"{training.get('train_samples_per_second', 0.0):.1f} samples/s.",
            *_tracking_lines(metrics),
        ]
    lines += [
        "",
        "STS-B: the STS Benchmark test split (1,379 pairs) through mteb's STSBenchmark task; "
        "Spearman and Pearson of cosine similarity with the human scores, x100 (MTEB's main "
        "score is the Spearman). Held-out metrics compare each model's embeddings with the "
        "stored teacher embeddings (teacher = 1.0 by construction, so it is not listed); gold "
        "metrics correlate cosine similarity with human scores (Lee50 in the demo).",
    ]
    articles = metrics.get("retrieval_articles")
    if articles:
        lines += [
            "",
            f"Retrieval: {articles:,} Wikipedia vital articles held out of every corpus; each "
            "short description (the query) must find its article's lead extract among the "
            f"{articles:,} (mteb's retrieval evaluator, x100). Teacher-index: the model encodes "
            "the queries and the teacher the extracts, as when a student serves queries against "
            "an index built with the teacher (models whose output has the teacher's width only).",
        ]
    return "\n".join([*lines, ""])
