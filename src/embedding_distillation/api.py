"""The seed's Python API: ``TeacherEmbeddingsGenerator``, ``EmbeddingDistillationTrainer``.

Argument handling only: the work is done by the same core functions the Kedro nodes call.
"""

import logging
import os
from dataclasses import replace
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
from embedding_distillation.encoding.run import encode_to_shards
from embedding_distillation.evaluation.regression import check_push
from embedding_distillation.hub import EmbeddingsPusher, ModelCardInfo, push_model, slug
from embedding_distillation.params import layer_list
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
