"""Quality tracked while the student trains, and the best evaluated step kept.

Distillation can make a student worse on what it was good at (all-MiniLM-L6-v2 lost STS-B on
the demo) while its loss falls. So the trainer evaluates the student before the first step,
every ``eval_steps`` and after the last step, through sentence-transformers evaluators: STS-B
dev (never test: test is what the report states) and agreement with the teacher on a bounded
sample of held-out rows. :class:`BestStepCallback` keeps the weights of the best evaluated step,
step 0 included, and puts them back at the end: a run that only makes the student worse ends
with the student it started from.

Not the trainer's own ``load_best_model_at_end``: it never counts step 0 (``eval_on_start`` does
not compete for best) and needs a full checkpoint at every evaluation.
"""

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.base.evaluation.evaluator import BaseEvaluator
from sentence_transformers.base.evaluation.sequential import SequentialEvaluator
from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from embedding_distillation.training.config import EmbeddingTrainerConfig

logger = logging.getLogger(__name__)

# Held-out rows the teacher agreement is measured on at each evaluation (a fixed sample).
EVAL_HELDOUT_ROWS = 500
STS_DEV = "sts_dev"
HELDOUT = "heldout"
# The evaluators' metric names, and the trainer's (``eval_`` + theirs) for each best metric.
STS_DEV_SPEARMAN = f"{STS_DEV}_spearman_cosine"
METRIC_KEYS = {
    "sts_dev": f"eval_{STS_DEV_SPEARMAN}",
    "heldout_cosine": f"eval_{HELDOUT}_cosine",
}
STS_COLUMNS = ("sentence1", "sentence2", "score")
# How much a trained step must beat the untrained student (step 0) by to replace it, in the
# metric's own unit: 0.2 STS-B dev points (the size of the differences that come and go between
# two evaluations of nearly equal students on the 1,500 dev pairs, which did not carry over to
# the test split in our runs: benchmarks/RESULTS_quality.md). Between trained steps the best
# one wins.
MIN_GAIN_OVER_UNTRAINED = {"sts_dev": 0.002, "heldout_cosine": 0.0}
# Files a checkpoint carries for the best step when it is not the checkpoint's own step.
BEST_WEIGHTS_FILE = "best_step.pt"
BEST_STATE_FILE = "best_step.json"


@dataclass(frozen=True)
class TrainingEvaluation:
    """What the student is evaluated on while it trains.

    Attributes:
        heldout: Rows kept out of training, with texts and the stored teacher embeddings; the
            first ``EVAL_HELDOUT_ROWS`` are used.
        sts_dev: STS Benchmark dev pairs (``sentence1``, ``sentence2``, ``score``).
    """

    heldout: Dataset | None = None
    sts_dev: Dataset | None = None

    @property
    def empty(self) -> bool:
        """True when there is nothing to evaluate on."""
        return self.heldout is None and self.sts_dev is None


def measurable(config: EmbeddingTrainerConfig, evaluation: TrainingEvaluation) -> list[str]:
    """The best-step metrics ``evaluation`` can give, in order of preference.

    ``sts_dev`` with STS-B dev pairs; ``heldout_cosine`` with held-out rows that hold the
    training target (rows of hidden states alone do not).
    """
    metrics = ["sts_dev"] if evaluation.sts_dev is not None else []
    heldout = evaluation.heldout
    if heldout is not None and len(heldout) and config.target_column in heldout.column_names:
        metrics.append("heldout_cosine")
    return metrics


