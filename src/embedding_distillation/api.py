"""The seed's Python API: ``TeacherEmbeddingsGenerator``, ``EmbeddingDistillationTrainer``.

Also :func:`distill_students`, several students from one set of teacher embeddings, compared.
Argument handling only: the work is done by the same core functions the Kedro nodes call.
"""

import keyword
import logging
import os
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from datasets import Dataset, IterableDataset
from sentence_transformers import SentenceTransformer

from embedding_distillation import distributed
from embedding_distillation.compute import ComputeConfig
from embedding_distillation.corpus import CorpusSource, corpus_name, load_corpus
from embedding_distillation.encoding.config import ROW_ID_COLUMN, EncodingConfig, OutputType
from embedding_distillation.encoding.job import prepare_encoding
from embedding_distillation.encoding.output import FolderOutput
from embedding_distillation.encoding.provenance import EmbeddingsProvenance
from embedding_distillation.encoding.run import encode_to_shards
from embedding_distillation.encoding.shards import MANIFEST_NAME, ShardStore
from embedding_distillation.evaluation.comparison import (
    StudentComparison,
    compare,
    render_comparison,
)
from embedding_distillation.evaluation.config import EvaluationConfig
from embedding_distillation.evaluation.metrics import split_heldout
from embedding_distillation.evaluation.regression import check_push
from embedding_distillation.evaluation.run import evaluate_distillation
from embedding_distillation.hub import EmbeddingsPusher, ModelCardInfo, push_model, slug
from embedding_distillation.models import resolve_model_source
from embedding_distillation.params import layer_list
from embedding_distillation.students import (
    StudentFailure,
    capture,
    first_shared,
    student_names,
)
from embedding_distillation.training.config import EmbeddingTrainerConfig
from embedding_distillation.training.student import (
    check_training_data,
    load_student,
    prepare_student,
)
from embedding_distillation.training.tracking import (
    TrainingEvaluation,
    best_metric,
    sts_dev_spearman,
)
from embedding_distillation.training.trainer import train_student

logger = logging.getLogger(__name__)

DEFAULT_PUSH_EVERY = 10_000


def _default_output_dir(source_name: str, output_type: str) -> Path:
    return Path("teacher_embeddings") / f"{slug(source_name) or 'corpus'}-{output_type}"


