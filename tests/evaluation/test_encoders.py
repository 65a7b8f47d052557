"""What the evaluation knows about each model: embeddings, size, revision, prompts."""

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

from embedding_distillation.evaluation.encoders import (
    SentenceTransformerEncoder,
    from_sentence_transformer,
)
from tests.conftest import make_sentences


def test_a_sentence_transformer_is_described_by_its_weights(student):
    model = SentenceTransformer(student, device="cpu")
    evaluated = from_sentence_transformer(model, "tiny-student")

    count = sum(p.numel() for p in model.parameters())
    assert (evaluated.source, evaluated.parameters) == ("tiny-student", count)
    assert evaluated.size_mb == round(count * 4 / 2**20, 2)  # float32
    assert len(evaluated.revision) == 12
    assert evaluated.prompts == {}

    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    assert from_sentence_transformer(model, "tiny-student").revision != evaluated.revision


def test_half_precision_halves_the_size_and_the_encoder_returns_float32(student):
    model = SentenceTransformer(student, device="cpu").to(torch.bfloat16)
    evaluated = from_sentence_transformer(model, "tiny")
    count = sum(p.numel() for p in model.parameters())
    assert evaluated.size_mb == round(count * 2 / 2**20, 2)

    embeddings = evaluated.encoder.encode(make_sentences(5), batch_size=2)
    assert embeddings.dtype == np.float32
    assert embeddings.shape == (5, model.get_embedding_dimension())


def test_prompts_are_kept_without_empty_ones(student):
    model = SentenceTransformer(student, device="cpu")
    model.prompts = {"query": "query: ", "document": ""}
    assert from_sentence_transformer(model, "tiny").prompts == {"query": "query: "}


def test_the_encoder_matches_sentence_transformers_encode(student):
    model = SentenceTransformer(student, device="cpu")
    texts = make_sentences(7, seed=2)
    expected = model.encode(texts, convert_to_numpy=True)
    np.testing.assert_allclose(
        SentenceTransformerEncoder(model).encode(texts, batch_size=3), expected, atol=1e-6
    )


@pytest.mark.parametrize("texts", [[], ["one text"]])
def test_the_encoder_handles_short_inputs(student, texts):
    model = SentenceTransformer(student, device="cpu")
    assert SentenceTransformerEncoder(model).encode(texts).shape[0] == len(texts)


def test_the_cache_key_follows_the_weights_and_the_settings_that_shape_the_output(student):
    model = SentenceTransformer(student, device="cpu")
    key = from_sentence_transformer(model, "tiny").cache_key
    assert key is not None
    weights, settings = key.split("-")
    assert (len(weights), len(settings)) == (16, 8)
    assert (
        from_sentence_transformer(SentenceTransformer(student, device="cpu"), "x").cache_key == key
    )

    model.max_seq_length = 16
    shorter = from_sentence_transformer(model, "tiny").cache_key
    assert shorter is not None and shorter.split("-")[0] == weights and shorter != key
    model.prompts = {"query": "query: "}
    assert from_sentence_transformer(model, "tiny").cache_key not in {key, shorter}
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    assert from_sentence_transformer(model, "tiny").cache_key.split("-")[0] != weights