def best_metric(config: EmbeddingTrainerConfig, evaluation: TrainingEvaluation) -> str | None:
    """The metric that picks the best step: ``sts_dev``, ``heldout_cosine``, or ``None``.

    ``None`` (nothing to pick on) only when ``metric_for_best_model`` is ``None`` and
    ``evaluation`` can give neither.

    Raises:
        ValueError: ``metric_for_best_model`` names a metric ``evaluation`` cannot give.
    """
    available = measurable(config, evaluation)
    metric = config.metric_for_best_model
    if metric is None:
        return available[0] if available else None
    if metric in available:
        return metric
    if metric == "sts_dev":
        raise ValueError(
            "metric_for_best_model is 'sts_dev' but there are no STS Benchmark dev pairs "
            "(data/01_raw/sts_benchmark/dev.parquet, catalog entry sts_benchmark_dev). Fetch "
            "them with `python -m embedding_distillation.demo` (from Python: pass them as "
            "train(..., sts_dev=pairs)), or set metric_for_best_model: heldout_cosine (or null "
            "to pick whatever is there)."
        )
    raise ValueError(
        "metric_for_best_model is 'heldout_cosine' but no held-out rows with the training "
        f"target {config.target_column!r} were given to evaluate on; pass them (the pipeline "
        "does; from Python: train(..., eval_dataset=rows)), or set metric_for_best_model: "
        "sts_dev (or null to pick whatever is there)."
    )


class TeacherAgreementEvaluator(BaseEvaluator):
    """Mean cosine (and MSE) of the student's embeddings to stored teacher embeddings.

    Args:
        texts: The texts.
        targets: Their teacher embeddings (rows, dim).
        batch_size: Texts per encode call.
        name: Prefix of the metric names (``heldout`` -> ``heldout_cosine``).
    """

    def __init__(
        self, texts: list[str], targets: np.ndarray, *, batch_size: int, name: str = HELDOUT
    ) -> None:
        super().__init__()
        self.texts = texts
        self.targets = np.asarray(targets, dtype=np.float32)
        self.batch_size = batch_size
        self.name = name
        self.primary_metric = "cosine"

    def __call__(
        self, model: Any, output_path: str | None = None, epoch: float = -1, steps: int = -1
    ) -> dict[str, float]:
        """``{<name>_cosine, <name>_mse}`` for ``model``."""
        embeddings = np.asarray(
            model.encode(
                self.texts,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                show_progress_bar=False,
            ),
            dtype=np.float32,
        )  # (rows, dim)
        norms = np.linalg.norm(embeddings, axis=1) * np.linalg.norm(self.targets, axis=1)
        cosine = np.sum(embeddings * self.targets, axis=1) / np.maximum(norms, 1e-12)
        metrics = {
            "cosine": float(cosine.mean()),
            "mse": float(np.mean((embeddings - self.targets) ** 2)),
        }
        return self.prefix_name_to_metrics(metrics, self.name)


def build_evaluator(
    model: SentenceTransformer, evaluation: TrainingEvaluation, config: EmbeddingTrainerConfig
) -> SequentialEvaluator | None:
    """The evaluators of :func:`measurable`'s metrics (STS-B dev first); ``None`` for none.

    Raises:
        ValueError: The student's output is not as wide as the held-out targets.
    """
    available = measurable(config, evaluation)
    evaluators: list[BaseEvaluator] = []
    if "sts_dev" in available:
        assert evaluation.sts_dev is not None
        evaluators.append(sts_dev_evaluator(evaluation.sts_dev, config.batch_size))
    if "heldout_cosine" in available:
        assert evaluation.heldout is not None
        evaluators.append(_agreement_evaluator(model, evaluation.heldout, config))
    return SequentialEvaluator(evaluators) if evaluators else None


def sts_dev_evaluator(pairs: Dataset, batch_size: int) -> EmbeddingSimilarityEvaluator:
    """sentence-transformers' evaluator of cosine similarity against the STS-B dev scores."""
    missing = [column for column in STS_COLUMNS if column not in pairs.column_names]
    if missing:
        raise ValueError(
            f"The STS Benchmark dev pairs lack column(s) {missing}; they have "
            f"{pairs.column_names}. Rebuild them with `python -m embedding_distillation.demo`."
        )
    return EmbeddingSimilarityEvaluator(
        list(pairs["sentence1"]),
        list(pairs["sentence2"]),
        [float(score) / 5 for score in pairs["score"]],
        batch_size=batch_size,
        main_similarity="cosine",
        similarity_fn_names=["cosine"],
        name=STS_DEV,
        write_csv=False,
    )


