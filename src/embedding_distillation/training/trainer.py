"""Train a student sentence-transformer on stored teacher embeddings.

Built on ``SentenceTransformerTrainer`` (shuffling, warmup, weight decay, clipping, mixed
precision, checkpoints and DDP come from there; activation checkpointing from
``training/checkpointing.py``) with the sentence-transformers distillation losses: ``MSELoss``
and ``EmbedDistillLoss(cosine)``.
"""

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset
from sentence_transformers import (
    SentenceTransformer,
    SentenceTransformerTrainer,
    SentenceTransformerTrainingArguments,
)
from sentence_transformers.sentence_transformer.modules import Dense, Normalize
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from embedding_distillation.compute import resolve_device
from embedding_distillation.distributed import world_size
from embedding_distillation.encoding.config import hidden_state_column
from embedding_distillation.models import (
    backbone,
    has_dense,
    load_sentence_transformer,
    module_names,
    resolve_model_source,
)
from embedding_distillation.training.checkpointing import enable_activation_checkpointing
from embedding_distillation.training.config import EmbeddingTrainerConfig
from embedding_distillation.training.losses import (
    HiddenStateDistillLoss,
    LossStateCallback,
    TargetsCollator,
    build_loss,
    check_layer_map,
    load_loss_state,
    target_columns,
)
from embedding_distillation.training.pca import fit_pca, inverse_pca_dense
from embedding_distillation.training.sampler import LengthGroupedBatchSampler, text_lengths
from embedding_distillation.training.static import load_static_student
from embedding_distillation.training.student_init import keep_layers

logger = logging.getLogger(__name__)

# Rows used to initialise a student-to-target projection by least squares.
PROJECTION_FIT_ROWS = 2048


def check_training_data(dataset: Dataset, config: EmbeddingTrainerConfig) -> int | None:
    """Fail clearly on missing columns or an empty dataset; return the target dimension.

    With ``hidden_state_layer_map`` set, the mapped ``hidden_state_layer_<i>`` columns must be
    there; rows without the embedding target (``output_type: hidden_states``) then train on the
    hidden-state term alone and the target dimension is ``None``.
    """
    if config.hidden_state_layer_map is not None:
        check_hidden_state_columns(dataset, config)
        if config.target_column not in dataset.column_names:
            if len(dataset) == 0:
                raise ValueError("The training data is empty (0 rows); nothing to train on.")
            logger.info(
                "The rows have no %r column: training on the hidden-state term alone "
                "(layer map %s).",
                config.target_column,
                config.hidden_state_layer_map,
            )
            return None
    missing = [
        column
        for column in (config.text_column, config.target_column)
        if column not in dataset.column_names
    ]
    if missing:
        hint = (
            " The embeddings were made with output_type 'pre_dense' or 'hidden_states'; use "
            "target_type 'pre_dense' or re-encode with output_type 'final'."
            if config.target_column == config.final_embedding_column
            else " The teacher had nothing but Normalize after pooling, so only the final "
            "embeddings were stored (the pre-Dense output is the same vector, unnormalised): use "
            "target_type 'final', or re-encode with output_type 'pre_dense'."
            if config.final_embedding_column in dataset.column_names
            else ""
        )
        raise ValueError(
            f"Training data lacks column(s) {missing} needed for target_type "
            f"{config.target_type!r}; its columns are {dataset.column_names}.{hint}"
        )
    if len(dataset) == 0:
        raise ValueError("The training data is empty (0 rows); nothing to train on.")
    first = dataset[0][config.target_column]
    return len(first)


def check_hidden_state_columns(dataset: Dataset, config: EmbeddingTrainerConfig) -> None:
    """The teacher layers of ``hidden_state_layer_map`` must be stored as columns."""
    layer_map = config.hidden_state_layer_map or {}
    missing = sorted(
        {hidden_state_column(t) for t in layer_map.values()} - set(dataset.column_names)
    )
    if missing:
        stored = [c for c in dataset.column_names if c.startswith(hidden_state_column(0)[:-1])]
        raise ValueError(
            f"hidden_state_layer_map {layer_map} needs teacher column(s) {missing}, but the "
            f"training data has {stored or 'no hidden-state columns'}. Map only stored teacher "
            "layers, or re-encode with output_type 'hidden_states' and layer_indices that "
            f"include {sorted(set(layer_map.values()))}."
        )


