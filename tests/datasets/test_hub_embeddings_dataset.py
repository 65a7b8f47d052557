"""``HubEmbeddingsDataset``: the push of the teacher embeddings to a dataset repo."""

import logging

import pytest
from kedro.io import DatasetError

from embedding_distillation.datasets import HubEmbeddingsDataset
from embedding_distillation.hub import EmbeddingsPush


def test_the_hub_dataset_is_write_only_and_pushes_nothing_without_push_every(caplog):
    with pytest.raises(DatasetError, match="HubEmbeddingsDataset is write-only; load the pushed"):
        HubEmbeddingsDataset().load()
    with caplog.at_level(logging.INFO):
        HubEmbeddingsDataset().save(EmbeddingsPush(embeddings=None, push_every=None))
    assert "push_every is null: the teacher embeddings are not pushed" in caplog.text


def test_describe_shows_no_token():
    dataset = HubEmbeddingsDataset(credentials={"token": "hf_secret123"})
    assert "hf_secret123" not in str(dataset)
    assert "hf_secret123" not in repr(dataset._describe())
