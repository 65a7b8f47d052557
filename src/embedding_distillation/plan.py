"""The dry run: check a run's parameters, data and models, and say what the run would do.

``kedro run --params dry_run=true`` (:class:`~embedding_distillation.dry_run.DryRunner`) calls
these functions instead of running the nodes: they read the corpus or the stored embeddings,
load the teacher and the student, and return the plan as lines of text (rows, shards, columns,
expected disk size, training steps per process, Hub pushes). Nothing is encoded, trained or
written. The same functions work from a notebook.
"""

import logging
import math
from dataclasses import dataclass, replace
from typing import Any

import pyarrow.compute as pc
from datasets import Dataset, IterableDataset

from embedding_distillation import extras
from embedding_distillation.compute import ComputeConfig, resolve_device
from embedding_distillation.corpus import corpus_name
from embedding_distillation.distributed import world_size
from embedding_distillation.encoding.config import EncodingConfig
from embedding_distillation.encoding.engine import EncodingJob, ShardEncoder, prepare_encoding
from embedding_distillation.evaluation.config import EvaluationConfig
from embedding_distillation.evaluation.metrics import heldout_rows
from embedding_distillation.evaluation.mteb_tasks import STS_BENCHMARK
from embedding_distillation.export.config import ExportConfig
from embedding_distillation.models import resolve_model_source
from embedding_distillation.training.config import EmbeddingTrainerConfig
from embedding_distillation.training.static import is_static_folder
from embedding_distillation.training.student import check_training_data, prepare_student
from embedding_distillation.training.tracking import (
    EVAL_HELDOUT_ROWS,
    TrainingEvaluation,
    best_metric,
    measurable,
)
from embedding_distillation.training.trainer import training_steps

logger = logging.getLogger(__name__)

BYTES_PER_VALUE = {"float32": 4, "float16": 2}
ROW_ID_BYTES = 8


@dataclass
class EncodingPlan:
    """What an encoding run would do.

    Attributes:
        lines: The plan, for people.
        num_rows: Rows that would be encoded.
        stand_in: One zero-filled row with the columns the run would write, for checking a
            training run against embeddings that do not exist yet.
    """

    lines: list[str]
    num_rows: int
    stand_in: Dataset


def plan_teacher_embeddings(
    corpus: Dataset | IterableDataset, params: dict[str, Any], compute: dict[str, Any]
) -> EncodingPlan:
    """Validate the encoding run (corpus, text column, options, teacher) and describe it.

    Args:
        corpus: The source rows.
        params: The ``teacher_embeddings`` parameter group.
        compute: The ``compute`` parameter group.
    """
    config = EncodingConfig.from_params(params)
    compute_config = ComputeConfig.from_params(compute)
    job = prepare_encoding(corpus, config, compute_config, source_name=corpus_name(corpus))
    encoder = ShardEncoder(job).teacher()  # loads the teacher: the check that its weights load
    columns = encoder.columns()
    value_bytes = BYTES_PER_VALUE[config.embedding_dtype]
    num_rows = job.expected_rows or 0
    embedding_bytes = num_rows * (sum(columns.values()) * value_bytes + ROW_ID_BYTES)
    text_bytes = _text_bytes(job, num_rows)
    batches = (
        f"batches of up to {config.max_tokens_per_batch:,} padded tokens"
        if config.max_tokens_per_batch
        else f"batches of {compute_config.batch_size} texts"
    )
    if not job.streaming:
        rows = f"{num_rows:,} rows to encode"
    elif num_rows:
        rows = f"streamed, about {num_rows:,} rows (invalid texts are counted as they come)"
    else:
        rows = "streamed, row count unknown until the stream ends (figures below assume 0)"
    lines = [
        f"teacher: {config.teacher_model} ({_parameters(encoder.model)} parameters, "
        f"max {encoder.max_seq_length} tokens) on {resolve_device(compute_config.device)} "
        f"in {compute_config.precision}",
        f"corpus: {job.source_name}: {rows} from column {config.text_column!r}"
        + (f" ({job.skipped:,} invalid texts skipped)" if job.skipped else ""),
        "columns: "
        + ", ".join(f"{name} ({dim}-d)" for name, dim in columns.items())
        + f", stored as {config.embedding_dtype}",
        f"shards: {-(-num_rows // job.shard_size):,} of up to {job.shard_size:,} rows; "
        f"{batches}, sorted by length{_processes('; shared by ')}",
        f"disk: about {_megabytes(embedding_bytes + text_bytes)} before compression "
        f"({_megabytes(embedding_bytes)} embeddings and row ids, {_megabytes(text_bytes)} text)",
        _push_line(config, num_rows),
    ]
    stand_in = Dataset.from_dict(
        {config.text_column: [""], **{name: [[0.0] * dim] for name, dim in columns.items()}}
    )
    return EncodingPlan(lines, num_rows, stand_in)


