"""``projection: pca``: the PCA fit, the frozen inverse-PCA head, and training through it."""

import numpy as np
import pytest
import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Dense

from embedding_distillation.training import pca
from embedding_distillation.training.config import EmbeddingTrainerConfig
from embedding_distillation.training.student import prepare_student
from embedding_distillation.training.trainer import train_student
from tests.conftest import make_sentences
from tests.training.conftest import training_config

FINAL = "teacher_embedding_final"


def _config(tmp_path, student: str, **kwargs) -> EmbeddingTrainerConfig:
    return training_config(tmp_path, student_model=student, **{"projection": "pca", **kwargs})


def _low_rank_targets(rows: int, dim: int, rank: int, seed: int = 0):
    """Targets = mean + coordinates @ basis (+ tiny noise), basis: ``rank`` orthonormal rows."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(dim, rank)))[0].T  # (rank, dim)
    scales = np.linspace(3.0, 1.0, rank)
    coordinates = rng.normal(size=(rows, rank)) * scales
    mean = rng.normal(size=dim)
    targets = coordinates @ basis + mean + 1e-4 * rng.normal(size=(rows, dim))
    return targets.astype(np.float32), basis, mean


def test_fit_pca_recovers_the_subspace_in_chunks(monkeypatch):
    monkeypatch.setattr(pca, "PCA_CHUNK_ROWS", 7)  # several chunks
    targets, basis, _ = _low_rank_targets(60, 12, 4)
    data = Dataset.from_dict({"t": targets.tolist(), "text": ["x"] * 60})

    fitted_mean, components, explained = pca.fit_pca(data, "t", 4)

    assert components.shape == (4, 12)
    np.testing.assert_allclose(components @ components.T, np.eye(4), atol=1e-5)
    # Same subspace: the projectors onto both bases agree.
    np.testing.assert_allclose(components.T @ components, basis.T @ basis, atol=1e-3)
    np.testing.assert_allclose(fitted_mean, targets.mean(0), atol=1e-5)
    assert explained > 0.9999


def test_fit_pca_keeps_the_largest_components_first():
    targets, basis, _ = _low_rank_targets(200, 10, 3)
    _, components, explained = pca.fit_pca(Dataset.from_dict({"t": targets.tolist()}), "t", 1)
    # the first basis row has the largest scale (3.0 of 3.0, 2.0, 1.0)
    assert abs(float(components[0] @ basis[0])) > 0.99
    assert 0.5 < explained < 0.8  # about 9 / (9 + 4 + 1)


def test_fit_pca_uses_at_most_max_rows():
    targets, _, _ = _low_rank_targets(50, 6, 2)
    targets[1::2] += 100.0  # odd rows far away: an evenly spaced subset of 2 rows sees both
    data = Dataset.from_dict({"t": targets.tolist()})
    mean, _, _ = pca.fit_pca(data, "t", 2, max_rows=2)  # rows 0 and 49
    np.testing.assert_allclose(mean, (targets[0] + targets[49]) / 2, atol=1e-4)


def test_inverse_pca_dense_is_frozen_and_maps_back():
    mean = np.arange(5, dtype=np.float32)
    components = np.linalg.qr(np.random.default_rng(0).normal(size=(5, 2)))[0].T.astype(np.float32)
    dense = pca.inverse_pca_dense(mean, components, torch.device("cpu"))
    assert isinstance(dense, Dense)
    assert not any(p.requires_grad for p in dense.parameters())
    z = torch.tensor([[1.0, -2.0]])
    out = dense({"sentence_embedding": z})["sentence_embedding"]
    np.testing.assert_allclose(out.numpy(), z.numpy() @ components + mean, atol=1e-6)


def test_pca_student_trains_its_backbone_under_a_frozen_head_saved_with_the_model(
    tmp_path, student
):
    texts = make_sentences(24, seed=3)
    targets, _, _ = _low_rank_targets(24, 40, 32)
    data = Dataset.from_dict({"text": texts, FINAL: targets.tolist()})
    config = _config(tmp_path, student, logging_steps=1)

    model = prepare_student(config, 40, data)

    assert [type(m).__name__ for m in model] == ["Transformer", "Pooling", "Dense", "Normalize"]
    head = model[2]
    mean, components, _ = pca.fit_pca(data, FINAL, 32)
    np.testing.assert_allclose(head.linear.weight.detach().numpy(), components.T, atol=1e-6)
    np.testing.assert_allclose(head.linear.bias.detach().numpy(), mean, atol=1e-6)
    head_before = head.linear.weight.detach().clone()
    word_embeddings = model[0].auto_model.embeddings.word_embeddings.weight.detach().clone()

    train_student(model, data, config)

    assert torch.equal(head.linear.weight, head_before)  # frozen
    assert not torch.equal(model[0].auto_model.embeddings.word_embeddings.weight, word_embeddings)
    model.save(str(tmp_path / "saved"))
    reloaded = SentenceTransformer(str(tmp_path / "saved"), device="cpu")
    assert reloaded.get_embedding_dimension() == 40
    np.testing.assert_allclose(reloaded.encode(texts[:3]), model.encode(texts[:3]), atol=1e-5)


def test_pca_on_a_student_of_the_target_size_adds_nothing(tmp_path, student):
    data = Dataset.from_dict({"text": ["a b"], FINAL: [[0.5] * 32]})
    model = prepare_student(_config(tmp_path, student), 32, data)
    assert [type(m).__name__ for m in model] == ["Transformer", "Pooling", "Normalize"]


def test_pca_refuses_a_student_wider_than_the_target(tmp_path, student):
    data = Dataset.from_dict({"text": ["a b"], FINAL: [[0.5] * 16]})
    with pytest.raises(
        ValueError,
        match=r"projection 'pca' reduces the teacher's 16-d targets to the student's size, but "
        r"the student outputs 32-d embeddings, more than the target\. Use projection: learned",
    ):
        prepare_student(_config(tmp_path, student), 16, data)


def test_pca_needs_the_training_rows(tmp_path, student):
    with pytest.raises(ValueError, match="projection 'pca' is fitted on the training targets"):
        prepare_student(_config(tmp_path, student), 40)
