"""The project's Kedro hooks: early parameter checks, and outputs under ``torchrun``.

``ConfigCheckHook``: every parameter group of the run is parsed before its first node, so a
wrong value of the distillation stage stops ``kedro run`` before the encoding starts. (The dry
run is not a hook: see :mod:`embedding_distillation.dry_run`.)

``DistributedHook``: every process of a ``torchrun`` run runs the pipeline, only rank 0 writes
its outputs.

Each process runs every node (encoding and training split their work between processes inside
the encode node and the trainer), so the nodes after training see the same trained model on
every rank. Outputs must not be written K times, though: on ranks other than 0 this hook swaps
every persisted output of the run for a ``MemoryDataset``, so downstream nodes read what the
node returned and nothing reaches the disk or the Hub. ``teacher_embeddings`` is the exception:
every process wrote its shards into the folder rank 0 picked, saving it only checks that
folder, and every rank then loads the embeddings from it.
"""

import logging
import warnings
from typing import Any

from kedro.framework.hooks import hook_impl

# Heavy imports (torch, datasets) are deferred: every ``kedro`` command loads the settings.
logger = logging.getLogger(__name__)


class DistributedHook:
    """On ranks other than 0 of a ``torchrun`` run, keep the pipeline's outputs in memory."""

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        """Replace the persisted outputs of ``pipeline`` with memory datasets on ranks > 0."""
        from embedding_distillation import distributed

        if distributed.world_size() == 1 or distributed.is_main():
            return
        from kedro.io import MemoryDataset

        from embedding_distillation.datasets import EmbeddingShardsDataset

        kept_in_memory = []
        catalog_logger = logging.getLogger("kedro.io.data_catalog")
        catalog_logger.addFilter(_not_replacing)  # each swap would log a warning
        try:
            for name in sorted(pipeline.all_outputs()):
                if name not in catalog:
                    continue  # a free output: Kedro keeps it in memory already
                dataset = catalog.get(name)
                if isinstance(dataset, MemoryDataset | EmbeddingShardsDataset):
                    continue
                catalog[name] = MemoryDataset(copy_mode="assign")
                kept_in_memory.append(name)
        finally:
            catalog_logger.removeFilter(_not_replacing)
        # This rank saves teacher_embeddings into rank 0's version folder, not its own session's.
        warnings.filterwarnings("ignore", message=r"Save version .* did not match load version")
        logger.info(
            "Rank %d of %d keeps %s in memory; rank 0 saves them",
            distributed.rank(),
            distributed.world_size(),
            kept_in_memory,
        )


def _not_replacing(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Replacing dataset")


class ConfigCheckHook:
    """Parse each parameter group the run's nodes take before the first node runs.

    A bad value of a later stage (a ``distillation`` key, an export format) then fails in a
    second, not after an hour of encoding. Nodes parse their groups again: this adds no state.
    """

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        """Build every config whose ``params:`` group is an input of ``pipeline``."""
        from embedding_distillation.compute import ComputeConfig
        from embedding_distillation.encoding.config import EncodingConfig
        from embedding_distillation.evaluation.config import EvaluationConfig
        from embedding_distillation.export.config import ExportConfig
        from embedding_distillation.students import STUDENTS, check_students
        from embedding_distillation.training.config import EmbeddingTrainerConfig

        inputs = pipeline.inputs()

        def group(name: str) -> Any:
            return catalog.load(f"params:{name}") if f"params:{name}" in inputs else None

        compute = catalog.load("params:compute") if "params:compute" in catalog else None
        ComputeConfig.from_params(compute)
        if (encoding := group("teacher_embeddings")) is not None:
            EncodingConfig.from_params(encoding)
        if (distillation := group("distillation")) is not None:
            students = [
                name.removeprefix(f"params:{STUDENTS}.")
                for name in sorted(inputs)
                if name.startswith(f"params:{STUDENTS}.")
            ]
            if students:  # each student's branch: the base merged with its entry
                entries = catalog.load(f"params:{STUDENTS}")
                configs = list(
                    check_students(
                        distillation, {name: entries[name] for name in students}, compute
                    ).values()
                )
            else:
                configs = [EmbeddingTrainerConfig.from_params(distillation, compute)]
            if "sts_benchmark_dev" in inputs and any(
                config.metric_for_best_model == "sts_dev" for config in configs
            ):
                from embedding_distillation.training.tracking import (
                    TrainingEvaluation,
                    best_metric,
                )

                pairs = catalog.load("sts_benchmark_dev")
                for config in configs:
                    best_metric(config, TrainingEvaluation(sts_dev=pairs))
        if (evaluation := group("evaluation")) is not None:
            EvaluationConfig.from_params(evaluation).check_tasks()
        if (export := group("export")) is not None:
            ExportConfig.from_params(export)