def plan_distillation(
    embeddings: Dataset,
    num_rows: int,
    params: dict[str, Any],
    compute: dict[str, Any],
    evaluation: dict[str, Any],
    export: dict[str, Any] | None = None,
    sts_pairs: Dataset | None = None,
    sts_dev_pairs: Dataset | None = None,
) -> list[str]:
    """Validate the training run against the (stored or planned) embeddings and describe it.

    Args:
        embeddings: The stored teacher embeddings, or the stand-in from
            ``EncodingPlan.stand_in`` when this run would make them.
        num_rows: Rows of embeddings the run would train and evaluate on.
        params: The ``distillation`` parameter group.
        compute: The ``compute`` parameter group.
        evaluation: The ``evaluation`` parameter group (MTEB task names are checked).
        export: The ``export`` parameter group (formats and their packages are checked).
        sts_pairs: The STS Benchmark pairs, when the catalog has them.
        sts_dev_pairs: The STS Benchmark dev pairs, when the catalog has them.
    """
    config = EmbeddingTrainerConfig.from_params(params, compute)
    eval_config = EvaluationConfig.from_params(evaluation)
    eval_config.check_tasks()
    export_config = ExportConfig.from_params(export)
    target_dim = check_training_data(embeddings, config)
    heldout = heldout_rows(num_rows, eval_config) if num_rows >= 2 else 0
    tracked = TrainingEvaluation(heldout=embeddings if heldout else None, sts_dev=sts_dev_pairs)
    metric = best_metric(config, tracked)
    # Loads the student, which checks it too. A PCA head has the shape of a learned one; only
    # the real run has the targets to fit it on. A static student is not distilled here.
    planned = replace(config, projection="learned") if config.projection == "pca" else config
    student = prepare_student(planned, target_dim, shape_only=True)
    train_rows = num_rows - heldout
    steps = training_steps(config, train_rows)  # per process: divided by world_size()
    shape = " -> ".join(type(module).__name__ for module in student)
    return [
        f"student: {config.student_model} ({_parameters(student)} parameters; {shape})",
        *([_static_line(config, student)] if config.student_type == "static" else []),
        f"target: {config.target_column} ({target_dim}-d), {_loss(config)}"
        if target_dim is not None
        else "target: the hidden-state term alone (no embedding column)",
        *(
            [
                f"hidden-state term: student layer -> teacher layer {config.hidden_state_layer_map}"
                f", weight {config.hidden_state_weight:g}"
            ]
            if config.hidden_state_layer_map
            else []
        ),
        f"training: {train_rows:,} rows, {config.num_epochs} epoch(s) of batch "
        f"{config.batch_size}{_processes(' x ')} = {steps:,} steps at learning rate "
        f"{config.learning_rate:g}",
        _tracking_line(config, tracked, metric, heldout),
        _evaluation_line(heldout, eval_config, sts_pairs),
        _exports_line(config, export_config, named=(export or {}).get("formats") is not None),
        f"model push: {config.hub_model_id}" if config.push_to_hub else "model push: none",
    ]


def _tracking_line(
    config: EmbeddingTrainerConfig, tracked: TrainingEvaluation, metric: str | None, heldout: int
) -> str:
    if metric is None:
        return "evaluated while training: no (no held-out targets or STS-B dev pairs)"
    available = measurable(config, tracked)
    on = [f"STS-B dev ({len(tracked.sts_dev):,} pairs)"] if tracked.sts_dev is not None else []
    if "heldout_cosine" in available:
        on.append(f"{min(heldout, EVAL_HELDOUT_ROWS):,} held-out rows")
    every = f"every {config.eval_steps:,} steps, " if config.eval_steps else ""
    kept = "the best step by" if config.load_best_model_at_end else "the last step; best by"
    return (
        f"evaluated while training: before the first step, {every}after the last, on "
        f"{' and '.join(on)}; keeps {kept} {metric}"
    )


