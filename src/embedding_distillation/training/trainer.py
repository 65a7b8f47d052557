"""Train a student sentence-transformer on stored teacher embeddings.

Built on ``SentenceTransformerTrainer`` (shuffling, warmup, weight decay, clipping, mixed
precision, checkpoints and DDP come from there; activation checkpointing from
``training/checkpointing.py``) with the sentence-transformers distillation losses: ``MSELoss``
and ``EmbedDistillLoss(cosine)``.
"""

import functools
import logging
import math
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from sentence_transformers import (
    SentenceTransformer,
    SentenceTransformerTrainer,
    SentenceTransformerTrainingArguments,
)
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from embedding_distillation.compute import resolve_device
from embedding_distillation.distributed import world_size
from embedding_distillation.encoding.config import hidden_state_column
from embedding_distillation.training.checkpointing import enable_activation_checkpointing
from embedding_distillation.training.config import EmbeddingTrainerConfig
from embedding_distillation.training.losses import (
    HiddenStateDistillLoss,
    LossStateCallback,
    TargetsCollator,
    build_loss,
    load_loss_state,
    target_columns,
)
from embedding_distillation.training.projection import projection_parameters
from embedding_distillation.training.sampler import LengthGroupedBatchSampler, text_lengths
from embedding_distillation.training.tracking import (
    TrainingEvaluation,
    best_step_tracker,
    build_evaluator,
    evaluation_curve,
)

logger = logging.getLogger(__name__)


def hidden_state_dims(dataset: Dataset, config: EmbeddingTrainerConfig) -> dict[int, int]:
    """``{teacher_layer: width}`` of the mapped hidden-state columns (read from the first row)."""
    layers = sorted(set((config.hidden_state_layer_map or {}).values()))
    first = dataset.select_columns([hidden_state_column(t) for t in layers])[0]
    return {t: len(first[hidden_state_column(t)]) for t in layers}


def training_steps(config: EmbeddingTrainerConfig, num_rows: int) -> int:
    """Optimizer steps of a run on ``num_rows`` rows.

    Under torchrun each of ``world_size()`` processes takes ``batch_size`` rows per step.
    """
    return math.ceil(num_rows / (config.batch_size * world_size())) * config.num_epochs


def training_arguments(
    config: EmbeddingTrainerConfig, num_rows: int, *, evaluate: bool = False
) -> SentenceTransformerTrainingArguments:
    """Map the config onto the Hugging Face/sentence-transformers training arguments.

    With ``evaluate``, the student is evaluated before the first step and every
    ``eval_steps`` (the last step is added by :class:`~.tracking.BestStepCallback`).
    """
    steps = training_steps(config, num_rows)
    # Floor, not ceil: a run of a few steps must not spend them all at learning rate 0.
    warmup_steps = int(config.warmup_ratio * steps)
    every = config.eval_steps if evaluate else None
    compute = config.compute
    device = resolve_device(compute.device)  # "auto" too: the trainer must know it is a CPU
    return SentenceTransformerTrainingArguments(
        output_dir=config.output_dir,
        num_train_epochs=config.num_epochs,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=warmup_steps,
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        fp16=compute.use_fp16,
        bf16=compute.use_bf16,
        torch_compile=compute.compile_model,
        save_strategy="steps",
        save_steps=config.save_steps,
        eval_strategy="steps" if every is not None else "no",
        eval_steps=every,
        eval_on_start=evaluate and not config.resume_from_checkpoint,  # evaluated before
        logging_steps=config.logging_steps,
        seed=config.seed,
        use_cpu=device.type == "cpu",
        dataloader_pin_memory=device.type == "cuda",
        report_to="none",
        disable_tqdm=False,
    )


def evaluation_column(config: EmbeddingTrainerConfig, column_names: list[str]) -> str:
    """The stored column a trained student is compared with.

    The embedding target; for rows without one (training on the hidden-state term alone), the
    deepest mapped teacher layer, whose mean-pooled states are what the student learnt last.
    """
    if config.target_column in column_names or config.hidden_state_layer_map is None:
        return config.target_column
    return hidden_state_column(max(config.hidden_state_layer_map.values()))


