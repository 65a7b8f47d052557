import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

from embedding_distillation.encoding.teacher import TeacherEncoder, check_layer_indices


@pytest.fixture
def texts():
    return ["the cat sleeps", "a big red car drives to the city at night", "rain"]


def test_final_and_pre_dense_come_from_one_forward_pass(teacher_dense, texts, monkeypatch):
    model = SentenceTransformer(teacher_dense, device="cpu")
    encoder = TeacherEncoder(model, "final")
    calls = []
    transformer = model[0]
    original = transformer.forward
    monkeypatch.setattr(
        transformer, "forward", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    out = encoder.forward(encoder.tokenize(texts))
    assert len(calls) == 1
    assert list(out) == ["teacher_embedding_pre_dense", "teacher_embedding_final"]
    np.testing.assert_allclose(out["teacher_embedding_final"], model.encode(texts), atol=1e-5)
    pooled = SentenceTransformer(modules=list(model)[:2], device="cpu").encode(texts)
    np.testing.assert_allclose(out["teacher_embedding_pre_dense"], pooled, atol=1e-5)
    assert encoder.columns() == {"teacher_embedding_final": 40, "teacher_embedding_pre_dense": 48}


def test_hidden_states_are_masked_means_of_the_transformer_layers(teacher_plain, texts):
    model = SentenceTransformer(teacher_plain, device="cpu")
    encoder = TeacherEncoder(model, "hidden_states", [0, 2, 3])
    out = encoder.forward(encoder.tokenize(texts))
    tokenizer = model.tokenizer
    for i, text in enumerate(texts):
        inputs = tokenizer([text], return_tensors="pt")
        with torch.no_grad():
            hidden = model[0].auto_model(**inputs, output_hidden_states=True).hidden_states
        for layer in (0, 2, 3):
            expected = hidden[layer][0].mean(0).numpy()  # one text: no padding
            np.testing.assert_allclose(out[f"hidden_state_layer_{layer}"][i], expected, atol=1e-5)


def test_layer_indices_are_checked_against_the_teacher():
    assert check_layer_indices(None, 3) == [0, 1, 2, 3]
    assert check_layer_indices((0, 3), 3) == [0, 3]
    with pytest.raises(
        ValueError, match=r"include \[4\], but the teacher has 3 layers: valid indices are 0"
    ):
        check_layer_indices((0, 4), 3)


def test_pre_dense_on_a_teacher_without_dense_says_what_it_is(teacher_plain, caplog):
    model = SentenceTransformer(teacher_plain, device="cpu")
    with caplog.at_level("INFO"):
        encoder = TeacherEncoder(model, "pre_dense")
    assert "no Dense layer" in caplog.text
    out = encoder.forward(encoder.tokenize(["the cat"]))
    assert list(out) == ["teacher_embedding_pre_dense"]
    assert not np.isclose(
        np.linalg.norm(out["teacher_embedding_pre_dense"]), 1.0
    )  # before Normalize


def test_final_on_a_teacher_with_only_normalize_after_pooling_stores_final_only(
    teacher_plain, caplog
):
    model = SentenceTransformer(teacher_plain, device="cpu")
    with caplog.at_level("INFO"):
        encoder = TeacherEncoder(model, "final")
    assert "storing teacher_embedding_final only" in caplog.text
    assert encoder.columns() == {"teacher_embedding_final": 48}
    out = encoder.forward(encoder.tokenize(["the cat", "a dog runs"]))
    assert list(out) == ["teacher_embedding_final"]
    np.testing.assert_allclose(
        out["teacher_embedding_final"], model.encode(["the cat", "a dog runs"]), atol=1e-5
    )
