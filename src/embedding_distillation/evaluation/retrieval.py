"""The retrieval yardstick: held-out vital articles, found by their short description.

- :func:`local_retrieval_task` is an mteb retrieval task over local rows (the demo builds them:
  ``data/01_raw/retrieval/vital_retrieval.parquet``): each ``query`` has one relevant document,
  its own ``document``, among the documents of all rows. mteb's evaluator scores it; the main
  score is nDCG@10, and the report gives nDCG@10 and recall@10 x100.
- :class:`TeacherIndexEncoder` runs the same task with the queries encoded by one model and the
  documents by the teacher: whether a student can serve queries against an index the teacher
  built.
"""

import logging
import time
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np
from datasets import Dataset

from embedding_distillation.evaluation.encoders import EvaluatedModel
from embedding_distillation.evaluation.mteb_tasks import CosineScoring, model_meta, run_encoder

if TYPE_CHECKING:
    from mteb import AbsTask, TaskResult
    from mteb.models.model_meta import ModelMeta

logger = logging.getLogger(__name__)

RETRIEVAL_TASK = "VitalArticlesRetrieval"
RETRIEVAL_COLUMNS = ("id", "query", "document")
REBUILD = "Rebuild them with `python -m embedding_distillation.demo`."
TEACHER_INDEX = "teacher_index"  # the asymmetric variant's name: <role>+teacher_index/<source>


@cache
def _local_retrieval_class() -> type:
    """An mteb retrieval task reading its queries and documents from a Dataset in memory."""
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.task_metadata import TaskMetadata

    class LocalRetrievalTask(AbsTaskRetrieval):  # type: ignore[misc]
        metadata = TaskMetadata(
            name=RETRIEVAL_TASK,
            description=(
                "Find the lead extract of an English Wikipedia vital article from its short "
                "description; 1,000 articles held out of every corpus this project builds."
            ),
            reference="https://en.wikipedia.org/wiki/Wikipedia:Vital_articles",
            dataset={"path": "local/vital_retrieval", "revision": "v1"},
            type="Retrieval",
            category="t2t",
            modalities=["text"],
            eval_splits=["test"],
            eval_langs=["eng-Latn"],
            main_score="ndcg_at_10",
            domains=["Encyclopaedic", "Written"],
            license="cc-by-sa-4.0",
            annotations_creators="derived",
            dialect=[],
            sample_creation="found",
            bibtex_citation="",
        )

        def __init__(self, rows: Dataset) -> None:
            super().__init__()
            self._rows = rows
            # Results at different sizes are not comparable: the size is part of the revision.
            dataset = {**self.metadata.dataset, "revision": f"v1-{len(rows)}"}
            self.metadata = self.metadata.model_copy(update={"dataset": dataset})

        def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
            if self.data_loaded:
                return
            ids = [str(i) for i in self._rows["id"]]
            self.dataset = {
                "default": {
                    "test": {
                        "queries": Dataset.from_dict({"id": ids, "text": self._rows["query"]}),
                        "corpus": Dataset.from_dict({"id": ids, "text": self._rows["document"]}),
                        "relevant_docs": {i: {i: 1} for i in ids},
                        "top_ranked": None,
                    }
                }
            }
            self.data_loaded = True

    return LocalRetrievalTask


