"""The API and the Kedro dataset against the local Hub: pushes, endpoint, resume elsewhere."""

import pytest

from embedding_distillation import TeacherEmbeddingsGenerator
from embedding_distillation.compute import ComputeConfig
from embedding_distillation.datasets import EmbeddingShardsDataset
from embedding_distillation.encoding.config import EncodingConfig
from embedding_distillation.encoding.engine import EncodingJob, prepare_encoding
from embedding_distillation.hub import HubError, RetryPolicy, client
from tests.hub.conftest import TOKEN


@pytest.fixture
def encoded(monkeypatch):
    """Indices of the shards the teacher actually encodes."""
    calls = []
    original = EncodingJob.encode_shard

    def spy(self, index):
        calls.append(index)
        return original(self, index)

    monkeypatch.setattr(EncodingJob, "encode_shard", spy)
    monkeypatch.setattr(client, "DEFAULT_RETRY", RetryPolicy(attempts=2, first_wait=0.0))
    return calls


def test_a_failed_push_resumes_on_another_machine(
    tmp_path, local_hub, corpus, teacher_plain, encoded
):
    generator = TeacherEmbeddingsGenerator(teacher_plain, device="cpu", chunk_size=10)
    push = dict(repo_id="alice/emb", push_every=20, token=TOKEN, endpoint=local_hub.url)

    # First machine: the first push (shards 0-1) lands, the second fails for good.
    local_hub.fail(r"/commit/", status=500, after=1, times=2)
    with pytest.raises(HubError, match="after 2 attempts.*run the same command again"):
        generator.generate_and_push(corpus, output_dir=tmp_path / "a", **push)
    assert encoded == [0, 1, 2, 3]
    assert len(local_hub.commits("alice/emb")) == 1

    # Second machine, empty folder: downloads shards 0-1 and encodes only 2-4.
    encoded.clear()
    dataset = generator.generate_and_push(corpus, output_dir=tmp_path / "b", **push)
    assert encoded == [2, 3, 4]
    assert dataset["text"] == corpus["text"]
    assert len(local_hub.commits("alice/emb")) == 3


def test_the_kedro_dataset_pushes_with_its_credentials_and_endpoint(
    tmp_path, local_hub, corpus, teacher_plain, monkeypatch
):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_ENDPOINT")  # only the dataset's hub_endpoint leads to the local Hub
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    config = EncodingConfig(teacher_model=teacher_plain, chunk_size=25, push_every=25)
    job = prepare_encoding(corpus, config, ComputeConfig(device="cpu"), source_name="news")
    dataset = EmbeddingShardsDataset(
        filepath=str(tmp_path / "emb"), credentials={"token": TOKEN}, hub_endpoint=local_hub.url
    )
    dataset.save(job)
    assert len(local_hub.commits("alice/news-embeddings")) == 2
    assert dataset.load()["row_id"] == list(range(50))
