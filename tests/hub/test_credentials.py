"""The catalog's credentials reach every Hub read and push of the pipelines (local fake Hub)."""

import logging

import pytest
from kedro.io import DatasetError

from embedding_distillation import TeacherEmbeddingsGenerator
from embedding_distillation.datasets import CorpusDataset
from embedding_distillation.hub import HubCredentials
from embedding_distillation.pipelines.distillation.nodes import train_student_model
from tests.hub.conftest import PRIVATE_TEXTS, TOKEN


def test_a_private_hub_corpus_is_read_with_the_catalog_credentials(local_hub, private_corpus):
    dataset = CorpusDataset(source=private_corpus, credentials={"token": TOKEN})
    assert dataset.load()["text"] == PRIVATE_TEXTS
    assert TOKEN not in str(dataset)


def test_without_credentials_the_private_corpus_cannot_be_read(local_hub, private_corpus):
    """The check that the test above can fail: the repo is private, and no token is stored."""
    with pytest.raises(
        DatasetError,
        match=(
            r"Could not load dataset 'alice/private-corpus' .* A private dataset needs a token: "
            r"`credentials: huggingface` on the catalog entry \(conf/local/credentials\.yml\), "
            r"or HF_TOKEN\."
        ),
    ):
        CorpusDataset(source=private_corpus).load()


@pytest.fixture
def train_rows(tmp_path, corpus, teacher_plain):
    return TeacherEmbeddingsGenerator(teacher_plain, device="cpu").generate(
        corpus, output_dir=tmp_path / "emb"
    )


def _train(tmp_path, rows, student, credentials):
    """4 steps of 16 rows, a checkpoint every 2 steps, each pushed to alice/distilled."""
    params = {
        "student_model": student,
        "num_epochs": 1,
        "batch_size": 16,
        "output_dir": str(tmp_path / "out"),
        "save_steps": 2,
        "push_to_hub": True,
        "hub_model_id": "alice/distilled",
        "push_checkpoints": True,
    }
    return train_student_model(rows, None, None, params, {"device": "cpu"}, credentials)


def test_checkpoints_are_pushed_with_the_catalog_credentials(
    tmp_path, local_hub, train_rows, student, caplog
):
    with caplog.at_level(logging.INFO):
        _train(tmp_path, train_rows, student, HubCredentials(token=TOKEN))
    files = local_hub.repo("alice/distilled", "model").files_at("main")
    for step in (2, 4):
        assert f"checkpoints/checkpoint-{step}/model.safetensors" in files
    assert TOKEN not in caplog.text


def test_checkpoints_are_pushed_to_the_catalog_endpoint(
    tmp_path, local_hub, train_rows, student, monkeypatch, caplog
):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_ENDPOINT")  # only hub_credentials' endpoint leads to the local Hub
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    _train(tmp_path, train_rows, student, HubCredentials(token=TOKEN, endpoint=local_hub.url))
    files = local_hub.repo("alice/distilled", "model").files_at("main")
    for step in (2, 4):
        assert f"checkpoints/checkpoint-{step}/model.safetensors" in files
    assert "Could not push" not in caplog.text


def test_without_credentials_checkpoint_pushes_fail_and_training_goes_on(
    tmp_path, local_hub, train_rows, student, caplog
):
    _, metrics = _train(tmp_path, train_rows, student, HubCredentials(token=None))
    assert metrics["global_step"] == 4
    assert "Could not push checkpoint-2" in caplog.text
    assert ("model", "alice/distilled") not in local_hub.repos