class TeacherEmbeddingsGenerator:
    """Precompute and store teacher embeddings (seed API).

    Args:
        teacher_model: Hub id or local folder of the teacher sentence-transformer.
        device: ``auto``, ``cuda``, ``mps`` or ``cpu``.
        batch_size: Texts per forward pass.
        use_fp16: Run the teacher in float16.
        use_bf16: Run the teacher in bfloat16.
        compile_model: ``torch.compile`` the teacher.
        use_flash_attention: flash_attention_2 where usable, else sdpa (one warning).
        chunk_size: Extra: rows per stored shard (unit of resume and of pushes).
        embedding_dtype: Extra: ``float32`` or ``float16`` storage.
        max_tokens_per_batch: Extra: fill batches by token budget instead of ``batch_size``.
        invalid_texts: Extra: ``skip`` (with a logged count) or ``fail`` on None/empty texts.
    """

    def __init__(
        self,
        teacher_model: str,
        device: str = "auto",
        batch_size: int = 32,
        use_fp16: bool = False,
        use_bf16: bool = False,
        compile_model: bool = False,
        use_flash_attention: bool = False,
        *,
        chunk_size: int = 1000,
        embedding_dtype: str = "float32",
        max_tokens_per_batch: int | None = None,
        invalid_texts: str = "skip",
    ) -> None:
        self.compute = ComputeConfig(
            device=device,  # type: ignore[arg-type]
            batch_size=batch_size,
            use_fp16=use_fp16,
            use_bf16=use_bf16,
            compile_model=compile_model,
            use_flash_attention=use_flash_attention,
        )
        self._options: dict[str, Any] = {
            "teacher_model": teacher_model,
            "chunk_size": chunk_size,
            "embedding_dtype": embedding_dtype,
            "max_tokens_per_batch": max_tokens_per_batch,
            "invalid_texts": invalid_texts,
        }
        EncodingConfig(**self._options)  # fail on bad options now, not at generate()

    def generate(
        self,
        source_dataset: CorpusSource,
        text_column: str = "text",
        output_type: OutputType = "final",
        layer_indices: int | list[int] | None = None,
        *,
        split: str = "train",
        max_samples: int | None = None,
        output_dir: str | os.PathLike[str] | None = None,
        streaming: bool = False,
        token: str | None = None,
    ) -> Dataset:
        """Encode ``source_dataset`` and return the texts with their embeddings.

        Args:
            source_dataset: Hub id, local file or folder, or a ``datasets.Dataset``.
            text_column: Column with the texts.
            output_type: ``final`` (final + pre-Dense columns), ``pre_dense`` or ``hidden_states``.
            layer_indices: Layers for ``hidden_states`` (``None`` = all; 0 = embeddings output).
            split: Split of the source to read.
            max_samples: Encode only the first N rows.
            output_dir: Shard folder (default ``./teacher_embeddings/<source>-<output_type>``);
                rerunning with the same folder resumes an interrupted run and encodes again
                any shard that no longer matches its sha256. One process writes a folder at a
                time: a second one fails at once with ``FolderInUseError`` naming the first.
            streaming: Read a Hub id or data files with ``datasets`` streaming: encoding starts
                at once, nothing is downloaded or cached first, and the texts are checked as
                they arrive. A resumed run reads the stream again from its start and checks
                that the rows it wrote before are still the same.
            token: Hub token that reads a private Hub dataset ``source_dataset`` (``None``:
                ``HF_TOKEN`` or the stored login); never logged or shown.

        Returns:
            A memory-mapped ``datasets.Dataset`` with ``text_column`` and the embedding columns.
        """
        config = self._config(text_column, output_type, layer_indices, split, max_samples)
        return self._run(
            source_dataset, config, output_dir=output_dir, token=token, streaming=streaming
        )

    def generate_and_push(
        self,
        source_dataset: CorpusSource,
        repo_id: str | None = None,
        text_column: str = "text",
        output_type: OutputType = "final",
        layer_indices: int | list[int] | None = None,
        push_every: int = DEFAULT_PUSH_EVERY,
        token: str | None = None,
        private: bool = True,
        *,
        split: str = "train",
        max_samples: int | None = None,
        output_dir: str | os.PathLike[str] | None = None,
        endpoint: str | None = None,
        streaming: bool = False,
    ) -> Dataset:
        """Like :meth:`generate`, pushing completed shards to ``repo_id`` every ``push_every`` rows.

        ``repo_id`` defaults to ``<token's user>/<source name>-embeddings``; ``token`` (which
        also reads a private Hub dataset ``source_dataset``) defaults to ``HF_TOKEN`` / the
        stored login; ``endpoint`` (a private Hub deployment) defaults to ``HF_ENDPOINT`` / the
        public Hub. Only new shards go up, one commit per push; when the repo already holds
        shards of the same job, they are downloaded instead of encoded again.
        With ``push_every`` below ``chunk_size``, shards of ``push_every`` rows are written, so
        that every push adds ``push_every`` rows.
        """
        config = replace(
            self._config(text_column, output_type, layer_indices, split, max_samples),
            push_every=push_every,
            repo_id=repo_id,
            private=private,
        )
        return self._run(
            source_dataset,
            config,
            output_dir=output_dir,
            token=token,
            endpoint=endpoint,
            streaming=streaming,
        )

    def _config(
        self,
        text_column: str,
        output_type: str,
        layer_indices: int | list[int] | None,
        split: str,
        max_samples: int | None,
    ) -> EncodingConfig:
        return EncodingConfig(
            **self._options,
            text_column=text_column,
            output_type=output_type,  # type: ignore[arg-type]
            layer_indices=layer_list(layer_indices),  # one layer may be a number
            split=split,
            max_samples=max_samples,
        )

    def _run(
        self,
        source: CorpusSource,
        config: EncodingConfig,
        *,
        output_dir: str | os.PathLike[str] | None,
        token: str | None,
        endpoint: str | None = None,
        streaming: bool = False,
    ) -> Dataset:
        corpus = load_corpus(
            source,
            split=config.split,
            max_samples=config.max_samples,
            streaming=streaming,
            token=token,
        )
        name = corpus_name(source)
        job = prepare_encoding(corpus, config, self.compute, source_name=name)
        folder = Path(output_dir) if output_dir else _default_output_dir(name, config.output_type)
        pusher = EmbeddingsPusher.create(
            config, source_name=job.source_name, token=token, endpoint=endpoint
        )
        # The same steps as the teacher_embeddings pipeline: encode_corpus, then the final push.
        store = encode_to_shards(job, FolderOutput(folder), pusher=pusher)
        if pusher is not None:  # under torchrun only rank 0 talks to the Hub
            distributed.on_main(lambda: pusher.push(store))
        return store.load().remove_columns(ROW_ID_COLUMN)


