import logging

import pytest
from kedro.io import DatasetError
from sentence_transformers import SentenceTransformer

from embedding_distillation.datasets import HubModelDataset, hub_model_dataset
from embedding_distillation.hub import ModelCardInfo, ModelPush


@pytest.fixture
def pushes(monkeypatch):
    calls = []
    monkeypatch.setattr(
        hub_model_dataset, "push_model", lambda model, repo, **kw: calls.append((repo, kw))
    )
    return calls


@pytest.fixture
def model(student):
    return SentenceTransformer(student, device="cpu")


def test_the_request_token_wins_over_credentials(pushes, model):
    dataset = HubModelDataset(
        credentials={"token": "hf_from_credentials"}, hub_endpoint="http://127.0.0.1:9"
    )
    card = ModelCardInfo(teacher_model="org/teacher")
    dataset.save(ModelPush(model=model, repo_id="alice/student", token="hf_from_params", card=card))
    dataset.save(ModelPush(model=model, repo_id="alice/student", private=False))
    common = {"endpoint": "http://127.0.0.1:9", "exports": None}
    assert pushes == [
        ("alice/student", {"token": "hf_from_params", "private": True, "card": card, **common}),
        (
            "alice/student",
            {"token": "hf_from_credentials", "private": False, "card": None, **common},
        ),
    ]


def test_none_pushes_nothing(pushes, caplog):
    with caplog.at_level(logging.INFO):
        HubModelDataset().save(ModelPush(model=None, repo_id=None))
    assert pushes == []
    assert "push_to_hub is false" in caplog.text


def test_tokens_are_never_shown(model):
    dataset = HubModelDataset(credentials={"token": "hf_secret123"})
    request = ModelPush(model=model, repo_id="alice/student", token="hf_secret456")
    assert "hf_secret123" not in str(dataset)
    assert "***" in str(dataset)
    assert "hf_secret456" not in repr(request)


def test_is_write_only():
    with pytest.raises(
        DatasetError, match="HubModelDataset is write-only; load the pushed model by"
    ):
        HubModelDataset().load()
