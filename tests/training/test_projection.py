"""The projection head: where it goes, how it starts (orthogonal or least squares)."""

import re

import numpy as np
import pytest
import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Dense

from embedding_distillation.training.projection import (
    add_projection,
    least_squares_map,
    orthogonal_map,
    projection_parameters,
)
from tests.conftest import make_sentences
from tests.training.conftest import training_config

_config = training_config
FINAL = "teacher_embedding_final"


def _names(model: SentenceTransformer) -> list[str]:
    return [type(m).__name__ for m in model]


def _fit_data(rows: int, dim: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    return Dataset.from_dict(
        {
            "text": make_sentences(rows, seed=seed),
            FINAL: rng.normal(size=(rows, dim)).astype(np.float32).tolist(),
        }
    )


def _cosines(embeddings: np.ndarray) -> np.ndarray:
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    return unit @ unit.T


# --- add_projection ----------------------------------------------------------------------------


def test_add_projection_inserts_dense_before_normalize(tmp_path, student):
    model = SentenceTransformer(student, device="cpu")
    assert _names(model) == ["Transformer", "Pooling", "Normalize"]

    projected = add_projection(model, 40, _config(tmp_path))

    assert _names(projected) == ["Transformer", "Pooling", "Dense", "Normalize"]
    assert projected.get_embedding_dimension() == 40
    dense = projected[2]
    assert isinstance(dense, Dense)
    assert tuple(dense.linear.weight.shape) == (40, 32)
    assert isinstance(dense.activation_function, torch.nn.Identity)
    texts = make_sentences(3, seed=5)
    pooled = SentenceTransformer(modules=[model[0], model[1]], device="cpu").encode(
        texts, convert_to_tensor=True
    )
    with torch.no_grad():
        expected = torch.nn.functional.normalize(dense.linear(pooled), dim=1)
    np.testing.assert_allclose(
        projected.encode(texts, convert_to_numpy=True), expected.numpy(), atol=1e-5
    )


def test_add_projection_appends_when_there_is_no_normalize(tmp_path, student):
    model = SentenceTransformer(student, device="cpu")
    backbone = SentenceTransformer(modules=[model[0], model[1]], device="cpu")
    projected = add_projection(backbone, 48, _config(tmp_path))
    assert _names(projected) == ["Transformer", "Pooling", "Dense"]
    assert projected.get_embedding_dimension() == 48


def test_add_projection_keeps_a_model_of_the_right_size(tmp_path, student):
    model = SentenceTransformer(student, device="cpu")
    assert add_projection(model, 32, _config(tmp_path, projection="none")) is model


def test_add_projection_none_refuses_a_size_mismatch(tmp_path, student):
    model = SentenceTransformer(student, device="cpu")
    with pytest.raises(
        ValueError,
        match=r"The student outputs 32-d embeddings but the target 'teacher_embedding_pre_dense' "
        r"is 48-d\. Set projection: learned",
    ):
        add_projection(model, 48, _config(tmp_path, projection="none", target_type="pre_dense"))


# --- how the head starts ----------------------------------------------------------------------


def test_an_orthogonal_head_keeps_every_pairwise_cosine_of_the_student(tmp_path, student):
    model = SentenceTransformer(student, device="cpu")
    texts = make_sentences(12, seed=9)
    before = model.encode(texts, convert_to_numpy=True)

    projected = add_projection(model, 40, _config(tmp_path), _fit_data(64, 40))

    after = projected.encode(texts, convert_to_numpy=True)
    assert after.shape == (12, 40)
    np.testing.assert_allclose(_cosines(after), _cosines(before), atol=1e-5)
    weight = projected[2].linear.weight.detach()  # (40, 32)
    gram = weight.T @ weight  # s^2 I: orthogonal columns of one length
    torch.testing.assert_close(gram, gram[0, 0] * torch.eye(32), atol=1e-5, rtol=0)
    assert projected[2].linear.bias is None


def test_a_least_squares_head_changes_the_cosines_and_has_a_bias(tmp_path, student):
    model = SentenceTransformer(student, device="cpu")
    texts = make_sentences(12, seed=9)
    before = model.encode(texts, convert_to_numpy=True)
    config = _config(tmp_path, projection_init="least_squares")

    projected = add_projection(model, 40, config, _fit_data(64, 40))

    after = projected.encode(texts, convert_to_numpy=True)
    assert np.abs(_cosines(after) - _cosines(before)).max() > 1e-2
    assert projected[2].linear.bias is not None


@pytest.mark.parametrize("scale", [1.0, 0.2])
def test_orthogonal_map_recovers_a_rotated_and_scaled_space(scale):
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(200, 6, generator=generator)
    rotation, _ = torch.linalg.qr(torch.randn(10, 6, generator=generator))  # (10, 6) orthonormal
    weight, bias = orthogonal_map(inputs, scale * inputs @ rotation.T)
    assert bias is None
    torch.testing.assert_close(weight, scale * rotation, atol=1e-4, rtol=0)


def test_least_squares_map_recovers_an_affine_map():
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(500, 4, generator=generator)
    true_weight, true_bias = torch.randn(3, 4, generator=generator), torch.randn(3)
    weight, bias = least_squares_map(inputs, inputs @ true_weight.T + true_bias)
    torch.testing.assert_close(weight, true_weight, atol=5e-3, rtol=0)
    torch.testing.assert_close(bias, true_bias, atol=5e-3, rtol=0)


def test_projection_parameters_are_the_dense_layers_after_pooling(tmp_path, student):
    projected = add_projection(SentenceTransformer(student, device="cpu"), 40, _config(tmp_path))
    head = projection_parameters(projected)
    assert [tuple(p.shape) for p in head] == [(40, 32)]  # orthogonal: no bias
    assert head[0] is projected[2].linear.weight
    assert isinstance(projected[2], Dense)


@pytest.mark.parametrize("value", ["random", "ortho", None])
def test_an_unknown_projection_init_is_refused(tmp_path, value):
    with pytest.raises(
        ValueError,
        match=r"projection_init must be one of \['orthogonal', 'least_squares'\], got "
        + re.escape(repr(value)),
    ):
        _config(tmp_path, projection_init=value)