class EmbeddingDistillationTrainer:
    """Train a student on stored teacher embeddings (seed API).

    Args:
        config: The training options.
    """

    def __init__(self, config: EmbeddingTrainerConfig) -> None:
        self.config = config
        self.model: SentenceTransformer | None = None

    def train(
        self,
        dataset: CorpusSource,
        *,
        eval_dataset: Dataset | None = None,
        sts_dev: Dataset | None = None,
    ) -> dict[str, Any]:
        """Train on ``dataset`` (Hub id, local folder or file, or ``datasets.Dataset``).

        The trained model is saved to ``config.output_dir`` (and pushed when ``push_to_hub``)
        and kept as ``self.model``.

        Args:
            dataset: The training rows: texts and teacher embeddings.
            eval_dataset: Extra: rows kept out of training (same columns); the student's mean
                cosine to their teacher embeddings is tracked while it trains.
            sts_dev: Extra: STS Benchmark dev pairs (``sentence1``, ``sentence2``, ``score``),
                tracked while it trains. With either, the run keeps its best evaluated step
                (``metric_for_best_model``, ``load_best_model_at_end``), step 0 included.

        Returns:
            ``train_loss`` and the other training metrics.
        """
        evaluation = TrainingEvaluation(heldout=eval_dataset, sts_dev=sts_dev)
        if not evaluation.empty or self.config.metric_for_best_model is not None:
            best_metric(self.config, evaluation)  # before any model is loaded
        data = load_corpus(dataset, split=self.config.split)
        if isinstance(data, IterableDataset):
            raise TypeError(
                "EmbeddingDistillationTrainer.train needs the embeddings as a map-style dataset "
                "(it shuffles and reads them memory-mapped), got an IterableDataset. Pass the "
                "teacher-embeddings folder, a Hub id or a datasets.Dataset."
            )
        target_dim = check_training_data(data, self.config)
        model = prepare_student(self.config, target_dim, data)
        metrics = train_student(model, data, self.config, evaluation)
        refused: ValueError | None = None
        if distributed.is_main():  # under torchrun every rank holds the same trained weights
            model.save(self.config.output_dir)
            logger.info("Saved the trained student to %s", self.config.output_dir)
            if self.config.push_to_hub:
                try:
                    self._push(model, dataset, metrics, sts_dev)
                except ValueError as error:  # a regression: raised once every rank is done
                    refused = error
        distributed.barrier()  # the saved model is there for every rank after this
        self.model = model
        if refused is not None:
            raise refused
        return metrics

    def _push(
        self,
        model: SentenceTransformer,
        dataset: CorpusSource,
        metrics: dict[str, Any],
        sts_dev: Dataset | None,
    ) -> None:
        """Push the trained student, unless its STS-B dev fell below its untrained self's.

        Raises:
            ValueError: The student regressed and ``allow_regression`` is off.
        """
        assert self.config.hub_model_id is not None  # checked by the config
        change = None
        if sts_dev is not None:  # the same figures as the pipeline's check
            batch = self.config.compute.batch_size
            change = (
                sts_dev_spearman(load_student(self.config), sts_dev, batch),
                sts_dev_spearman(model, sts_dev, batch),
            )
        check_push(
            change,
            repo_id=self.config.hub_model_id,
            allow=self.config.allow_regression,
            override="EmbeddingTrainerConfig(allow_regression=True)",
            dev_pairs="train(..., sts_dev=pairs)",
        )
        card = ModelCardInfo(
            training_data=dataset if isinstance(dataset, str) else corpus_name(dataset),
            training_config=self.config.to_dict(),
            metrics=metrics,
        )
        push_model(model, self.config.hub_model_id, token=self.config.hub_token, card=card)