def hidden_state_dims(dataset: Dataset, config: EmbeddingTrainerConfig) -> dict[int, int]:
    """``{teacher_layer: width}`` of the mapped hidden-state columns (read from the first row)."""
    layers = sorted(set((config.hidden_state_layer_map or {}).values()))
    first = dataset.select_columns([hidden_state_column(t) for t in layers])[0]
    return {t: len(first[hidden_state_column(t)]) for t in layers}


def load_student(
    config: EmbeddingTrainerConfig, *, for_training: bool = False, shape_only: bool = False
) -> SentenceTransformer:
    """The student that training starts from: ``student_model``, cut to ``student_init`` if set.

    With ``student_type: static``, the model2vec distillation of ``student_model``'s vocabulary
    (``StaticEmbedding`` + ``Normalize``; :mod:`.static`). The evaluation's "student before
    training" is this model, so a student built from the teacher's layers is compared with its
    undistilled self, not with the whole teacher, and a static one with the untrained
    distillation.

    Args:
        config: The training options.
        for_training: Keep float32 weights (the trainer applies mixed precision).
        shape_only: A static student gets random weights of the distillation's size instead
            of the distillation (the dry run); a transformer student loads as usual.
    """
    source = resolve_model_source(config.student_model, what="student_model")
    if config.student_type == "static":
        return load_static_student(config, source, for_training=for_training, shape_only=shape_only)
    model = load_sentence_transformer(source, config.compute, for_training=for_training)
    return model if config.student_init is None else keep_layers(model, config.student_init)


def prepare_student(
    config: EmbeddingTrainerConfig,
    target_dim: int | None,
    fit_data: Dataset | None = None,
    *,
    shape_only: bool = False,
) -> SentenceTransformer:
    """Load the student and shape it to the target: backbone for pre_dense, projection if needed.

    With ``student_init`` set, only those transformer layers of ``student_model`` are kept; a
    static student is distilled from ``student_model`` first (:mod:`.static`).

    Args:
        config: The training options.
        target_dim: Size of the target embeddings; ``None`` when training on hidden states only
            (the student is then kept as it is).
        fit_data: Training rows; when a projection is added, its weights start from the least
            squares fit of student embeddings to targets on up to ``PROJECTION_FIT_ROWS`` of them
            (``learned``), or hold the PCA of the targets (``pca``, required then).
        shape_only: Passed to :func:`load_student` (the dry run).
    """
    torch.manual_seed(config.seed)
    model = load_student(config, for_training=True, shape_only=shape_only)
    if config.hidden_state_layer_map is not None:
        check_layer_map(model, config.hidden_state_layer_map)
    if target_dim is None:
        return model
    if config.target_type == "pre_dense":
        if has_dense(model):
            logger.info(
                "target_type 'pre_dense': training the student's backbone (modules up to Pooling "
                "of %s); its Dense layers are not part of the trained model.",
                module_names(model),
            )
        else:
            logger.info(
                "target_type 'pre_dense': the student has no Dense layer, so the whole student "
                "(without Normalize) is trained against the teacher's pre-Dense embeddings."
            )
        model = backbone(model)
    # A fresh static student outputs in model2vec's PCA basis, not in the teacher's space: it
    # gets its projection at any width (as wide as the target, STS-B fell without one).
    always = config.student_type == "static" and not has_dense(model)
    return add_projection(model, target_dim, config, fit_data, always=always)


