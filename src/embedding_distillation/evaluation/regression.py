"""Did distillation make the student worse than it started? The check before a Hub push.

A student whose STS Benchmark dev score fell more than ``REGRESSION_TOLERANCE`` points below
its untrained self is not pushed unless ``allow_regression`` says so: the Hub never receives a
regression silently. Dev, not test: test is the figure the report states, never a gate.
"""

import logging
from typing import Any

logger = logging.getLogger(__name__)

# STS-B dev points (cosine Spearman x100) a pushed student may lose against its untrained self.
REGRESSION_TOLERANCE = 0.2


def sts_dev_change(metrics: dict[str, Any]) -> tuple[float, float] | None:
    """``(untrained, trained)`` STS-B dev Spearman x100 from the evaluation's metrics, if both."""
    before = metrics.get("student_before", {}).get("sts_dev", {}).get("spearman")
    after = metrics.get("student_after", {}).get("sts_dev", {}).get("spearman")
    return None if before is None or after is None else (float(before), float(after))


def check_push(
    change: tuple[float, float] | None,
    *,
    repo_id: str,
    allow: bool,
    override: str = "distillation.allow_regression: true",
    dev_pairs: str = "the catalog entry sts_benchmark_dev; `python -m embedding_distillation.demo`"
    " fetches them",
) -> None:
    """Refuse to push a student that regressed on STS-B dev, unless ``allow``.

    Args:
        change: ``(untrained, trained)`` STS-B dev Spearman x100; ``None`` when not measured
            (one warning: the push goes ahead unchecked).
        repo_id: The model repo the push goes to (named in the message).
        allow: ``allow_regression``.
        override: How the caller sets ``allow_regression`` (named in the message).
        dev_pairs: Where the STS-B dev pairs come from (named in the warning).

    Raises:
        ValueError: The trained student is more than ``REGRESSION_TOLERANCE`` points below the
            untrained one and ``allow`` is false.
    """
    if change is None:
        logger.warning(
            "Pushing to %s without a regression check: there is no STS Benchmark dev score of "
            "the untrained and trained student (STS-B dev pairs: %s).",
            repo_id,
            dev_pairs,
        )
        return
    before, after = change
    if after >= before - REGRESSION_TOLERANCE:
        return
    if allow:
        logger.warning(
            "Pushing to %s although the student's STS-B dev score fell from %.2f to %.2f "
            "(allow_regression is true).",
            repo_id,
            before,
            after,
        )
        return
    raise ValueError(
        f"Not pushing the student to {repo_id}: distillation made it worse. Its STS Benchmark "
        f"dev score fell from {before:.2f} (untrained) to {after:.2f} ({after - before:+.2f}), "
        f"more than the {REGRESSION_TOLERANCE} points allowed. The trained student is saved "
        f"locally. Set {override} to push it anyway."
    )
