"""Activation checkpointing: transformers' own where supported, per layer for MPNet."""

import logging
from pathlib import Path

import pytest
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import StaticEmbedding

from embedding_distillation.training.checkpointing import (
    CheckpointedForward,
    enable_activation_checkpointing,
)
from embedding_distillation.training.trainer import train_student
from tests.conftest import make_sentences, training_gradients
from tests.training.conftest import training_config


def _load(source: str) -> SentenceTransformer:
    return SentenceTransformer(source, device="cpu")


def test_mpnet_layers_run_under_checkpoint(mpnet_student):
    model = _load(mpnet_student)
    assert model[0].auto_model.supports_gradient_checkpointing is False
    keys = list(model.state_dict())
    enable_activation_checkpointing(model)
    layers = model[0].auto_model.encoder.layer
    assert all(isinstance(layer.forward, CheckpointedForward) for layer in layers)
    assert list(model.state_dict()) == keys  # same weights, same names


def test_checkpointed_layers_are_recomputed_in_the_backward_pass(mpnet_student):
    model = _load(mpnet_student)
    enable_activation_checkpointing(model)
    calls = []
    model[0].auto_model.encoder.layer[1].intermediate.register_forward_hook(
        lambda *_: calls.append(torch.is_grad_enabled())
    )
    training_gradients(model, make_sentences(4))
    assert len(calls) == 2  # the forward pass, then its recomputation
    with torch.no_grad():
        model.eval()
        model.encode(make_sentences(4))
    assert len(calls) == 3  # inference runs each layer once


def test_checkpointing_leaves_the_gradients_unchanged(mpnet_student):
    texts = make_sentences(6, seed=1)
    plain = training_gradients(_load(mpnet_student), texts)
    model = _load(mpnet_student)
    enable_activation_checkpointing(model)
    checkpointed = training_gradients(model, texts)
    assert plain.keys() == checkpointed.keys()
    assert len(plain) > 10
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, rtol=1e-5, atol=1e-7, msg=name)


def test_enabling_twice_wraps_once(mpnet_student):
    model = _load(mpnet_student)
    enable_activation_checkpointing(model)
    enable_activation_checkpointing(model)
    layer = model[0].auto_model.encoder.layer[0]
    assert not isinstance(layer.forward.forward, CheckpointedForward)


def test_checkpointed_model_saves_and_reloads(mpnet_student, tmp_path):
    model = _load(mpnet_student)
    enable_activation_checkpointing(model)
    model.save(str(tmp_path / "saved"))
    reloaded = _load(str(tmp_path / "saved"))
    texts = make_sentences(3)
    model.eval()
    torch.testing.assert_close(
        torch.as_tensor(reloaded.encode(texts)), torch.as_tensor(model.encode(texts))
    )


def test_supported_models_use_transformers_checkpointing(student):
    model = _load(student)
    enable_activation_checkpointing(model)
    auto_model = model[0].auto_model
    assert auto_model.is_activation_checkpointing
    assert not any(isinstance(layer.forward, CheckpointedForward) for layer in auto_model.modules())


def test_a_model_without_a_layer_stack_is_refused(mpnet_student):
    model = _load(mpnet_student)
    model[0].auto_model.config.num_hidden_layers = 5
    with pytest.raises(
        ValueError,
        match="unique stack of 5 transformer layers in MPNetModel.*gradient_checkpointing: false",
    ):
        enable_activation_checkpointing(model)


def test_a_static_student_only_warns(caplog, mpnet_student):
    tokenizer = _load(mpnet_student).tokenizer
    model = SentenceTransformer(modules=[StaticEmbedding(tokenizer, embedding_dim=8)], device="cpu")
    with caplog.at_level(logging.WARNING):
        enable_activation_checkpointing(model)
    assert "is not a transformer; there are no layer activations to recompute" in caplog.text


def test_gradient_checkpointing_reaches_the_training_run(tmp_path, mpnet_student, caplog):
    from datasets import Dataset

    rows = 16
    data = Dataset.from_dict(
        {"text": make_sentences(rows), "teacher_embedding_final": torch.randn(rows, 32).tolist()}
    )
    config = training_config(
        tmp_path, student_model=mpnet_student, gradient_checkpointing=True, loss_type="cosine"
    )
    model = _load(mpnet_student)
    with caplog.at_level(logging.INFO, logger="embedding_distillation"):
        metrics = train_student(model, data, config)
    assert metrics["global_step"] == 2
    assert "each of its 3 layers runs under torch.utils.checkpoint" in caplog.text
    assert isinstance(model[0].auto_model.encoder.layer[2].forward, CheckpointedForward)


def test_training_without_the_option_checkpoints_nothing(tmp_path, mpnet_student):
    from datasets import Dataset

    data = Dataset.from_dict(
        {"text": make_sentences(8), "teacher_embedding_final": torch.randn(8, 32).tolist()}
    )
    model = _load(mpnet_student)
    train_student(model, data, training_config(tmp_path, student_model=mpnet_student))
    assert not isinstance(model[0].auto_model.encoder.layer[0].forward, CheckpointedForward)


def test_build_model_makes_an_mpnet(mpnet_student):
    assert type(_load(mpnet_student)[0].auto_model).__name__ == "MPNetModel"
    assert Path(mpnet_student, "config_sentence_transformers.json").is_file()