def add_projection(
    model: SentenceTransformer,
    target_dim: int,
    config: EmbeddingTrainerConfig,
    fit_data: Dataset | None = None,
    *,
    always: bool = False,
) -> SentenceTransformer:
    """Insert a ``Dense(student_dim -> target_dim)`` before Normalize when sizes differ.

    ``projection: learned`` makes it trainable (least-squares start when ``fit_data`` is given);
    ``pca`` makes it the frozen inverse of a PCA of the targets in ``fit_data``. With
    ``always``, the projection is added when the sizes match too (not with ``none``).
    """
    student_dim = model.get_embedding_dimension()
    assert student_dim is not None, "a pooled model has an embedding dimension"
    if student_dim == target_dim and (not always or config.projection == "none"):
        return model
    if config.projection == "none":
        raise ValueError(
            f"The student outputs {student_dim}-d embeddings but the target "
            f"{config.target_column!r} is {target_dim}-d. Set projection: learned to add a "
            "trainable Dense projection, or pick a student/target of the same size."
        )
    modules = list(model)
    normalize_at = next(
        (i for i, m in enumerate(modules) if isinstance(m, Normalize)), len(modules)
    )
    if config.projection == "pca":
        projection = pca_projection(student_dim, target_dim, config, fit_data, model.device)
        modules.insert(normalize_at, projection)
        return SentenceTransformer(modules=modules, device=str(model.device))
    projection = Dense(student_dim, target_dim, activation_function=torch.nn.Identity())
    projection.to(model.device)
    if fit_data is not None:
        trunk = SentenceTransformer(modules=modules[:normalize_at], device=str(model.device))
        fit_projection(projection, trunk, fit_data, config)
    modules.insert(normalize_at, projection)
    logger.info(
        "The student outputs %d-d embeddings and the target is %d-d: added a learned "
        "Dense(%d -> %d) projection (saved with the model)%s.",
        student_dim,
        target_dim,
        student_dim,
        target_dim,
        ", initialised by least squares" if fit_data is not None else "",
    )
    return SentenceTransformer(modules=modules, device=str(model.device))


def pca_projection(
    student_dim: int,
    target_dim: int,
    config: EmbeddingTrainerConfig,
    fit_data: Dataset | None,
    device: torch.device,
) -> Dense:
    """The frozen inverse-PCA ``Dense(student_dim -> target_dim)`` for ``projection: pca``."""
    if student_dim > target_dim:
        raise ValueError(
            f"projection 'pca' reduces the teacher's {target_dim}-d targets to the student's "
            f"size, but the student outputs {student_dim}-d embeddings, more than the target. "
            "Use projection: learned, or a student no wider than the target."
        )
    if fit_data is None:
        raise ValueError(
            "projection 'pca' is fitted on the training targets: pass the training rows as "
            "fit_data to prepare_student."
        )
    mean, components, explained = fit_pca(fit_data, config.target_column, student_dim)
    logger.info(
        "The student outputs %d-d embeddings and the target is %d-d: added a frozen "
        "Dense(%d -> %d) holding the inverse of a PCA of the targets (saved with the model); "
        "the student's own output learns the top %d principal components, which explain "
        "%.1f%% of the target variance.",
        student_dim,
        target_dim,
        student_dim,
        target_dim,
        student_dim,
        100 * explained,
    )
    return inverse_pca_dense(mean, components, device)


def fit_projection(
    projection: Dense, trunk: SentenceTransformer, data: Dataset, config: EmbeddingTrainerConfig
) -> None:
    """Set ``projection`` to the ridge least-squares map from ``trunk`` outputs to the targets.

    A random projection makes the first epoch spend its steps aligning two spaces; this closed
    form starts training where a linear map already agrees with the teacher as well as it can.
    """
    rows = data.select(range(min(len(data), PROJECTION_FIT_ROWS)))
    inputs = trunk.encode(
        rows[config.text_column], batch_size=config.batch_size, convert_to_tensor=True
    ).float()  # (rows, student_dim)
    targets = torch.from_numpy(
        np.array(rows.with_format("numpy")[config.target_column], dtype=np.float32)
    ).to(inputs.device)  # (rows, target_dim)
    design = torch.cat([inputs, torch.ones_like(inputs[:, :1])], dim=1)  # bias column
    gram = design.T @ design
    ridge = 1e-3 * gram.diagonal().mean() * torch.eye(gram.shape[0], device=gram.device)
    solution = torch.linalg.solve(gram + ridge, design.T @ targets)  # (student_dim + 1, target)
    with torch.no_grad():
        projection.linear.weight.copy_(solution[:-1].T)
        projection.linear.bias.copy_(solution[-1])