def resume_folder(config: EmbeddingTrainerConfig) -> str:
    """The checkpoint folder ``resume_from_checkpoint`` names (``True``: the latest one)."""
    if config.resume_from_checkpoint is True:
        latest = get_last_checkpoint(config.output_dir)
        if latest is None:
            raise FileNotFoundError(
                f"resume_from_checkpoint is true but {config.output_dir!r} holds no checkpoint "
                "folder; set it to null to start afresh."
            )
        return latest
    return str(config.resume_from_checkpoint)


class CheckpointPushCallback(TrainerCallback):
    """Uploads each checkpoint to the model repo as it is saved (rank 0 only).

    A push that fails for good is logged and training goes on: the checkpoint is still on disk,
    and the final model push is what the run is for.

    Args:
        config: The training options (``hub_model_id``, ``hub_token``).
        endpoint: Hub URL (``None``: ``HF_ENDPOINT`` or the public Hub).
    """

    def __init__(self, config: EmbeddingTrainerConfig, endpoint: str | None = None) -> None:
        self.config = config
        self.endpoint = endpoint

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Push ``output_dir/checkpoint-<global_step>``."""
        if not state.is_world_process_zero:
            return
        from embedding_distillation.hub import HubError, push_checkpoint

        assert self.config.hub_model_id is not None  # checked by the config
        folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        try:
            push_checkpoint(
                folder,
                self.config.hub_model_id,
                token=self.config.hub_token,
                endpoint=self.endpoint,
            )
        except HubError as error:
            logger.warning("Could not push %s: %s", folder.name, error)


class DistillationTrainer(SentenceTransformerTrainer):
    """The sentence-transformers trainer, with length-grouped batches and a head of its own.

    Args:
        length_column: Text column whose lengths group the batches
            (:class:`~embedding_distillation.training.sampler.LengthGroupedBatchSampler`);
            ``None`` keeps the trainer's own random batches.
        head: The projection head's parameters (:func:`~.projection.projection_parameters`):
            with ``head_learning_rate`` they get their own optimizer group, and with
            ``head_warmup_steps`` they train alone for that many first steps.
        head_learning_rate: The head's peak learning rate (``None``: the run's).
        head_warmup_steps: First steps during which every other parameter has learning rate 0
            (AdamW then leaves it exactly as it is); their own warm-up and decay start after.
        *args: Passed to ``SentenceTransformerTrainer``.
        **kwargs: Passed to ``SentenceTransformerTrainer``.
    """

    def __init__(
        self,
        *args: Any,
        length_column: str | None = None,
        head: list[torch.nn.Parameter] | None = None,
        head_learning_rate: float | None = None,
        head_warmup_steps: int = 0,
        **kwargs: Any,
    ) -> None:
        self.length_column = length_column
        self.head = list(head or [])
        self.head_learning_rate = head_learning_rate
        self.head_warmup_steps = head_warmup_steps
        super().__init__(*args, **kwargs)

    def get_batch_sampler(
        self,
        dataset: Any,
        batch_size: int,
        drop_last: bool,
        valid_label_columns: list[str] | None = None,
        generator: torch.Generator | None = None,
        seed: int = 0,
    ) -> Any:
        """Length-grouped batches for the training rows, else the trainer's default."""
        if self.length_column is None or self.length_column not in dataset.column_names:
            return super().get_batch_sampler(
                dataset, batch_size, drop_last, valid_label_columns, generator, seed
            )
        return LengthGroupedBatchSampler(
            dataset,
            batch_size,
            drop_last,
            lengths=text_lengths(dataset, self.length_column),
            generator=generator,
            seed=seed,
        )

    def create_optimizer(self, model: Any = None) -> torch.optim.Optimizer:
        """The trainer's AdamW groups, with the head's parameters moved into groups of their own."""
        optimizer = super().create_optimizer(model)
        if self.head and (self.head_learning_rate is not None or self.head_warmup_steps):
            split_head_groups(optimizer, self.head, self.head_learning_rate)
        return optimizer

    def create_scheduler(
        self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None
    ) -> Any:
        """Linear warm-up and decay; with a head warm-up, the other groups start after it."""
        if not (self.head and self.head_warmup_steps):
            return super().create_scheduler(num_training_steps, optimizer)
        if self.lr_scheduler is None:
            optimizer = optimizer or self.optimizer
            assert optimizer is not None, "the trainer creates the optimizer first"
            warmup = self.args.get_warmup_steps(num_training_steps)
            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer,
                [
                    functools.partial(
                        linear_schedule,
                        start=0 if group.get(HEAD_GROUP) else self.head_warmup_steps,
                        warmup=warmup,
                        total=num_training_steps,
                    )
                    for group in optimizer.param_groups
                ],
            )
            self._created_lr_scheduler = True
        return self.lr_scheduler