def _evaluation_line(heldout: int, config: EvaluationConfig, sts_pairs: Dataset | None) -> str:
    benchmarks = [f"STS Benchmark ({len(sts_pairs):,} pairs)"] if sts_pairs is not None else []
    benchmarks += [name for name in config.mteb_tasks if not (benchmarks and name == STS_BENCHMARK)]
    measured = ", ".join(benchmarks) if benchmarks else "no benchmark (no STS Benchmark pairs)"
    return f"evaluation: {heldout:,} held-out rows; {measured}"


def _exports_line(config: EmbeddingTrainerConfig, export: ExportConfig, *, named: bool) -> str:
    if not export.formats and named:
        return "exports: none (export.formats is [])"
    if not export.formats:
        return (
            "exports: none (export.formats is null and the export extra is not installed: "
            f"{extras.install_command('export')})"
        )
    if config.student_type == "static":
        return "exports: none (a static student is its own deployable form)"
    return (
        f"exports: {', '.join(export.formats or ())}, each checked against the trained student "
        "on the held-out texts"
    )


def _static_line(config: EmbeddingTrainerConfig, student: Any) -> str:
    """What the static student's distillation will make (it runs when training starts)."""
    embedding = student[0]
    if is_static_folder(resolve_model_source(config.student_model, what="student_model")):
        return f"static student: {config.student_model} is static already, loaded as it is"
    sif = config.static_sif_coefficient
    return (
        f"static student: model2vec distils the vocabulary of {config.student_model} (up to "
        f"{embedding.num_embeddings:,} tokens) into {embedding.embedding_dim}-d vectors "
        f"(PCA {config.static_pca_dims or 'off'}, SIF {'off' if sif is None else f'{sif:g}'}) "
        "when training starts: one forward pass per token"
    )


def _push_line(config: EncodingConfig, num_rows: int) -> str:
    if config.push_every is None:
        return "Hub push: none (push_every is null)"
    repo = config.repo_id or "<token's user>/<corpus name>-embeddings"
    commits = max(1, math.ceil(num_rows / config.push_every))
    return f"Hub push: about {commits} commit(s) of new shards to {repo}"


def _text_bytes(job: EncodingJob, num_rows: int, sample_rows: int = 1000) -> int:
    """UTF-8 bytes of the texts to encode (a stream: its first rows' mean times ``num_rows``)."""
    column = job.config.text_column
    if isinstance(job.corpus, IterableDataset):
        sample = [row[column] for row in job.corpus.take(sample_rows)]
        sizes = [len(text.encode()) for text in sample if isinstance(text, str)]
        return round(num_rows * sum(sizes) / len(sizes)) if sizes else 0
    assert job.row_ids is not None  # a map-style corpus was scanned
    total = 0
    for batch in job.corpus.select(job.row_ids).with_format("arrow").iter(batch_size=10_000):
        total += pc.sum(pc.binary_length(batch[column])).as_py() or 0
    return total


def _processes(prefix: str) -> str:
    """``prefix`` and the process count under torchrun (they share the work), else ``""``."""
    world = world_size()
    return f"{prefix}{world} processes" if world > 1 else ""


def _parameters(model: Any) -> str:
    count = sum(p.numel() for p in model.parameters())
    return f"{count / 1e6:.1f}M" if count >= 1e6 else f"{count:,}"


def _megabytes(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


def _loss(config: EmbeddingTrainerConfig) -> str:
    """The loss in words, e.g. ``cosine loss + 20 x in-batch similarity MSE``."""
    similarity = f"{config.similarity_weight:g} x in-batch similarity MSE"
    if config.loss_type == "similarity":
        return f"{similarity} alone"
    return f"{config.loss_type} loss" + (f" + {similarity}" if config.similarity_weight else "")
