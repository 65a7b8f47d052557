"""Shared helpers of the training tests."""

import numpy as np
from datasets import Dataset

from embedding_distillation.training.config import EmbeddingTrainerConfig
from tests.conftest import make_sentences


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


def training_rows(rows: int, dims: dict[str, int], seed: int = 0) -> Dataset:
    """``rows`` texts with random float32 columns of the given ``{name: width}``."""
    rng = np.random.default_rng(seed)
    columns: dict[str, list] = {"text": make_sentences(rows, seed=seed)}
    for name, dim in dims.items():
        columns[name] = rng.normal(size=(rows, dim)).astype(np.float32).tolist()
    return Dataset.from_dict(columns)