def local_retrieval_task(rows: Dataset, max_articles: int | None = None) -> "AbsTask":
    """The retrieval task on ``rows`` (``id``, ``query``, ``document``).

    With ``max_articles``, on the first rows only (the demo's are in random order, so a prefix
    is a random sample). Each row gives a query and a document, so fewer rows also mean fewer
    documents to search: scores are comparable only at the same size.

    Raises:
        ValueError: A column is missing, there are no rows, an id repeats or a text is empty.
    """
    missing = [column for column in RETRIEVAL_COLUMNS if column not in rows.column_names]
    if missing:
        raise ValueError(
            f"The retrieval rows lack column(s) {missing}; they have {rows.column_names}. "
            + REBUILD
        )
    if max_articles is not None:
        rows = rows.select(range(min(max_articles, len(rows))))
    rows = rows.select_columns(list(RETRIEVAL_COLUMNS))
    ids = [str(i) for i in rows["id"]]
    if not ids or len(set(ids)) != len(ids):
        problem = "no rows" if not ids else f"{len(ids) - len(set(ids))} repeated id(s)"
        raise ValueError(
            f"The retrieval rows need one unique id per row, got {problem}. " + REBUILD
        )
    empty = [
        i
        for i, q, d in zip(ids, rows["query"], rows["document"], strict=True)
        if not (q and q.strip() and d and d.strip())
    ]
    if empty:
        raise ValueError(
            f"{len(empty)} retrieval row(s) have an empty query or document (ids {empty[:5]}). "
            + REBUILD
        )
    return _local_retrieval_class()(rows)


class TeacherIndexEncoder(CosineScoring):
    """Queries through one mteb encoder, documents through the teacher's (``prompt_type``).

    mteb encodes a retrieval corpus with ``PromptType.document`` and its queries with
    ``PromptType.query``; documents go to ``documents``, everything else to ``queries``.

    Args:
        queries: The evaluated model's mteb encoder.
        documents: The teacher's mteb encoder (cached: one encoding serves every model).
        model: The evaluated model, named ``<role>+teacher_index/<source>`` for mteb.
        role: Its role in the comparison.
    """

    def __init__(self, queries: Any, documents: Any, model: EvaluatedModel, role: str) -> None:
        self.queries = queries
        self.documents = documents
        self.mteb_model_meta: ModelMeta = model_meta(model, f"{role}+{TEACHER_INDEX}")

    def encode(
        self,
        inputs: Any,
        *,
        task_metadata: Any,
        hf_split: str,
        hf_subset: str,
        prompt_type: Any = None,
        **kwargs: Any,
    ) -> np.ndarray:
        """Documents' embeddings by the teacher, anything else's by the evaluated model."""
        from mteb.types import PromptType

        encoder = self.documents if prompt_type == PromptType.document else self.queries
        return encoder.encode(
            inputs,
            task_metadata=task_metadata,
            hf_split=hf_split,
            hf_subset=hf_subset,
            prompt_type=prompt_type,
            **kwargs,
        )


def retrieval_scores(results: Sequence[tuple["ModelMeta", "TaskResult"]]) -> dict[str, float]:
    """nDCG@10 and recall@10 x100 of the retrieval task ({} when it did not run)."""
    for _, task_result in results:
        if task_result.task_name == RETRIEVAL_TASK:
            scores = task_result.scores["test"][0]
            return {
                "ndcg_at_10": 100 * float(scores["ndcg_at_10"]),
                "recall_at_10": 100 * float(scores["recall_at_10"]),
            }
    return {}


def score_retrieval(
    encoder: Any,
    task: "AbsTask",
    *,
    model: EvaluatedModel,
    role: str,
    teacher: Any | None,
    batch_size: int,
) -> tuple[dict[str, Any], list[tuple["ModelMeta", "TaskResult"]]]:
    """A model's ``retrieval`` entry, and with ``teacher`` its ``retrieval_teacher_index``.

    ``teacher`` is the teacher's mteb encoder, which encodes the documents of the second run.
    Each entry holds ``ndcg_at_10``, ``recall_at_10`` (x100) and the ``seconds`` it took.

    Returns:
        The entries, and the mteb results for the result files.
    """
    variants: dict[str, Any] = {"retrieval": encoder}
    if teacher is not None:
        variants["retrieval_teacher_index"] = TeacherIndexEncoder(encoder, teacher, model, role)
    entries: dict[str, Any] = {}
    runs: list[tuple[ModelMeta, TaskResult]] = []
    for key, variant in variants.items():
        started = time.perf_counter()
        found = run_encoder(variant, [task], batch_size=batch_size)
        entries[key] = {
            **retrieval_scores(found),
            "seconds": round(time.perf_counter() - started, 1),
        }
        logger.info("%s %s: %s", role, key, entries[key])
        runs += found
    return entries, runs
