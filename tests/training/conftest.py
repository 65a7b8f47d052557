"""Shared helpers of the training tests."""

from embedding_distillation.training.config import EmbeddingTrainerConfig


def training_config(tmp_path, **kwargs) -> EmbeddingTrainerConfig:
    """A small, fast CPU training config writing under ``tmp_path``; ``kwargs`` override."""
    options = {
        "student_model": "org/student",
        "output_dir": str(tmp_path / "checkpoints"),
        "num_epochs": 1,
        "batch_size": 8,
        "learning_rate": 1e-3,
        "device": "cpu",
    }
    return EmbeddingTrainerConfig(**options | kwargs)