HEAD_GROUP = "projection_head"  # marks the optimizer groups of the projection head


def split_head_groups(
    optimizer: torch.optim.Optimizer, head: list[torch.nn.Parameter], learning_rate: float | None
) -> None:
    """Move ``head`` out of each optimizer group into a twin group marked ``HEAD_GROUP``."""
    head_ids = {id(parameter) for parameter in head}
    for group in list(optimizer.param_groups):
        moved = [p for p in group["params"] if id(p) in head_ids]
        if not moved:
            continue
        group["params"] = [p for p in group["params"] if id(p) not in head_ids]
        twin = {k: v for k, v in group.items() if k != "params"}
        if learning_rate is not None:
            twin["lr"] = learning_rate
        optimizer.add_param_group({**twin, "params": moved, HEAD_GROUP: True})
    optimizer.param_groups[:] = [g for g in optimizer.param_groups if g["params"]]


def linear_schedule(step: int, *, start: int, warmup: int, total: int) -> float:
    """The learning-rate factor of ``step``: 0 before ``start``, then warm-up and decay.

    Linear warm-up over ``warmup`` steps, then linear decay to 0 at ``total``; with
    ``start=0`` it is transformers' linear schedule.
    """
    step -= start
    if step < 0:
        return 0.0
    if step < warmup:
        return step / max(1, warmup)
    return max(0.0, (total - start - step) / max(1, total - start - warmup))


