"""The Markdown report a person reads first."""

from typing import Any

NAMES = {
    "teacher": "Teacher",
    "student_before": "Student (before)",
    "student_after": "Student (after)",
}


def _cell(entry: dict[str, Any], *keys: str, digits: int = 4) -> str:
    value: Any = entry
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return "n/a"
        value = value[key]
    return f"{value:.{digits}f}" if isinstance(value, float) else f"{value:,}"


def _last_loss(loss_curve: list[dict[str, Any]]) -> str:
    """The report's last-logged-loss clause from the saved loss curve; empty without one."""
    if not loss_curve:
        return ""
    last = loss_curve[-1]
    return f", last logged loss {last['loss']:.6f} (step {last['step']:,})"


def render_report(metrics: dict[str, Any]) -> str:
    """Render evaluation metrics (from ``evaluate_models`` plus training info) as Markdown."""
    student = f"`{metrics.get('student_model', '?')}`"
    if metrics.get("student_layers") is not None:
        student += f" cut to its layers {metrics['student_layers']}"
    lines = [
        "# Distillation report",
        "",
        f"Teacher: `{metrics.get('teacher_model', '?')}`; student: {student}; "
        f"target: `{metrics['target_column']}`; held-out rows: {metrics['heldout_rows']:,}.",
        "",
        "| model | held-out cosine | held-out MSE | neighbour recall@10 | gold Pearson "
        "| gold Spearman | params | texts/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, name in NAMES.items():
        entry = metrics.get(key)
        if entry is None:
            continue
        lines.append(
            f"| {name} | {_cell(entry, 'heldout', 'mean_cosine')} | "
            f"{_cell(entry, 'heldout', 'mse', digits=6)} | "
            f"{_cell(entry, 'neighbours', 'recall_at_10')} | {_cell(entry, 'gold', 'pearson')} | "
            f"{_cell(entry, 'gold', 'spearman')} | {_cell(entry, 'cost', 'parameters')} | "
            f"{_cell(entry, 'cost', 'texts_per_second', digits=1)} |"
        )
    training = metrics.get("training", {})
    if training:
        lines += [
            "",
            f"Training: mean loss over the run {training.get('train_loss', float('nan')):.6f}"
            f"{_last_loss(metrics.get('loss_curve', []))}, "
            f"{training.get('global_step', 0):,} steps, "
            f"{training.get('train_samples_per_second', 0.0):.1f} samples/s.",
        ]
    lines += [
        "",
        "Held-out metrics compare each model's embeddings with the stored teacher embeddings "
        "(teacher = 1.0 by construction, so it is not listed); gold metrics correlate cosine "
        "similarity with human scores (Lee50 in the demo).",
        "",
    ]
    return "\n".join(lines)
