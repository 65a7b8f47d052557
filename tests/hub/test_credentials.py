"""The catalog's credentials reach every Hub read and push of the pipelines (local fake Hub)."""

import io
import logging

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from huggingface_hub import HfApi
from kedro.io import DatasetError

from embedding_distillation import TeacherEmbeddingsGenerator
from embedding_distillation.datasets import CorpusDataset
from embedding_distillation.hub import HubCredentials
from embedding_distillation.pipelines.distillation.nodes import train_student_model
from tests.hub.conftest import TOKEN

TEXTS = ["a private sentence", "another private one", "and a third"]


@pytest.fixture
def private_corpus(local_hub, tmp_path, monkeypatch) -> str:
    """``alice/private-corpus``: a private dataset repo with one Parquet file (nothing cached)."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")
    buffer = io.BytesIO()
    pq.write_table(pa.table({"text": TEXTS}), buffer)
    api = HfApi(endpoint=local_hub.url, token=TOKEN)
    api.create_repo("alice/private-corpus", repo_type="dataset", private=True)
    api.upload_file(
        path_or_fileobj=buffer.getvalue(),
        path_in_repo="data/train.parquet",
        repo_id="alice/private-corpus",
        repo_type="dataset",
    )
    return "alice/private-corpus"


def test_a_private_hub_corpus_is_read_with_the_catalog_credentials(local_hub, private_corpus):
    dataset = CorpusDataset(source=private_corpus, credentials={"token": TOKEN})
    assert dataset.load()["text"] == TEXTS
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


def test_without_credentials_checkpoint_pushes_fail_and_training_goes_on(
    tmp_path, local_hub, train_rows, student, caplog
):
    _, metrics = _train(tmp_path, train_rows, student, HubCredentials(token=None))
    assert metrics["global_step"] == 4
    assert "Could not push checkpoint-2" in caplog.text
    assert ("model", "alice/distilled") not in local_hub.repos
