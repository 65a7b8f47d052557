"""The API and the Kedro dataset against the local Hub: pushes, endpoint, resume elsewhere."""

import json
import logging

import numpy as np
import pytest
from datasets import Dataset

from embedding_distillation import TeacherEmbeddingsGenerator, hub_client
from embedding_distillation.datasets import (
    EmbeddingShardsDataset,
    EmbeddingsWriterDataset,
    HubEmbeddingsDataset,
)
from embedding_distillation.hub import HubCredentials, HubError, RetryPolicy
from embedding_distillation.pipelines.teacher_embeddings.nodes import (
    encode_corpus,
    push_teacher_embeddings,
    select_corpus,
)
from tests.conftest import make_sentences
from tests.hub.conftest import PRIVATE_TEXTS, TOKEN
from tests.spies import record_encoded


@pytest.fixture
def encoded(monkeypatch):
    """Indices of the shards the teacher actually encodes."""
    monkeypatch.setattr(hub_client, "DEFAULT_RETRY", RetryPolicy(attempts=2, first_wait=0.0))
    return record_encoded(monkeypatch)


def test_a_failed_push_resumes_on_another_machine(
    tmp_path, local_hub, corpus, teacher_plain, encoded
):
    generator = TeacherEmbeddingsGenerator(teacher_plain, device="cpu", chunk_size=10)
    push = dict(repo_id="alice/emb", push_every=20, token=TOKEN, endpoint=local_hub.url)

    # First machine: the first push (shards 0-1) lands, the second fails for good. The push
    # runs while shard 4 is being encoded; shard 4 is still written before the error.
    local_hub.fail(r"/commit/", status=500, after=1, times=2)
    with pytest.raises(HubError, match="after 2 attempts.*run the same command again"):
        generator.generate_and_push(corpus, output_dir=tmp_path / "a", **push)
    assert encoded == [0, 1, 2, 3, 4]
    assert sorted(p.name for p in (tmp_path / "a").rglob("*.parquet"))[-1] == "train-00004.parquet"
    assert len(local_hub.commits("alice/emb")) == 1

    # Second machine, empty folder: downloads shards 0-1 and encodes only 2-4.
    encoded.clear()
    dataset = generator.generate_and_push(corpus, output_dir=tmp_path / "b", **push)
    assert encoded == [2, 3, 4]
    assert dataset["text"] == corpus["text"]
    assert len(local_hub.commits("alice/emb")) == 3


def test_the_kedro_datasets_push_with_their_credentials_and_endpoint(
    tmp_path, local_hub, corpus, teacher_plain, monkeypatch
):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_ENDPOINT")  # only the datasets' hub_endpoint leads to the local Hub
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    params = {"teacher_model": teacher_plain, "chunk_size": 25, "push_every": 25}
    hub = {"credentials": {"token": TOKEN}, "hub_endpoint": local_hub.url}
    writer = EmbeddingsWriterDataset(filepath=str(tmp_path / "emb"))
    credentials = HubCredentials(token=TOKEN, endpoint=local_hub.url)  # as hub_credentials loads
    stored = EmbeddingShardsDataset(filepath=str(tmp_path / "emb"))
    selected = select_corpus(corpus, params)
    selected.info.dataset_name = "news"

    stored.save(encode_corpus(selected, params, {"device": "cpu"}, writer.load(), credentials))
    assert len(local_hub.commits("alice/news-embeddings")) == 1  # pushed while encoding
    HubEmbeddingsDataset(**hub).save(push_teacher_embeddings(stored.load(), params))

    commits = local_hub.commits("alice/news-embeddings")
    assert len(commits) == 2
    assert json.loads(commits[-1].files["manifest.json"])["complete"]
    card = local_hub.repo("alice/news-embeddings").files_at("main")["README.md"].decode()
    assert f"teacher_model: {teacher_plain}" in card  # from the embeddings' manifest
    assert stored.load().rows["row_id"] == list(range(50))


