"""Several students next to one teacher: a table, the Pareto front, and which one to ship.

Input: ``{student name: the evaluate node's distillation_metrics record}``, or for a student that
failed, its failure record ``{"failed": {"student", "step", "error", "message",
"traceback_tail"}}``. Output: plain JSON (:func:`compare`), its Markdown
(:func:`render_comparison`) and, through :func:`~.plots.students_pareto`, its figure.

Each row's speed is a multiple of the teacher's texts/s measured in the same evaluation (the
same process moment), which carries less load noise than one teacher figure for all. Quality
is the STS Benchmark Spearman, else gold Pearson, else held-out cosine to the teacher: the
first that every evaluated student's teacher has (:data:`~.plots.QUALITY`, as
:func:`~.plots.quality_vs_speed` chooses).
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from embedding_distillation.evaluation import plots
from embedding_distillation.evaluation.exports import NAMES as EXPORT_NAMES
from embedding_distillation.evaluation.report import STUDENT, cell, value_at
from embedding_distillation.students import FAILED, is_failure

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from sentence_transformers import SentenceTransformer

MIN_SPEEDUP = 5.0  # x the teacher's texts/s: the "fast enough" recommendation's bar
MIN_SHARE = 95.0  # % of the teacher's quality: the "good enough" recommendation's bar
TEACHER = "teacher"
TORCH = "torch"  # the form of a trained student as sentence-transformers runs it
FORMS = {TEACHER: "teacher", TORCH: "torch", **EXPORT_NAMES}  # form -> its name in reports
HELDOUT = (("heldout", "mean_cosine"), "held-out cosine to the teacher")  # the teacher's is 1
# Short name and digits of each quality measure, by its path in a model's metrics.
QUALITY_NAMES = {
    "sts_benchmark.spearman": ("STS-B", 2),
    "gold.pearson": ("gold Pearson", 4),
    "heldout.mean_cosine": ("held-out cosine", 4),
}
# What two students' records must share to be compared: (record key, its name in the notes).
COMPARABLE = (
    ("teacher_model", "teacher models"),
    ("heldout_rows", "held-out rows"),
    ("retrieval_articles", "retrieval articles"),
)
# (header, row field, digits) of the table's columns after the model's name.
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("STS-B Spearman", "sts_spearman", 2),
    ("% of teacher", "percent_of_teacher", 1),
    ("retrieval nDCG@10", "retrieval_ndcg_at_10", 2),
    ("teacher-index nDCG@10", "teacher_index_ndcg_at_10", 2),
    ("held-out cosine", "heldout_cosine", 4),
    ("texts/s", "texts_per_second", 1),
    ("x teacher", "speedup", 1),
    ("size MB", "size_mb", 1),
)
GOLD_COLUMN = ("gold Pearson", "gold_pearson", 4)  # shown when it is the quality measure


def compare(by_student: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """Compare students evaluated next to the same teacher; the result is plain JSON.

    Rows: the teacher (from the first evaluated student's record), then per student its
    trained model and each export, in the record's order; a failed student is one row saying
    where and why. Each row is on the Pareto front when no other row is at least as good in
    quality and as fast (``x teacher``), and better in one of them. The recommendations choose
    among the trained students and the exports their evaluation recommends.

    Args:
        by_student: ``{name: distillation_metrics record or failure record}``, in the order the
            report lists them.

    Returns:
        ``students``, ``quality`` (``path``, ``name``, ``label``, ``digits``), ``min_speedup``,
        ``min_share``, ``rows``, ``recommendations`` (``at_speed``, ``at_quality``: each
        ``row``, the recommended row's name or ``None``; ``nearest``, when none qualifies, the
        fastest or the closest row's name; ``sentence``), ``failures`` and ``notes``.

    Raises:
        ValueError: No students, or a record that is neither metrics nor a failure.
    """
    if not by_student:
        raise ValueError(
            "No students to compare: pass {name: distillation_metrics record}, at least one."
        )
    for name, metrics in by_student.items():
        if not isinstance(metrics, Mapping) or not (is_failure(metrics) or TEACHER in metrics):
            keys = sorted(metrics) if isinstance(metrics, Mapping) else type(metrics).__name__
            raise ValueError(
                f"Student {name!r}: expected its distillation_metrics record (with a "
                f"'teacher' entry) or a failure record ({{'failed': {{...}}}}), got {keys}."
            )
    evaluated = {name: m for name, m in by_student.items() if not is_failure(m)}
    path, label = _quality(evaluated.values())
    key = ".".join(path)
    short, digits = QUALITY_NAMES[key]
    rows = []
    if evaluated:
        first = next(iter(evaluated.values()))
        rows.append(_row(None, TEACHER, first[TEACHER], first, path))
    for name, metrics in by_student.items():
        if is_failure(metrics):
            rows.append(_failed_row(name, metrics[FAILED], path))
            continue
        forms = [k for k in metrics.get("models", []) if k in EXPORT_NAMES and k in metrics]
        rows.append(_row(name, TORCH, metrics.get(STUDENT, {}), metrics, path))
        rows += [_row(name, form, metrics[form], metrics, path) for form in forms]
    _mark_pareto(rows)
    record = {
        "students": list(by_student),
        "quality": {"path": list(path), "name": short, "label": label, "digits": digits},
        "min_speedup": MIN_SPEEDUP,
        "min_share": MIN_SHARE,
        "rows": rows,
    }
    return record | {
        "recommendations": _recommendations(record),
        "failures": [dict(m[FAILED]) for m in by_student.values() if is_failure(m)],
        "notes": _notes(evaluated, rows),
    }


def _quality(records: Iterable[Mapping[str, Any]]) -> tuple[tuple[str, ...], str]:
    """The first quality measure every record's teacher has; held-out cosine otherwise."""
    teachers = [metrics.get(TEACHER, {}) for metrics in records]
    for path, label in plots.QUALITY:
        if teachers and all(value_at(t, path) is not None for t in teachers):
            return path, label
    return HELDOUT


def _row(
    student: str | None,
    form: str,
    entry: Mapping[str, Any],
    metrics: Mapping[str, Any],
    path: tuple[str, ...],
) -> dict[str, Any]:
    """One table row: a model's figures, its quality, its speed as a multiple of the teacher's."""
    teacher = metrics.get(TEACHER, {})
    teacher_quality = _quality_of(teacher, path, is_teacher=True)
    quality = _quality_of(entry, path, is_teacher=form == TEACHER)
    speed = value_at(entry, ("cost", "texts_per_second"))
    teacher_speed = value_at(teacher, ("cost", "texts_per_second"))
    after = value_at(entry, ("sts_benchmark", "spearman"))
    before = value_at(metrics.get("student_before", {}), ("sts_benchmark", "spearman"))
    name = (
        TEACHER
        if student is None
        else f"{student} · {FORMS[form]}"
        if form in EXPORT_NAMES
        else student
    )
    return {
        "name": name,
        "student": student,
        "form": form,
        "quality": quality,
        "percent_of_teacher": (
            100.0
            if form == TEACHER
            else 100 * quality / teacher_quality
            if quality is not None and teacher_quality
            else None
        ),
        "sts_spearman": after,
        "retrieval_ndcg_at_10": value_at(entry, ("retrieval", "ndcg_at_10")),
        "teacher_index_ndcg_at_10": value_at(entry, ("retrieval_teacher_index", "ndcg_at_10")),
        "heldout_cosine": value_at(entry, ("heldout", "mean_cosine")),
        "gold_pearson": value_at(entry, ("gold", "pearson")),
        "texts_per_second": speed,
        "teacher_texts_per_second": teacher_speed,
        "speedup": speed / teacher_speed if speed and teacher_speed else None,
        "size_mb": value_at(entry, ("cost", "size_mb")),
        "sts_vs_untrained": (
            after - before if form == TORCH and after is not None and before is not None else None
        ),
        # A trained student is always a candidate; an export when its evaluation recommends it.
        "recommended": True if form == TORCH else entry.get("recommended"),
        "verdict": entry.get("verdict"),
        "teacher_quality": teacher_quality,
        "pareto": False,
        "failed": None,
    }


def _quality_of(entry: Mapping[str, Any], path: tuple[str, ...], *, is_teacher: bool) -> Any:
    if is_teacher and path == HELDOUT[0]:
        return 1.0  # the stored embeddings are the teacher's own
    return value_at(entry, path)


def _failed_row(student: str, failure: Mapping[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    """A failed student's row: no figures, where and why it failed."""
    return _row(student, FAILED, {}, {}, path) | {
        "teacher_quality": None,
        "recommended": False,
        "failed": (
            f"failed at {failure.get('step', '?')}: {failure.get('error', '?')}: "
            f"{failure.get('message', '')}"
        ),
    }


def _mark_pareto(rows: list[dict[str, Any]]) -> None:
    """Set ``pareto`` on each row no other row dominates in (quality, x teacher)."""
    points = [
        (row, (row["quality"], row["speedup"]))
        for row in rows
        if row.get("quality") is not None and row.get("speedup") is not None
    ]
    for row, (quality, speed) in points:
        row["pareto"] = not any(
            q >= quality and s >= speed and (q > quality or s > speed) for _, (q, s) in points
        )


def _recommendations(record: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The most accurate candidate at MIN_SPEEDUP x or more, the fastest keeping MIN_SHARE %."""
    short = record["quality"]["name"]
    candidates = [
        row
        for row in record["rows"]
        if row["form"] not in (TEACHER, FAILED)
        and row["recommended"] is True
        and row["speedup"] is not None
    ]
    scored = [row for row in candidates if row["quality"] is not None]
    fast = [row for row in scored if row["speedup"] >= MIN_SPEEDUP]
    good = [row for row in scored if row["percent_of_teacher"] >= MIN_SHARE]
    nobody = "no student was evaluated" if not candidates else "none has a quality score"
    if fast:
        best = max(fast, key=lambda row: (row["quality"], row["speedup"]))
        at_speed = {
            "row": best["name"],
            "nearest": None,
            "sentence": f"**Most accurate at {MIN_SPEEDUP:g}x the teacher's speed or more: "
            f"{_named(best)}**: {_figures(best, record['quality'])}",
        }
    else:
        fastest = max(candidates, key=lambda row: row["speedup"], default=None)
        at_speed = {
            "row": None,
            "nearest": fastest["name"] if fastest else None,
            "sentence": f"No student runs at {MIN_SPEEDUP:g}x the teacher's speed or more; "
            + (
                f"the fastest, {_named(fastest)}, runs at {fastest['speedup']:.1f}x."
                if fastest
                else f"{nobody}."
            ),
        }
    if good:
        best = max(good, key=lambda row: (row["speedup"], row["quality"]))
        at_quality = {
            "row": best["name"],
            "nearest": None,
            "sentence": f"**Fastest keeping {MIN_SHARE:g} % of the teacher's {short}: "
            f"{_named(best)}**: {_figures(best, record['quality'])}",
        }
    else:
        closest = max(scored, key=lambda row: row["percent_of_teacher"], default=None)
        at_quality = {
            "row": None,
            "nearest": closest["name"] if closest else None,
            "sentence": f"No student keeps {MIN_SHARE:g} % of the teacher's {short}; "
            + (
                f"the closest, {_named(closest)}, keeps {closest['percent_of_teacher']:.1f} %."
                if closest
                else f"{nobody}."
            ),
        }
    return {"at_speed": at_speed, "at_quality": at_quality}


def _named(row: Mapping[str, Any], joiner: str = " as ") -> str:
    """`minilm`, or `minilm` as OpenVINO int8 (the teacher: Teacher)."""
    if row["form"] == TEACHER:
        return "Teacher"
    name = f"`{row['student']}`"
    return f"{name}{joiner}{FORMS[row['form']]}" if row["form"] in EXPORT_NAMES else name


def _figures(row: Mapping[str, Any], quality: Mapping[str, Any]) -> str:
    """STS-B 82.01 (98.3 % of the teacher's 83.42) at 6.7x the teacher's texts/s (...), 22.4 MB."""
    digits = quality["digits"]
    size = f", {row['size_mb']:,.1f} MB" if row.get("size_mb") is not None else ""
    return (
        f"{quality['name']} {row['quality']:.{digits}f} ({row['percent_of_teacher']:.1f} % of "
        f"the teacher's {row['teacher_quality']:.{digits}f}) at {row['speedup']:.1f}x the "
        f"teacher's texts/s ({row['texts_per_second']:,.1f} against "
        f"{row['teacher_texts_per_second']:,.1f}){size}."
    )


def _notes(evaluated: Mapping[str, Mapping[str, Any]], rows: list[dict[str, Any]]) -> list[str]:
    """Teacher speed across evaluations, records that differ, exports left out as candidates."""
    notes = []
    speeds = [value_at(m, (TEACHER, "cost", "texts_per_second")) for m in evaluated.values()]
    speeds = [s for s in speeds if s]
    if speeds:
        span = (
            f"{min(speeds):,.2f}"
            if min(speeds) == max(speeds)
            else f"{min(speeds):,.2f}-{max(speeds):,.2f}"
        )
        notes.append(
            f"The teacher ran at {span} texts/s over {len(speeds)} "
            f"evaluation{'s' if len(speeds) > 1 else ''}; each "
            "'x teacher' divides by the teacher's texts/s measured in the same evaluation, and "
            f"the teacher's row is from `{next(iter(evaluated))}`'s."
        )
    for key, what in COMPARABLE:
        values = {name: metrics.get(key) for name, metrics in evaluated.items()}
        if len(set(map(str, values.values()))) > 1:
            listed = ", ".join(f"`{name}`: {value}" for name, value in values.items())
            notes.append(f"Not comparable: the {what} differ ({listed}).")
    has_sts = {
        name: value_at(metrics, (TEACHER, "sts_benchmark", "spearman")) is not None
        for name, metrics in evaluated.items()
    }
    if len(set(has_sts.values())) > 1:
        listed = ", ".join(f"`{name}`: {'yes' if has else 'no'}" for name, has in has_sts.items())
        notes.append(f"Not comparable: STS-B scores only in some records ({listed}).")
    notes += [
        f"{_named(row)} is not a candidate for the recommendations: "
        f"{row['verdict'] or 'no verdict'}."
        for row in rows
        if row["form"] not in (TEACHER, TORCH, FAILED) and row["recommended"] is not True
    ]
    return notes


def render_comparison(record: Mapping[str, Any], *, kedro: bool = True) -> str:
    """Render a :func:`compare` record as Markdown: recommendations, table, failures, notes.

    Args:
        record: What :func:`compare` returned.
        kedro: Tell how to rerun a failed student with ``kedro run`` (the pipeline's report);
            ``False`` for the Python API, where the caller reruns it.
    """
    quality = record["quality"]
    columns = list(COLUMNS)
    columns[1] = (f"% of teacher's {quality['name']}", "percent_of_teacher", 1)
    if quality["path"] == ["gold", "pearson"]:
        columns.insert(2, GOLD_COLUMN)
    recommendations = record["recommendations"]
    lines = [
        "# Students compared",
        "",
        recommendations["at_speed"]["sentence"],
        "",
        recommendations["at_quality"]["sentence"],
        "",
        f"Quality: {quality['label']}. Pareto: no other row is at least as good and as fast, "
        "and better in one.",
        "",
        "| model | "
        + " | ".join(header for header, _, _ in columns)
        + " | Pareto | STS-B vs untrained |",
        "|---|" + "---|" * (len(columns) + 2),
    ]
    for row in record["rows"]:
        if row["form"] == FAILED:
            cells = [_escape(row["failed"])] + [""] * (len(columns) + 1)
            lines.append(f"| `{row['student']}` | " + " | ".join(cells) + " |")
            continue
        name = _named(row, joiner=" · ")
        cells = [cell(row, (field,), digits) for _, field, digits in columns]
        change = row.get("sts_vs_untrained")
        cells += ["yes" if row["pareto"] else "", "" if change is None else f"{change:+.2f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if record["failures"]:
        lines += ["", "Failed students (the others ran on):", ""]
        for failure in record["failures"]:
            student = failure.get("student", "?")
            lines.append(
                f"- `{student}` at `{failure.get('step', '?')}`: {failure.get('error', '?')}: "
                f"{failure.get('message', '')}"
                + (f" Rerun it alone: `kedro run --namespaces {student}`." if kedro else "")
            )
            tail = failure.get("traceback_tail")
            if tail:
                lines += ["", "  ```", *(f"  {line}" for line in tail.splitlines()), "  ```"]
    if record["notes"]:
        lines += ["", "Notes:", "", *(f"- {note}" for note in record["notes"])]
    return "\n".join([*lines, ""])


def _escape(text: str) -> str:
    """Text safe inside a Markdown table cell (one line, no column breaks)."""
    return " ".join(text.split()).replace("|", "\\|")


@dataclass(frozen=True)
class StudentComparison:
    """Several students trained on the same teacher embeddings, compared (``distill_students``).

    Attributes:
        record: The comparison (:func:`compare`), as the ``compare_students`` node saves it.
        models: The trained students by name (failed ones left out).
        failures: Each failed student's failure record (``student``, ``step``, ``error``,
            ``message``, ``traceback_tail``), by name.
        report: The Markdown report (:func:`render_comparison`).
    """

    record: dict[str, Any]
    models: dict[str, "SentenceTransformer"]
    failures: dict[str, dict[str, Any]]
    report: str

    def figure(self) -> "Figure":
        """Quality against speed, students beside the teacher (:func:`~.plots.students_pareto`)."""
        return plots.students_pareto(self.record)

    def raise_failures(self) -> None:
        """Raise an ``ExceptionGroup`` of the failed students, for callers who want one.

        Raises:
            ExceptionGroup: One ``RuntimeError`` per failed student, naming its step and error.
        """
        if self.failures:
            raise ExceptionGroup(
                f"{len(self.failures)} of {len(self.record['students'])} students failed",
                [
                    RuntimeError(
                        f"{name} failed at {failure.get('step', '?')}: "
                        f"{failure.get('error', '?')}: {failure.get('message', '')}"
                    )
                    for name, failure in self.failures.items()
                ],
            )
