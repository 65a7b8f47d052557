"""``kedro run --params dry_run=true``: every check, then the plan, and no node runs.

Kedro's session picks the runner of a run, so the project's session
(:class:`~embedding_distillation.session.ProjectSession`, ``SESSION_CLASS`` in ``settings.py``)
gives a run whose ``dry_run`` parameter is true to :class:`DryRunner` instead of the runner asked
for. Kedro filters the pipeline (``--pipeline``, ``--from-nodes``, ...), builds the catalog and
calls the ``before_pipeline_run`` hooks as for any run; the runner then reads what the plan needs
(the corpus, the parameters, the stored embeddings), logs the plan and returns without running a
node. The command ends as a successful run does; a failed check ends it as a failed node would.
The checks and the plan are in :mod:`embedding_distillation.plan`, which notebooks can call
directly.
"""

import logging
from typing import TYPE_CHECKING, Any

from kedro.io.core import DatasetError
from kedro.pipeline import Pipeline
from kedro.runner import AbstractRunner

from embedding_distillation.students import student_options

if TYPE_CHECKING:
    from datasets import Dataset

    from embedding_distillation.plan import EncodingPlan

# Heavy imports (torch, datasets) are deferred: every ``kedro`` command loads the settings.
logger = logging.getLogger(__name__)
# The plan itself: conf/logging.yml prints its lines as they are (rich would re-wrap them).
plan_logger = logging.getLogger(f"{__name__}.plan")
STUDENT_MODEL = "student_model"


class DryRunner(AbstractRunner):
    """Checks and plans the ``teacher_embeddings`` and ``distillation`` parts of a pipeline.

    Nothing is encoded, trained or written: no node runs, and the run's result is empty.
    """

    def run(
        self,
        pipeline: Pipeline,
        catalog: Any,
        hook_manager: Any = None,
        run_id: str | None = None,
        only_missing_outputs: bool = False,
    ) -> dict[str, Any]:
        """Log the plan of ``pipeline`` (Kedro's warm-up and timing lines would be misleading)."""
        self._run(pipeline, catalog, hook_manager, run_id)
        return {}

    def _run(
        self,
        pipeline: Pipeline,
        catalog: Any,
        hook_manager: Any = None,
        run_id: str | None = None,
    ) -> None:
        lines = plan_lines(pipeline, catalog)
        logger.info("Dry run: the checks passed. The plan:")
        plan_logger.info("\n".join(lines))
        logger.info("Nothing was encoded, trained or written. Drop dry_run=true to run it.")

    def _get_executor(self, max_workers: int) -> None:
        return None  # nothing runs


def plan_lines(pipeline: Pipeline, catalog: Any) -> list[str]:
    """The plan of the ``teacher_embeddings`` and ``distillation`` parts of ``pipeline``.

    Args:
        pipeline: The (filtered) pipeline of the run.
        catalog: The run's catalog: parameters, corpus, stored embeddings, STS Benchmark pairs.
    """
    from embedding_distillation import plan

    outputs = pipeline.all_outputs()
    lines: list[str] = []
    encoding = None
    if "teacher_embeddings" in outputs:
        encoding = plan.plan_teacher_embeddings(
            catalog.load("corpus"),
            catalog.load("params:teacher_embeddings"),
            catalog.load("params:compute"),
        )
        lines += ["teacher_embeddings:", *(f"  {line}" for line in encoding.lines)]
    # One student ("student_model"), or one per namespace ("<name>.student_model").
    students = sorted(
        name.removesuffix(STUDENT_MODEL).rstrip(".")
        for name in outputs
        if name == STUDENT_MODEL or name.endswith(f".{STUDENT_MODEL}")
    )
    if students:
        embeddings, num_rows = _embeddings_for_plan(catalog, encoding)
    for student in students:
        options = catalog.load("params:distillation")
        if student:
            options = student_options(options, student, catalog.load(f"params:students.{student}"))
        steps = plan.plan_distillation(
            embeddings,
            num_rows,
            options,
            catalog.load("params:compute"),
            catalog.load("params:evaluation"),
            catalog.load("params:export") if "params:export" in catalog else None,
            catalog.load("sts_benchmark") if "sts_benchmark" in catalog else None,
            catalog.load("sts_benchmark_dev") if "sts_benchmark_dev" in catalog else None,
        )
        title = f"distillation ({student}):" if student else "distillation:"
        lines += [title, *(f"  {line}" for line in steps)]
    if "students_comparison" in outputs:
        lines += [
            "comparison:",
            f"  compare_students -> students_comparison(_report, _plot) of {', '.join(students)}",
        ]
    return lines


def _embeddings_for_plan(catalog: Any, encoding: "EncodingPlan | None") -> tuple["Dataset", int]:
    if encoding is not None:
        return encoding.stand_in, encoding.num_rows
    try:
        stored = catalog.load("teacher_embeddings").rows
    except DatasetError as e:
        raise ValueError(
            "The distillation pipeline needs stored teacher embeddings and there are none yet "
            f"({e}). Run `kedro run --pipeline teacher_embeddings` first, or dry-run both "
            "pipelines together (`kedro run --params dry_run=true`)."
        ) from e
    return stored, len(stored)
