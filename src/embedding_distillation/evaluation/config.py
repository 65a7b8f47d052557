"""The ``evaluation`` parameter group: held-out split, timing, MTEB tasks, embedding cache."""

from dataclasses import dataclass
from typing import Any

from embedding_distillation.evaluation.mteb_tasks import check_task_names


@dataclass(frozen=True)
class EvaluationConfig:
    """The ``evaluation`` parameter group.

    Attributes:
        heldout_fraction: Fraction of the embedded rows kept out of training for evaluation.
        max_heldout_rows: Cap on held-out rows (evaluation cost stays bounded).
        speed_texts: Texts timed to measure texts/s of teacher and student.
        seed: Seed of the train/held-out split.
        mteb_tasks: MTEB task names (``mteb.get_tasks()``) run on every model besides the STS
            Benchmark, which runs whenever its pairs are there; their data comes from the Hub.
        retrieval_max_articles: Held-out articles of the retrieval task used (each is a query
            and a document); ``None``: all of them.
        embedding_cache_dir: Folder where the teacher's and the untrained student's embeddings
            are kept between runs (``None``: not kept).
    """

    heldout_fraction: float = 0.1
    max_heldout_rows: int = 2000
    speed_texts: int = 256
    seed: int = 42
    mteb_tasks: tuple[str, ...] = ()
    retrieval_max_articles: int | None = None
    embedding_cache_dir: str | None = None

    def __post_init__(self) -> None:
        if not 0 < self.heldout_fraction < 1:
            raise ValueError(
                f"evaluation.heldout_fraction must be in (0, 1), got {self.heldout_fraction!r}."
            )
        for name in ("max_heldout_rows", "speed_texts"):
            _check_positive(name, getattr(self, name))
        if self.retrieval_max_articles is not None:
            _check_positive("retrieval_max_articles", self.retrieval_max_articles, " or null (all)")
        cache_dir = self.embedding_cache_dir
        if cache_dir is not None and not (isinstance(cache_dir, str) and cache_dir.strip()):
            raise ValueError(
                "evaluation.embedding_cache_dir must be a folder path or null (no cache), got "
                f"{cache_dir!r}."
            )
        tasks = self.mteb_tasks
        if tasks is None or isinstance(tasks, str):
            tasks = () if tasks is None else tasks.split()  # --params "evaluation.mteb_tasks=A B"
        if not isinstance(tasks, list | tuple) or not all(
            isinstance(name, str) and name for name in tasks
        ):
            raise ValueError(
                "evaluation.mteb_tasks must be a list of MTEB task names, e.g. "
                f"[STSBenchmark, SICK-R], got {self.mteb_tasks!r}."
            )
        object.__setattr__(self, "mteb_tasks", tuple(tasks))

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> "EvaluationConfig":
        """Build from the Kedro ``evaluation`` group, rejecting unknown keys by name."""
        from embedding_distillation.params import from_params

        return from_params(cls, params, group="evaluation")

    def check_tasks(self) -> None:
        """Fail now, naming close matches, on an MTEB task name that does not exist."""
        check_task_names(self.mteb_tasks)


def _check_positive(name: str, value: Any, alternative: str = "") -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(
            f"evaluation.{name} must be a positive integer{alternative}, got {value!r}."
        )