def training_arguments(
    config: EmbeddingTrainerConfig, num_rows: int
) -> SentenceTransformerTrainingArguments:
    """Map the config onto the Hugging Face/sentence-transformers training arguments."""
    # Under torchrun each of world_size() processes takes batch_size rows per step.
    steps = math.ceil(num_rows / (config.batch_size * world_size())) * config.num_epochs
    # Floor, not ceil: a run of a few steps must not spend them all at learning rate 0.
    warmup_steps = int(config.warmup_ratio * steps)
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
    """

    def __init__(self, config: EmbeddingTrainerConfig) -> None:
        self.config = config

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Push ``output_dir/checkpoint-<global_step>``."""
        if not state.is_world_process_zero:
            return
        from embedding_distillation.hub import HubError, push_checkpoint

        assert self.config.hub_model_id is not None  # checked by the config
        folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        try:
            push_checkpoint(folder, self.config.hub_model_id, token=self.config.hub_token)
        except HubError as error:
            logger.warning("Could not push %s: %s", folder.name, error)


class DistillationTrainer(SentenceTransformerTrainer):
    """The sentence-transformers trainer, with length-grouped batches when asked.

    Args:
        length_column: Text column whose lengths group the batches
            (:class:`~embedding_distillation.training.sampler.LengthGroupedBatchSampler`);
            ``None`` keeps the trainer's own random batches.
        *args: Passed to ``SentenceTransformerTrainer``.
        **kwargs: Passed to ``SentenceTransformerTrainer``.
    """

    def __init__(self, *args: Any, length_column: str | None = None, **kwargs: Any) -> None:
        self.length_column = length_column
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


def train_student(
    model: SentenceTransformer, dataset: Dataset, config: EmbeddingTrainerConfig
) -> dict[str, Any]:
    """Train ``model`` in place on ``dataset`` and return the training metrics.

    Returns:
        ``train_loss`` (mean over the run), ``train_runtime`` (s), ``train_samples_per_second``,
        ``global_step`` and ``log_history`` (the trainer's logged entries).
    """
    has_target = config.target_column in dataset.column_names
    targets = target_columns(config, has_target)
    train_data = dataset.select_columns([config.text_column, *dict.fromkeys(targets)])
    teacher_dims = None
    if config.hidden_state_layer_map is not None:
        teacher_dims = hidden_state_dims(dataset, config)
    target_dim = len(dataset[0][config.target_column]) if has_target else None
    loss = build_loss(model, config, target_dim, teacher_dims)
    if config.compute.gradient_checkpointing:
        # Here rather than through the training arguments, which reach only the architectures
        # that transformers checkpoints (not MPNet); see training/checkpointing.py.
        enable_activation_checkpointing(model)
    trainer = DistillationTrainer(
        model=model,
        args=training_arguments(config, len(train_data)),
        train_dataset=train_data,
        loss=loss,
        data_collator=TargetsCollator(preprocess_fn=model.preprocess, target_columns=targets),
        length_column=config.text_column if config.group_by_length else None,
    )
    if isinstance(loss, HiddenStateDistillLoss):
        trainer.add_callback(LossStateCallback(loss))
    if config.push_checkpoints:
        trainer.add_callback(CheckpointPushCallback(config))
    logger.info(
        "Training %d rows x %d epochs (batch %d, %s loss, targets %s%s)",
        len(train_data),
        config.num_epochs,
        config.batch_size,
        config.loss_type,
        list(targets),
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
    return {
        "train_loss": float(result.training_loss),
        "train_runtime": float(result.metrics.get("train_runtime", 0.0)),
        "train_samples_per_second": float(result.metrics.get("train_samples_per_second", 0.0)),
        "global_step": int(result.global_step),
        "world_size": int(trainer.args.world_size),  # processes that shared the batches (DDP)
        "log_history": list(trainer.state.log_history),
    }