def distill_students(
    dataset: CorpusSource,
    students: Mapping[str, EmbeddingTrainerConfig] | Sequence[EmbeddingTrainerConfig],
    *,
    teacher_model: str | None = None,
    sts_dev: Dataset | None = None,
    sts_test: Dataset | None = None,
    retrieval: Dataset | None = None,
    gold_pairs: Dataset | None = None,
    evaluation: EvaluationConfig | None = None,
) -> StudentComparison:
    """Train students on the same teacher embeddings, evaluate each beside the teacher, compare.

    The embeddings are loaded once and split once into training and held-out rows (the
    pipeline's split, ``evaluation.heldout_fraction``). Then, student by student:
    ``EmbeddingDistillationTrainer(config).train(...)`` (which saves the model to its
    ``output_dir`` and pushes it when ``push_to_hub``) and the evaluation of the
    ``evaluate_student`` node, without exports. A student that raises is recorded with the step
    that failed and the next one runs; ``comparison.raise_failures()`` raises them together.

    Names, the teacher, output folders and Hub repos are checked before anything loads. Configs
    that share an ``output_dir`` save to ``<output_dir>/<name>`` instead (as the pipeline's
    students do), so that no student resumes from or overwrites another's checkpoints.

    Two students from a folder written by :class:`TeacherEmbeddingsGenerator`, compared::

        from embedding_distillation import EmbeddingTrainerConfig, distill_students

        comparison = distill_students(
            "teacher_embeddings/news-final",  # its manifest.json names the teacher
            {
                "minilm": EmbeddingTrainerConfig(
                    student_model="sentence-transformers/all-MiniLM-L6-v2"
                ),
                "static": EmbeddingTrainerConfig(
                    student_model="google/embeddinggemma-300m",  # the teacher, made static
                    student_type="static",
                    learning_rate=3e-3,
                ),
            },
        )  # both save to ./trained_model/<name>
        print(comparison.report)  # which student to ship, then the table
        comparison.figure().savefig("students.png")
        comparison.raise_failures()  # an ExceptionGroup when a student failed
        model = comparison.models["minilm"]

    Args:
        dataset: The teacher embeddings: a teacher-embeddings folder, a Hub id, a local file
            or folder, or a ``datasets.Dataset`` (texts and embedding columns).
        students: ``{name: config}``, or a list of configs named after their student model's
            last part (``all-MiniLM-L6-v2`` -> ``all_minilm_l6_v2``; ``_static`` added for a
            static student). A name is a Python identifier, as in the pipeline's ``students``.
        teacher_model: The teacher that made the embeddings (Hub id or folder), evaluated next
            to the students; ``None``: the one ``dataset``'s ``manifest.json`` records.
        sts_dev: STS Benchmark dev pairs (``sentence1``, ``sentence2``, ``score``), tracked
            while each student trains and scored before and after.
        sts_test: STS Benchmark test pairs for the evaluation (the report's STS-B columns).
        retrieval: Retrieval rows for the local retrieval yardstick.
        gold_pairs: Gold similarity pairs for the evaluation.
        evaluation: The evaluation options (``None``: the defaults).

    Returns:
        The comparison (its record, Markdown report and figure), the trained students by name
        and the failures by name.

    Raises:
        ValueError: Before anything loads, for an invalid or duplicate name, no teacher (a
            dataset without ``manifest.json`` and no ``teacher_model``), two configs pushing
            to the same ``hub_model_id``, two configs still sharing an ``output_dir``, or
            configs reading different splits.
        TypeError: When ``students`` is not a mapping or sequence of ``EmbeddingTrainerConfig``,
            or ``dataset`` loads as a streamed ``IterableDataset``.
    """
    configs = _separate_output_dirs(_named_configs(students))
    _check_distinct(configs)
    teacher = teacher_model if teacher_model is not None else _manifest_teacher(dataset)
    evaluation = evaluation if evaluation is not None else EvaluationConfig()
    evaluation.check_tasks()
    split = _one_split(configs)
    resolve_model_source(teacher, what="teacher_model")  # a missing folder fails before training
    rows = load_corpus(dataset, split=split)
    if isinstance(rows, IterableDataset):
        raise TypeError(
            "distill_students needs the embeddings as a map-style dataset (it splits and "
            "shuffles them), got an IterableDataset. Pass the teacher-embeddings folder, a Hub "
            "id or a datasets.Dataset."
        )
    train_rows, heldout = split_heldout(rows, evaluation)
    logger.info(
        "distill_students: %d students (%s) on %d training rows, %d held out; teacher %s",
        len(configs),
        ", ".join(configs),
        len(train_rows),
        len(heldout),
        teacher,
    )
    by_student: dict[str, dict[str, Any]] = {}
    models: dict[str, SentenceTransformer] = {}
    failures: dict[str, dict[str, Any]] = {}
    for name, config in configs.items():
        outcome = _distill_one(
            name,
            config,
            train_rows,
            heldout,
            teacher=teacher,
            evaluation=evaluation,
            sts_dev=sts_dev,
            sts_test=sts_test,
            retrieval=retrieval,
            gold_pairs=gold_pairs,
        )
        if isinstance(outcome, StudentFailure):
            by_student[name] = outcome.record()
            failures[name] = asdict(outcome)
        else:
            by_student[name], models[name] = outcome
    comparison = compare(by_student)
    if failures:
        logger.warning(
            "distill_students: %d of %d students failed (%s); the comparison lists why",
            len(failures),
            len(configs),
            ", ".join(failures),
        )
    return StudentComparison(
        record=comparison,
        models=models,
        failures=failures,
        report=render_comparison(comparison, kedro=False),
    )


