import pyarrow as pa
import pytest

from embedding_distillation import hub
from embedding_distillation.encoding.config import EncodingConfig
from embedding_distillation.encoding.shards import ShardStore
from embedding_distillation.hub import EmbeddingsPusher, default_repo_name


class FakeApi:
    commits: list

    def __init__(self, token=None):
        self.token = token

    def whoami(self, token=None):
        return {"name": "alice"}

    def create_repo(self, repo_id, **kwargs):
        FakeApi.repos.append((repo_id, kwargs))

    def create_commit(self, repo_id, operations, **kwargs):
        FakeApi.commits.append((repo_id, sorted(op.path_in_repo for op in operations)))


@pytest.fixture
def api(monkeypatch):
    FakeApi.commits, FakeApi.repos = [], []
    monkeypatch.setattr(hub, "HfApi", FakeApi)
    return FakeApi


def _write(store, index, rows=10):
    store.write_shard(index, pa.table({"x": list(range(rows))}))


@pytest.mark.parametrize(
    ("source", "name"),
    [("org/My Corpus", "My-Corpus-embeddings"), ("data/corpus.parquet", "corpus-embeddings")],
)
def test_default_repo_name(source, name):
    assert default_repo_name(source) == name


def test_no_push_every_means_no_pusher():
    assert EmbeddingsPusher.from_config(EncodingConfig(teacher_model="t"), token=None) is None


def test_pushes_only_new_shards_every_n_rows_and_at_the_end(tmp_path, api):
    store = ShardStore(tmp_path)
    store.begin({"id": 1})
    config = EncodingConfig(teacher_model="t", push_every=20, repo_id="alice/emb")
    pusher = EmbeddingsPusher.from_config(config, token="hf_x")
    for index in range(5):
        _write(store, index)
        pusher(store, 10, index == 4)
    assert [files for _, files in api.commits] == [
        ["data/train-00000.parquet", "data/train-00001.parquet", "manifest.json"],
        ["data/train-00002.parquet", "data/train-00003.parquet", "manifest.json"],
        ["data/train-00004.parquet", "manifest.json"],
    ]
    assert api.repos[0] == (
        "alice/emb",
        {"repo_type": "dataset", "private": True, "exist_ok": True},
    )


def test_default_repo_uses_the_token_user_and_source_name(tmp_path, api, caplog):
    store = ShardStore(tmp_path)
    store.begin({"id": 1})
    _write(store, 0)
    pusher = EmbeddingsPusher.from_config(
        EncodingConfig(teacher_model="t", push_every=5), token="hf_x", source_name="org/news"
    )
    with caplog.at_level("INFO"):
        pusher(store, 10, True)
    assert api.commits[0][0] == "alice/news-embeddings"
    assert "pushing to alice/news-embeddings" in caplog.text
    assert "hf_x" not in caplog.text and "hf_x" not in repr(pusher)
