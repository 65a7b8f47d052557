"""Students exported once per test session: a BERT with a Dense head and a learned projection,
and an MPNet that carries the project's in-memory patches (sdpa attention, checkpointing)."""

from pathlib import Path

import pytest
import torch
from sentence_transformers import SentenceTransformer

from embedding_distillation.attention import use_fused_attention
from embedding_distillation.export import FORMATS
from embedding_distillation.export.student_export import export_student
from embedding_distillation.training.checkpointing import enable_activation_checkpointing
from embedding_distillation.training.config import EmbeddingTrainerConfig
from embedding_distillation.training.projection import add_projection
from tests.conftest import make_sentences

PROJECTED_DIM = 48


def projected(student_dense: str, seed: int = 0) -> SentenceTransformer:
    """``student_dense`` (BERT 32-d, Dense 32 -> 40, tanh) with a learned Dense(40 -> 48)
    inserted before Normalize, as training does when the target is wider."""
    torch.manual_seed(seed)
    config = EmbeddingTrainerConfig(student_model=student_dense, device="cpu")
    model = SentenceTransformer(student_dense, device="cpu")
    return add_projection(model, PROJECTED_DIM, config).eval()


@pytest.fixture(scope="session")
def projected_student(student_dense: str) -> SentenceTransformer:
    """Transformer, Pooling, Dense (tanh), Dense (projection), Normalize."""
    return projected(student_dense)


@pytest.fixture(scope="session")
def projected_export(
    projected_student: SentenceTransformer, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The projected student exported in every format."""
    folder = tmp_path_factory.mktemp("exports") / "projected"
    export_student(projected_student, folder, list(FORMATS), check_texts=make_sentences(16))
    return folder


@pytest.fixture(scope="session")
def patched_mpnet(mpnet_student: str) -> SentenceTransformer:
    """The tiny MPNet with sdpa attention and activation checkpointing patched in, in eval mode."""
    model = SentenceTransformer(mpnet_student, device="cpu")
    assert use_fused_attention(model) > 0
    enable_activation_checkpointing(model)
    return model.eval()


@pytest.fixture(scope="session")
def mpnet_export(
    patched_mpnet: SentenceTransformer, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The patched MPNet exported as ONNX and int8 OpenVINO, without torch weights."""
    folder = tmp_path_factory.mktemp("exports") / "mpnet"
    export_student(patched_mpnet, folder, ["onnx", "openvino_int8"], torch_weights=False)
    return folder