def sts_dev_spearman(model: SentenceTransformer, pairs: Dataset, batch_size: int) -> float:
    """STS-B dev cosine Spearman x100 of ``model``: the figure the best step is picked on."""
    metrics = sts_dev_evaluator(pairs, batch_size)(model)
    return 100 * float(metrics[STS_DEV_SPEARMAN])


def _agreement_evaluator(
    model: SentenceTransformer, heldout: Dataset, config: EmbeddingTrainerConfig
) -> TeacherAgreementEvaluator:
    """Teacher agreement on the first ``EVAL_HELDOUT_ROWS`` held-out rows."""
    sample = heldout.select(range(min(len(heldout), EVAL_HELDOUT_ROWS)))
    targets = np.asarray(sample.with_format("numpy")[config.target_column], dtype=np.float32)
    width = model.get_embedding_dimension()
    if targets.shape[1] != width:
        raise ValueError(
            f"The held-out targets {config.target_column!r} are {targets.shape[1]}-d but the "
            f"student outputs {width}-d embeddings: they cannot be compared while training."
        )
    return TeacherAgreementEvaluator(
        list(sample[config.text_column]), targets, batch_size=config.batch_size
    )


class BestStepCallback(TrainerCallback):
    """Keeps the weights of the best evaluated step (step 0 included) and restores them at the end.

    A trained step replaces step 0 only when it beats it by more than
    ``MIN_GAIN_OVER_UNTRAINED`` (noise on the dev pairs is no reason to leave the student the
    user started from). Also asks for an evaluation after the last step, whatever
    ``eval_steps`` is. The best weights live in memory (a CPU copy) and travel in each
    checkpoint where they differ from the checkpoint's own, so a resumed run still knows them.

    Args:
        metric: ``sts_dev`` or ``heldout_cosine``.
        restore: Put the best weights back at the end (``load_best_model_at_end``).
        resume_from: The checkpoint folder a resumed run starts from.
    """

    def __init__(self, metric: str, *, restore: bool, resume_from: str | None = None) -> None:
        self.metric = metric
        self.key = METRIC_KEYS[metric]
        self.restore = restore
        self.resume_from = resume_from
        self.best_step: int | None = None
        self.best_value: float | None = None
        self._best_state: dict[str, torch.Tensor] | None = None
        self.seconds = 0.0  # spent evaluating in this process (a resumed run: since the resume)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """On a resumed run, take the best step back from the checkpoint."""
        if self.resume_from is None:
            return
        folder = Path(self.resume_from)
        if not (folder / BEST_STATE_FILE).is_file():
            logger.warning(
                "%s holds no %s: the steps before it were not evaluated (or the checkpoint is "
                "older than best-step tracking), so the best step is picked from the resumed "
                "part only, without the untrained student.",
                folder,
                BEST_STATE_FILE,
            )
            return
        best = json.loads((folder / BEST_STATE_FILE).read_text(encoding="utf-8"))
        self.best_step, self.best_value = int(best["step"]), float(best["value"])
        # The weights file is this checkpoint's own only when "saved_at" matches its step.
        weights = folder / BEST_WEIGHTS_FILE
        own = self.best_step == int(best.get("saved_at", self.best_step))
        self._best_state = (
            _cpu_copy(kwargs["model"])
            if own
            else torch.load(weights, map_location="cpu", weights_only=True)
        )

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Evaluate after the last step too."""
        if state.global_step >= state.max_steps:
            control.should_evaluate = True

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Keep the weights when the metric is the best so far."""
        metrics = kwargs.get("metrics") or {}
        self.seconds += float(metrics.get("eval_runtime", 0.0))
        if self.key not in metrics:
            return
        value = float(metrics[self.key])
        # Step 0 is the untrained student: a trained step must beat it by more than the noise.
        margin = MIN_GAIN_OVER_UNTRAINED[self.metric] if self.best_step == 0 else 0.0
        new_best = self.best_value is None or value > self.best_value + margin
        best = "best so far" if new_best else f"best: step {self.best_step}"
        logger.info("Step %d: %s (%s)", state.global_step, describe(metrics), best)
        if new_best:
            self.best_step, self.best_value = state.global_step, value
            self._best_state = _cpu_copy(kwargs["model"])

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Write the best step (and its weights, where they are not this checkpoint's)."""
        if self.best_step is None or not state.is_world_process_zero:
            return
        folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        best = {
            "step": self.best_step,
            "metric": self.metric,
            "value": self.best_value,
            "saved_at": state.global_step,
        }
        # Checkpoint folders are reused across runs: never leave another run's weights here.
        weights = folder / BEST_WEIGHTS_FILE
        weights.unlink(missing_ok=True)
        if self.best_step != state.global_step and self._best_state is not None:
            torch.save(self._best_state, weights)
        (folder / BEST_STATE_FILE).write_text(json.dumps(best), encoding="utf-8")

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Put the best step's weights back (when it is not the last step)."""
        if not self.restore or self._best_state is None or self.best_step == state.global_step:
            return
        model = kwargs["model"]
        model.load_state_dict({k: v.to(_device(model)) for k, v in self._best_state.items()})
        assert self.best_value is not None  # set with the best state
        logger.info(
            "Kept the weights of step %d (%s), the best evaluated step; the last step (%d) did "
            "not beat it.",
            self.best_step,
            describe({self.key: self.best_value}),
            state.global_step,
        )


def best_step_tracker(
    config: EmbeddingTrainerConfig, evaluation: TrainingEvaluation, resume_from: str | None
) -> BestStepCallback | None:
    """The callback that keeps the best step, or ``None`` when there is nothing to pick on."""
    metric = best_metric(config, evaluation)
    if metric is None:
        if not evaluation.empty:
            logger.info(
                "Not evaluated while training: the held-out rows hold no %r column to compare "
                "with and there are no STS-B dev pairs.",
                config.target_column,
            )
        return None
    return BestStepCallback(metric, restore=config.load_best_model_at_end, resume_from=resume_from)


def describe(metrics: dict[str, float]) -> str:
    """One readable line of an evaluation's metrics (STS-B dev x100, held-out cosine)."""
    parts = []
    if METRIC_KEYS["sts_dev"] in metrics:
        parts.append(f"STS-B dev {100 * metrics[METRIC_KEYS['sts_dev']]:.2f}")
    if METRIC_KEYS["heldout_cosine"] in metrics:
        parts.append(f"held-out cosine {metrics[METRIC_KEYS['heldout_cosine']]:.4f}")
    return ", ".join(parts)


def evaluation_curve(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The evaluations in the trainer's log: ``[{step, sts_dev, heldout_cosine, seconds}]``.

    ``sts_dev`` is Spearman x100 (as the report gives STS-B); absent values are left out.
    """
    curve = []
    for entry in log_history:
        if not any(key in entry for key in METRIC_KEYS.values()):
            continue
        point: dict[str, Any] = {"step": int(entry["step"])}
        if METRIC_KEYS["sts_dev"] in entry:
            point["sts_dev"] = 100 * float(entry[METRIC_KEYS["sts_dev"]])
        if METRIC_KEYS["heldout_cosine"] in entry:
            point["heldout_cosine"] = float(entry[METRIC_KEYS["heldout_cosine"]])
        if "eval_runtime" in entry:
            point["seconds"] = float(entry["eval_runtime"])
        curve.append(point)
    return curve


def _cpu_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


def _device(model: torch.nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")
