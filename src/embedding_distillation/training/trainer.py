"""Train a student sentence-transformer on stored teacher embeddings.

Built on ``SentenceTransformerTrainer`` (shuffling, warmup, weight decay, clipping, mixed
precision, gradient checkpointing, checkpoints and DDP come from there) with the
sentence-transformers distillation losses: ``MSELoss`` and ``EmbedDistillLoss(cosine)``.
"""

import logging
import math
from typing import Any

import numpy as np
import torch
from datasets import Dataset
from sentence_transformers import (
    SentenceTransformer,
    SentenceTransformerTrainer,
    SentenceTransformerTrainingArguments,
)
from sentence_transformers.sentence_transformer.losses import EmbedDistillLoss, MSELoss
from sentence_transformers.sentence_transformer.modules import Dense, Normalize

from embedding_distillation.compute import resolve_device
from embedding_distillation.models import (
    backbone,
    has_dense,
    load_sentence_transformer,
    module_names,
    resolve_model_source,
)
from embedding_distillation.training.config import EmbeddingTrainerConfig
from embedding_distillation.training.student_init import keep_layers

logger = logging.getLogger(__name__)

# Rows used to initialise a student-to-target projection by least squares.
PROJECTION_FIT_ROWS = 2048


def check_training_data(dataset: Dataset, config: EmbeddingTrainerConfig) -> int:
    """Fail clearly on missing columns or an empty dataset; return the target dimension."""
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


def prepare_student(
    config: EmbeddingTrainerConfig, target_dim: int, fit_data: Dataset | None = None
) -> SentenceTransformer:
    """Load the student and shape it to the target: backbone for pre_dense, projection if needed.

    With ``student_init`` set, only those transformer layers of ``student_model`` are kept.

    Args:
        config: The training options.
        target_dim: Size of the target embeddings.
        fit_data: Training rows; when a projection is added, its weights start from the least
            squares fit of student embeddings to targets on up to ``PROJECTION_FIT_ROWS`` of them.
    """
    source = resolve_model_source(config.student_model, what="student_model")
    torch.manual_seed(config.seed)
    model = load_sentence_transformer(source, config.compute, for_training=True)
    if config.student_init is not None:
        model = keep_layers(model, config.student_init)
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
    return add_projection(model, target_dim, config, fit_data)


def add_projection(
    model: SentenceTransformer,
    target_dim: int,
    config: EmbeddingTrainerConfig,
    fit_data: Dataset | None = None,
) -> SentenceTransformer:
    """Insert a learned ``Dense(student_dim -> target_dim)`` before Normalize when sizes differ."""
    student_dim = model.get_embedding_dimension()
    assert student_dim is not None, "a pooled model has an embedding dimension"
    if student_dim == target_dim:
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
    steps = math.ceil(num_rows / config.batch_size) * config.num_epochs
    # Floor, not ceil: a run of a few steps must not spend them all at learning rate 0.
    warmup_steps = int(config.warmup_ratio * steps)
    compute = config.compute
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
        activation_checkpointing=compute.gradient_checkpointing,
        save_strategy="steps",
        save_steps=config.save_steps,
        logging_steps=config.logging_steps,
        seed=config.seed,
        use_cpu=compute.device == "cpu",
        dataloader_pin_memory=resolve_device(compute.device).type == "cuda",
        report_to="none",
        disable_tqdm=False,
    )


def train_student(
    model: SentenceTransformer, dataset: Dataset, config: EmbeddingTrainerConfig
) -> dict[str, Any]:
    """Train ``model`` in place on ``dataset`` and return the training metrics.

    Returns:
        ``train_loss`` (mean over the run), ``train_runtime`` (s), ``train_samples_per_second``,
        ``global_step`` and ``log_history`` (the trainer's logged entries).
    """
    train_data = dataset.select_columns([config.text_column, config.target_column])
    train_data = train_data.rename_column(config.target_column, "label")
    if config.loss_type == "mse":
        loss: torch.nn.Module = MSELoss(model)
    else:
        loss = EmbedDistillLoss(model, distance_metric="cosine")
    trainer = SentenceTransformerTrainer(
        model=model,
        args=training_arguments(config, len(train_data)),
        train_dataset=train_data,
        loss=loss,
    )
    logger.info(
        "Training %d rows x %d epochs (batch %d, %s loss, target %s)",
        len(train_data),
        config.num_epochs,
        config.batch_size,
        config.loss_type,
        config.target_column,
    )
    resume = config.resume_from_checkpoint
    if resume:
        logger.info(
            "Resuming training from %s", "the latest checkpoint" if resume is True else resume
        )
    result = trainer.train(resume_from_checkpoint=resume or None)
    return {
        "train_loss": float(result.training_loss),
        "train_runtime": float(result.metrics.get("train_runtime", 0.0)),
        "train_samples_per_second": float(result.metrics.get("train_samples_per_second", 0.0)),
        "global_step": int(result.global_step),
        "log_history": list(trainer.state.log_history),
    }