def _distill_one(
    name: str,
    config: EmbeddingTrainerConfig,
    train_rows: Dataset,
    heldout: Dataset,
    *,
    teacher: str,
    evaluation: EvaluationConfig,
    sts_dev: Dataset | None,
    sts_test: Dataset | None,
    retrieval: Dataset | None,
    gold_pairs: Dataset | None,
) -> tuple[dict[str, Any], SentenceTransformer] | StudentFailure:
    """Train and evaluate one student: ``(its metrics record, its model)``, or its failure."""
    logger.info(
        "distill_students: training %s (%s) into %s", name, config.student_model, config.output_dir
    )
    trainer = EmbeddingDistillationTrainer(config)
    training, failure = capture(
        name,
        "train_student_model",
        trainer.train,
        train_rows,
        eval_dataset=heldout,
        sts_dev=sts_dev,
    )
    if failure is not None:
        return failure
    assert training is not None and trainer.model is not None  # train() returned
    result, failure = capture(
        name,
        "evaluate_student",
        evaluate_distillation,  # the evaluate_student node's core call, without exports
        trainer.model,
        heldout,
        config=config,
        compute=config.compute,
        evaluation=evaluation,
        teacher_model=teacher,
        training_metrics=training,
        gold_pairs=gold_pairs,
        sts_pairs=sts_test,
        retrieval_rows=retrieval,
        sts_dev_pairs=sts_dev,
    )
    if failure is not None:
        return failure
    assert result is not None
    return result[0], trainer.model


def _named_configs(
    students: Mapping[str, EmbeddingTrainerConfig] | Sequence[EmbeddingTrainerConfig],
) -> dict[str, EmbeddingTrainerConfig]:
    """``{name: config}``: a mapping's names checked, or names derived for a sequence."""
    if isinstance(students, Mapping):
        configs = dict(students)
    elif isinstance(students, Sequence) and not isinstance(students, str | bytes):
        configs = {}
        for index, config in enumerate(students):
            _check_config(f"students[{index}]", config)
            name = _derived_name(config)
            if name in configs:
                first = list(configs).index(name)
                raise ValueError(
                    f"students[{first}] and students[{index}] both get the name {name!r} (from "
                    f"student_model {configs[name].student_model!r} and "
                    f"{config.student_model!r}); pass a dict {{name: config}} to name them, e.g. "
                    f"{{{name!r}: ..., {name + '_2'!r}: ...}}."
                )
            configs[name] = config
    else:
        raise TypeError(
            "students must be a dict {name: EmbeddingTrainerConfig} or a list of "
            f"EmbeddingTrainerConfig, got {type(students).__name__}."
        )
    if not configs:
        raise ValueError(
            "distill_students needs at least one student: pass {name: EmbeddingTrainerConfig}."
        )
    student_names({"students": {name: {} for name in configs}})  # the pipeline's name rules
    for name, config in configs.items():
        _check_config(f"students[{name!r}]", config)
    return configs