def test_push_every_below_chunk_size_pushes_every_push_every_rows(
    tmp_path, local_hub, teacher_plain
):
    """200 rows, push_every 50, default chunk_size (1000): four commits of 50 rows."""
    corpus = Dataset.from_dict({"text": make_sentences(200, seed=5)})
    generator = TeacherEmbeddingsGenerator(teacher_plain, device="cpu")
    generator.generate_and_push(
        corpus, repo_id="alice/emb", push_every=50, token=TOKEN, output_dir=tmp_path / "out"
    )
    manifests = [json.loads(c.files["manifest.json"]) for c in local_hub.commits("alice/emb")]
    assert [m["num_rows"] for m in manifests] == [50, 100, 150, 200]
    assert manifests[-1]["complete"] and manifests[-1]["identity"]["chunk_size"] == 50


@pytest.mark.parametrize(
    ("method", "options"),
    [
        ("generate", {}),
        ("generate", {"streaming": True}),
        ("generate_and_push", {"repo_id": "alice/emb"}),  # one token reads and pushes
    ],
)
def test_the_api_reads_a_private_hub_corpus_with_its_token(
    tmp_path, local_hub, private_corpus, teacher_plain, caplog, method, options
):
    generator = TeacherEmbeddingsGenerator(teacher_plain, device="cpu")
    with caplog.at_level(logging.DEBUG):
        result = getattr(generator, method)(
            private_corpus, output_dir=tmp_path / "out", token=TOKEN, **options
        )
    assert result["text"] == PRIVATE_TEXTS
    assert TOKEN not in caplog.text
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert written and not any(TOKEN.encode() in p.read_bytes() for p in written)


def test_without_its_token_the_api_cannot_read_a_private_hub_corpus(
    tmp_path, local_hub, private_corpus, teacher_plain
):
    """The check that the test above can fail: the repo is private, and no token is stored."""
    with pytest.raises(
        OSError,
        match=r"Could not load dataset 'alice/private-corpus' .* A private dataset needs a token",
    ):
        TeacherEmbeddingsGenerator(teacher_plain, device="cpu").generate(
            private_corpus, output_dir=tmp_path / "out"
        )
    assert not (tmp_path / "out").exists()


def test_a_streamed_hub_corpus_that_is_not_utf8_fails_clearly_before_any_shard(
    tmp_path, local_hub, teacher_plain
):
    from huggingface_hub import HfApi

    api = HfApi(endpoint=local_hub.url, token=TOKEN)
    api.create_repo("alice/notes", repo_type="dataset")
    api.upload_file(
        path_or_fileobj="caf\xe9 au lait\nthe second line\n".encode("latin-1"),
        path_in_repo="data/train.txt",
        repo_id="alice/notes",
        repo_type="dataset",
    )
    with pytest.raises(
        ValueError,
        match=(
            r"The streamed corpus 'notes' is not valid UTF-8: byte 0xe9 at or after row 0 of the "
            r"stream does not decode, .* Re-encode the dataset's text files to UTF-8 .* To find "
            r"the file and byte offset, download the dataset \(`hf download <dataset id> "
            r"--repo-type dataset --local-dir DIR`\) and point the corpus at DIR: local files "
            r"are checked before encoding\.$"
        ),
    ):
        TeacherEmbeddingsGenerator(teacher_plain, device="cpu").generate(
            "alice/notes", output_dir=tmp_path / "out", streaming=True
        )
    assert not (tmp_path / "out").exists()


def test_a_hub_corpus_is_streamed_and_equals_the_downloaded_one(
    tmp_path, local_hub, corpus, teacher_plain
):
    from huggingface_hub import HfApi

    api = HfApi(endpoint=local_hub.url, token=TOKEN)
    api.create_repo("alice/news", repo_type="dataset")
    corpus.to_parquet(tmp_path / "train.parquet")
    api.upload_file(
        path_or_fileobj=tmp_path / "train.parquet",
        path_in_repo="data/train-00000-of-00001.parquet",
        repo_id="alice/news",
        repo_type="dataset",
    )
    generator = TeacherEmbeddingsGenerator(teacher_plain, device="cpu", chunk_size=20)

    streamed = generator.generate("alice/news", output_dir=tmp_path / "s", streaming=True)
    downloaded = generator.generate("alice/news", output_dir=tmp_path / "d")

    assert streamed["text"] == downloaded["text"] == corpus["text"]
    np.testing.assert_array_equal(
        np.asarray(streamed["teacher_embedding_final"]),
        np.asarray(downloaded["teacher_embedding_final"]),
    )