def train_student(
    model: SentenceTransformer,
    dataset: Dataset,
    config: EmbeddingTrainerConfig,
    evaluation: TrainingEvaluation | None = None,
    *,
    hub_endpoint: str | None = None,
) -> dict[str, Any]:
    """Train ``model`` in place on ``dataset`` and return the training metrics.

    With ``evaluation`` data, the student is evaluated before the first step, every
    ``eval_steps`` and after the last step, and (``load_best_model_at_end``) ends with the
    weights of the best evaluated step (:mod:`.tracking`). With ``push_checkpoints``, each
    checkpoint goes to ``hub_endpoint`` (``None``: ``HF_ENDPOINT`` or the public Hub).

    Returns:
        ``train_loss`` (mean over the run), ``train_runtime`` (s), ``train_samples_per_second``,
        ``global_step``, ``log_history`` (the trainer's logged entries) and, with evaluation,
        ``evaluations`` (``[{step, sts_dev, heldout_cosine, seconds}]``), ``best_step``,
        ``best_metric``, ``kept_step`` and ``evaluation_seconds``.
    """
    has_target = config.target_column in dataset.column_names
    targets = target_columns(config, has_target)
    train_data = dataset.select_columns([config.text_column, *dict.fromkeys(targets)])
    teacher_dims = None
    if config.hidden_state_layer_map is not None:
        teacher_dims = hidden_state_dims(dataset, config)
    target_dim = len(dataset[0][config.target_column]) if has_target else None
    loss = build_loss(model, config, target_dim, teacher_dims)
    evaluation = evaluation or TrainingEvaluation()
    evaluator = build_evaluator(model, evaluation, config)
    tracker = best_step_tracker(
        config, evaluation, resume_folder(config) if config.resume_from_checkpoint else None
    )
    head = projection_parameters(model)
    _warn_about_settings(config, len(train_data), has_head=bool(head), evaluating=bool(tracker))
    if config.compute.gradient_checkpointing:
        # Here rather than through the training arguments, which reach only the architectures
        # that transformers checkpoints (not MPNet); see training/checkpointing.py.
        enable_activation_checkpointing(model)
    trainer = DistillationTrainer(
        model=model,
        args=training_arguments(config, len(train_data), evaluate=evaluator is not None),
        train_dataset=train_data,
        loss=loss,
        evaluator=evaluator,
        data_collator=TargetsCollator(preprocess_fn=model.preprocess, target_columns=targets),
        length_column=config.text_column if config.group_by_length else None,
        head=head,
        head_learning_rate=config.projection_learning_rate,
        head_warmup_steps=config.projection_warmup_steps,
    )
    if isinstance(loss, HiddenStateDistillLoss):
        trainer.add_callback(LossStateCallback(loss))
    if tracker is not None:
        trainer.add_callback(tracker)
    if config.push_checkpoints:
        trainer.add_callback(CheckpointPushCallback(config, endpoint=hub_endpoint))
    logger.info(
        "Training %d rows x %d epochs (batch %d, %s loss, targets %s%s%s)",
        len(train_data),
        config.num_epochs,
        config.batch_size,
        config.loss_type,
        list(targets),
        f", similarity weight {config.similarity_weight:g}" if config.similarity_weight else "",
        f", hidden-state weight {config.hidden_state_weight}"
        if config.hidden_state_layer_map
        else "",
    )
    resume = config.resume_from_checkpoint
    if resume:
        logger.info(
            "Resuming training from %s", "the latest checkpoint" if resume is True else resume
        )
        if isinstance(loss, HiddenStateDistillLoss):
            load_loss_state(loss, resume_folder(config))
    try:
        result = trainer.train(resume_from_checkpoint=resume or None)
    finally:
        if isinstance(loss, HiddenStateDistillLoss):
            loss.restore_inputs()
    log_history = list(trainer.state.log_history)
    metrics: dict[str, Any] = {
        "train_loss": float(result.training_loss),
        "train_runtime": float(result.metrics.get("train_runtime", 0.0)),
        "train_samples_per_second": float(result.metrics.get("train_samples_per_second", 0.0)),
        "global_step": int(result.global_step),
        "world_size": int(trainer.args.world_size),  # processes that shared the batches (DDP)
        "log_history": log_history,
    }
    if tracker is not None:
        curve = evaluation_curve(log_history)
        metrics |= {
            "evaluations": curve,
            "best_metric": tracker.metric,
            "best_step": tracker.best_step,
            "kept_step": tracker.best_step
            if config.load_best_model_at_end
            else metrics["global_step"],
            # Beside train_runtime, which a resumed run also counts from its resume only.
            "evaluation_seconds": tracker.seconds,
        }
    return metrics


def _warn_about_settings(
    config: EmbeddingTrainerConfig, num_rows: int, *, has_head: bool, evaluating: bool
) -> None:
    """Warn of settings the run cannot honour.

    Head options without a head, a head warm-up or ``eval_steps`` as long as the run.
    """
    steps = training_steps(config, num_rows)
    if not has_head and (
        config.projection_warmup_steps or config.projection_learning_rate is not None
    ):
        logger.warning(
            "projection_warmup_steps and projection_learning_rate apply to a learned "
            "projection head, and this student has none (its output already has the target's "
            "width, or projection is pca, which stays fixed): they are ignored."
        )
    elif config.projection_warmup_steps and config.projection_warmup_steps >= steps:
        logger.warning(
            "projection_warmup_steps is %d but the run has %d steps: only the projection "
            "trains, the student's own weights never move. Set it below %d.",
            config.projection_warmup_steps,
            steps,
            steps,
        )
    if evaluating and config.eval_steps is not None and config.eval_steps >= steps:
        logger.warning(
            "eval_steps is %d but the run has %d steps: the student is evaluated before the "
            "first and after the last step only. Set eval_steps below %d to see it in between.",
            config.eval_steps,
            steps,
            steps,
        )