def _check_config(where: str, config: object) -> None:
    if not isinstance(config, EmbeddingTrainerConfig):
        raise TypeError(
            f"{where} must be an EmbeddingTrainerConfig, got {type(config).__name__}; build "
            "one with EmbeddingTrainerConfig(student_model=...)."
        )


def _derived_name(config: EmbeddingTrainerConfig) -> str:
    """A student's name from its model: ``org/all-MiniLM-L6-v2`` -> ``all_minilm_l6_v2``."""
    last = re.split(r"[\\/]", config.student_model.rstrip("/\\"))[-1]
    name = re.sub(r"\W+", "_", last.lower()).strip("_") or "student"
    if not name.isidentifier():  # starts with a digit
        name = f"student_{name}"
    if config.student_type == "static":
        name = f"{name}_static"
    return f"{name}_" if keyword.iskeyword(name) else name


def _separate_output_dirs(
    configs: dict[str, EmbeddingTrainerConfig],
) -> dict[str, EmbeddingTrainerConfig]:
    """Configs sharing an ``output_dir`` save to ``<output_dir>/<name>`` (the pipeline's rule)."""
    sharing: dict[str, list[str]] = {}
    for name, config in configs.items():
        sharing.setdefault(_folder(config.output_dir), []).append(name)
    moved = {
        name: replace(configs[name], output_dir=posixpath.join(configs[name].output_dir, name))
        for names in sharing.values()
        if len(names) > 1
        for name in names
    }
    if moved:
        logger.info(
            "distill_students: students sharing an output_dir save to <output_dir>/<name>: %s",
            ", ".join(f"{name} -> {config.output_dir}" for name, config in moved.items()),
        )
    return {name: moved.get(name, config) for name, config in configs.items()}


def _check_distinct(configs: Mapping[str, EmbeddingTrainerConfig]) -> None:
    """Refuse two students pushing to one Hub repo, or still saving to one folder."""
    for key, value_of, verb, why in (
        (
            "hub_model_id",
            lambda c: c.hub_model_id if c.push_to_hub else None,
            "push to",
            "one would overwrite the other's model on the Hub",
        ),
        (
            "output_dir",
            lambda c: _folder(c.output_dir),
            "save to",
            "one would resume from or overwrite the other's checkpoints and model",
        ),
    ):
        if pair := first_shared(configs, value_of):
            (other, name), _ = pair
            raise ValueError(
                f"Students {other!r} and {name!r} both {verb} {key} "
                f"{getattr(configs[name], key)!r}: {why}. Give each config its own {key}."
            )


def _folder(path: str | os.PathLike[str]) -> str:
    return posixpath.normpath(os.fspath(path))


def _manifest_teacher(dataset: CorpusSource) -> str:
    """The teacher recorded in the ``manifest.json`` of a teacher-embeddings folder."""
    if isinstance(dataset, str | os.PathLike):
        store = ShardStore(Path(os.fspath(dataset)).expanduser())
        manifest = store.manifest() if store.manifest_path.is_file() else None
        if manifest is not None:
            return EmbeddingsProvenance.from_manifest(manifest, store.folder).teacher_model
        what = f"{os.fspath(dataset)!r} has no {MANIFEST_NAME}"
    else:
        what = f"the dataset {corpus_name(dataset)!r} is not a folder with a {MANIFEST_NAME}"
    raise ValueError(
        f"distill_students evaluates the students next to the teacher that made the embeddings, "
        f"but {what}, which would name it. Pass teacher_model=<the teacher's Hub id or folder>."
    )


def _one_split(configs: Mapping[str, EmbeddingTrainerConfig]) -> str:
    """The split every config reads (the students train on the same rows)."""
    splits = {name: config.split for name, config in configs.items()}
    if len(set(splits.values())) > 1:
        raise ValueError(
            f"The configs read different splits of the dataset ({splits}); the students are "
            "compared on the same rows: give every config the same split."
        )
    return next(iter(splits.values()))
