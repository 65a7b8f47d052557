import json
import logging
import sys

import httpx2
import numpy as np
import pyarrow as pa
import pytest
import yaml
from kedro.io import DataCatalog

from embedding_distillation import hub_client
from embedding_distillation.encoding.config import EncodingConfig
from embedding_distillation.encoding.shards import ShardStore, embedding_array
from embedding_distillation.hub import EmbeddingsPusher, HubError, RetryPolicy
from tests.hub.conftest import OTHER_TOKEN, TOKEN

FAST = RetryPolicy(attempts=3, first_wait=0.0, max_wait=0.0)
IDENTITY = {
    "teacher_fingerprint": "abc",
    "output_type": "final",
    "embedding_dtype": "float32",
    "corpus_fingerprint": "def",
    "columns": {"teacher_embedding_final": 4},
    "chunk_size": 10,
}
DETAILS = {"teacher_model": "org/teacher", "corpus": "org/news"}  # the manifest's provenance
COMMIT = r"POST /api/datasets/.*/commit/"


def _table(index: int, rows: int = 10) -> pa.Table:
    start = index * rows
    values = np.arange(start * 4, (start + rows) * 4, dtype=np.float32).reshape(rows, 4)
    return pa.table(
        {
            "row_id": pa.array(range(start, start + rows), type=pa.int64()),
            "text": [f"text {i}" for i in range(start, start + rows)],
            "teacher_embedding_final": embedding_array(values, "float32"),
        }
    )


def _pusher(push_every=20, repo_id="alice/emb", token=TOKEN, **config) -> EmbeddingsPusher:
    config = EncodingConfig(
        teacher_model="org/teacher", push_every=push_every, repo_id=repo_id, **config
    )
    pusher = EmbeddingsPusher.create(config, source_name="org/news", token=token)
    pusher.retry = FAST
    return pusher


def _encode(store: ShardStore, pusher, shards=range(5), total=5) -> None:
    """What a run does: write each shard and tell the pusher; after the last, the final push."""
    store.begin(IDENTITY, DETAILS)
    for index in shards:
        store.write_shard(index, _table(index))
        pusher.after_listing(store, index == total - 1)
    if total - 1 in shards:
        store.finish()
        pusher.push(store)


def _added(hub, repo_id="alice/emb"):
    """Files each commit uploaded."""
    return [commit.uploaded for commit in hub.commits(repo_id)]


def test_pushes_only_new_shards_every_n_rows_and_the_repo_loads(tmp_path, local_hub):
    import datasets

    _encode(ShardStore(tmp_path), _pusher())

    data = [f"data/train-{i:05d}.parquet" for i in range(5)]
    assert _added(local_hub) == [
        ["README.md", *data[0:2], "manifest.json"],
        ["README.md", *data[2:4], "manifest.json"],
        ["README.md", data[4], "manifest.json"],
    ]
    loaded = datasets.load_dataset("alice/emb", split="train", token=TOKEN)
    assert loaded["row_id"] == list(range(50))
    assert loaded.features["teacher_embedding_final"] == datasets.List(
        datasets.Value("float32"), length=4
    )
    np.testing.assert_array_equal(
        np.asarray(loaded["teacher_embedding_final"][49]), np.arange(196, 200, dtype=np.float32)
    )


def test_the_split_names_the_files_and_the_split_in_the_repo(tmp_path, local_hub):
    import datasets

    _encode(ShardStore(tmp_path, split="validation"), _pusher(split="validation"), range(2))
    assert _added(local_hub)[0][1:3] == [
        "data/validation-00000.parquet",
        "data/validation-00001.parquet",
    ]
    loaded = datasets.load_dataset("alice/emb", token=TOKEN)
    assert list(loaded) == ["validation"] and loaded["validation"]["row_id"] == list(range(20))


def test_the_dataset_card_describes_the_data(tmp_path, local_hub, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["kedro", "run", "--pipeline=teacher_embeddings"])
    _encode(ShardStore(tmp_path), _pusher(embedding_dtype="float32"))
    card = local_hub.repo("alice/emb").files_at("main")["README.md"].decode()
    header = yaml.safe_load(card.split("---")[1])
    assert header["teacher_model"] == "org/teacher"
    assert header["source_dataset"] == "org/news"
    assert header["output_type"] == "final"
    assert header["embedding_dtype"] == "float32"
    assert header["num_rows"] == 50
    assert header["complete"] is True
    assert header["command"] == "kedro run --pipeline=teacher_embeddings"
    features = {f["name"]: f for f in header["dataset_info"]["features"]}
    assert features["teacher_embedding_final"] == {
        "name": "teacher_embedding_final",
        "list": "float32",
        "length": 4,
    }
    assert header["dataset_info"]["splits"][0]["num_examples"] == 50


@pytest.mark.parametrize("private", [True, False])
def test_default_repo_is_the_token_user_and_source_name(tmp_path, local_hub, caplog, private):
    with caplog.at_level(logging.INFO):
        _encode(ShardStore(tmp_path), _pusher(repo_id=None, private=private))
    repo = local_hub.repo("alice/news-embeddings")
    assert repo.private is private
    assert len(local_hub.commits("alice/news-embeddings")) == 3
    assert "No repo_id given: pushing to alice/news-embeddings" in caplog.text


def test_hf_token_is_the_fallback(tmp_path, local_hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    _encode(ShardStore(tmp_path), _pusher(repo_id=None, token=None))
    assert len(local_hub.commits("alice/news-embeddings")) == 3


def test_a_rerun_pushes_nothing_twice(tmp_path, local_hub):
    store = ShardStore(tmp_path)
    _encode(store, _pusher())
    _pusher().push(store)  # e.g. the same command run again on the complete folder
    assert len(local_hub.commits("alice/emb")) == 3


def test_an_empty_folder_resumes_after_the_pushed_shards(tmp_path, local_hub):
    first = ShardStore(tmp_path / "machine_a")
    _encode(first, _pusher(), shards=range(2))  # killed after two shards and one push

    second = ShardStore(tmp_path / "machine_b")
    pusher = _pusher()
    assert pusher.restore(second, IDENTITY) == 2
    assert second.begin(IDENTITY) == {0, 1}
    for index in range(2):
        assert (second.folder / second.shard_file(index)).read_bytes() == (
            first.folder / first.shard_file(index)
        ).read_bytes()
    _encode(second, pusher, shards=range(2, 5))
    assert _added(local_hub)[1:] == [
        ["README.md", "data/train-00002.parquet", "data/train-00003.parquet", "manifest.json"],
        ["README.md", "data/train-00004.parquet", "manifest.json"],
    ]


def test_a_repo_of_another_job_is_refused(tmp_path, local_hub):
    _encode(ShardStore(tmp_path / "a"), _pusher(), shards=range(2))
    other = {**IDENTITY, "teacher_fingerprint": "xyz"}
    with pytest.raises(
        HubError,
        match=r"alice/emb holds embeddings of a different job \(changed: \['teacher_fingerprint'\]\)",
    ):
        _pusher().restore(ShardStore(tmp_path / "b"), other)


def test_5xx_then_success_is_retried(tmp_path, local_hub, caplog):
    local_hub.fail(COMMIT, status=503)
    with caplog.at_level(logging.WARNING):
        _encode(ShardStore(tmp_path), _pusher(push_every=50))
    assert len(local_hub.commits("alice/emb")) == 1
    assert "HTTP 503" in caplog.text and "retry 1 of 2" in caplog.text


def test_a_connection_reset_mid_upload_is_retried(tmp_path, local_hub):
    local_hub.fail(COMMIT, reset=True)
    _encode(ShardStore(tmp_path), _pusher(push_every=50))
    assert len(local_hub.commits("alice/emb")) == 1
    assert sum(r.startswith("POST") and "/commit/" in r for r in local_hub.requests) == 2


def test_a_timeout_is_retried(tmp_path, local_hub, monkeypatch, caplog):
    monkeypatch.setattr(hub_client, "HUB_TIMEOUT", httpx2.Timeout(0.5))
    local_hub.fail(COMMIT, delay=1.5)
    with caplog.at_level(logging.WARNING):
        _encode(ShardStore(tmp_path), _pusher(push_every=50))
    assert len(local_hub.commits("alice/emb")) == 1
    assert "ReadTimeout" in caplog.text and "retry 1 of 2" in caplog.text


def test_a_commit_whose_answer_was_lost_is_not_made_twice(tmp_path, local_hub):
    local_hub.fail(COMMIT, lose_answer=True)
    _encode(ShardStore(tmp_path), _pusher(push_every=50))
    assert len(local_hub.commits("alice/emb")) == 1
    assert sum(r.startswith("POST") and "/commit/" in r for r in local_hub.requests) == 1


def test_a_push_that_keeps_failing_keeps_the_shards_and_says_what_to_run(tmp_path, local_hub):
    store = ShardStore(tmp_path)
    local_hub.fail(COMMIT, status=500, times=3)
    with pytest.raises(HubError, match=r"after 3 attempts \(HTTP 500.*run the same command again"):
        _encode(store, _pusher(push_every=50))
    assert store.is_complete() and len(store.files()) == 5
    _pusher(push_every=50).push(store)  # the rerun pushes everything the repo lacks
    assert len(local_hub.commits("alice/emb")) == 1
    assert len(local_hub.repo("alice/emb").files_at("main")) == 7


@pytest.mark.parametrize(
    ("repo_id", "token", "message"),
    [
        (
            "bob/emb",
            TOKEN,
            r"Cannot create the dataset repo bob/emb: the token has no write permission",
        ),
        ("alice/emb", "hf_notARealToken123", r"Cannot .* alice/emb: the Hub rejected the token"),
    ],
)
def test_permission_errors_fail_fast(tmp_path, local_hub, repo_id, token, message):
    with pytest.raises(HubError, match=message):
        _encode(ShardStore(tmp_path), _pusher(repo_id=repo_id, token=token))
    assert sum("/api/repos/create" in r for r in local_hub.requests) == 1


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (403, "push 2 shard.* alice/emb: the token has no write permission"),
        (404, "push 2 shard.* alice/emb: the repo does not exist or the token cannot read it"),
    ],
)
def test_an_injected_403_or_404_on_commit_fails_fast(tmp_path, local_hub, status, message):
    local_hub.fail(COMMIT, status=status, times=5)
    with pytest.raises(HubError, match=message):
        _encode(ShardStore(tmp_path), _pusher())
    assert sum("/commit/" in r for r in local_hub.requests) == 1


def test_the_token_never_shows(tmp_path, local_hub, caplog, monkeypatch):
    monkeypatch.setattr(
        sys, "argv", ["kedro", "run", f"--params=distillation.hub_token={OTHER_TOKEN}"]
    )
    local_hub.fail(COMMIT, status=503)
    store = ShardStore(tmp_path / "a")
    with caplog.at_level(logging.DEBUG):
        _encode(store, _pusher())
        local_hub.fail(COMMIT, status=403)
        with pytest.raises(HubError) as error:
            store_b = ShardStore(tmp_path / "b")
            _encode(store_b, _pusher(repo_id="alice/other"))
    assert any(TOKEN in header for header in local_hub.headers_seen)  # it was sent...
    card = local_hub.repo("alice/emb").files_at("main")["README.md"].decode()
    shown = [caplog.text, str(error.value), repr(error.value.__cause__), card, repr(_pusher())]
    catalog = DataCatalog.from_config(  # what `kedro catalog` and kedro-viz show
        {
            "hub_credentials": {
                "type": "embedding_distillation.datasets.hub_credentials_dataset.HubCredentialsDataset",
                "credentials": "huggingface",
            },
            "teacher_embeddings_hub": {
                "type": "embedding_distillation.datasets.HubEmbeddingsDataset",
                "credentials": "huggingface",
            },
            "student_model_hub": {
                "type": "embedding_distillation.datasets.HubModelDataset",
                "credentials": "huggingface",
            },
        },
        credentials={"huggingface": {"token": TOKEN}},
    )
    shown += [
        repr(catalog),
        *(f"{catalog[name]!r} {catalog[name]._describe()}" for name in catalog),
    ]
    for text in shown:  # ...but never shown
        assert TOKEN not in text and OTHER_TOKEN not in text
    assert "hub_token=hf_***" in card


def test_each_commit_lists_exactly_what_the_repo_holds_after_it(tmp_path, local_hub):
    _encode(ShardStore(tmp_path), _pusher())
    manifests = [json.loads(c.files["manifest.json"]) for c in local_hub.commits("alice/emb")]
    assert [m["num_rows"] for m in manifests] == [20, 40, 50]
    assert [m["complete"] for m in manifests] == [False, False, True]
    assert [len(m["shards"]) for m in manifests] == [2, 4, 5]
    assert all("sha256" in shard for shard in manifests[-1]["shards"])


def test_a_final_push_of_a_folder_never_pushed_commits_every_push_every_rows(tmp_path, local_hub):
    store = ShardStore(tmp_path)
    store.begin(IDENTITY, DETAILS)
    for index in range(5):
        store.write_shard(index, _table(index))
    store.finish()
    _pusher(push_every=20).push(store)  # e.g. kedro run --from-nodes push_teacher_embeddings
    assert [len(files) - 2 for files in _added(local_hub)] == [2, 2, 1]  # shards per commit


def test_a_shard_whose_sha256_changed_is_pushed_again(tmp_path, local_hub):
    store = ShardStore(tmp_path)
    _encode(store, _pusher(push_every=50))
    manifest = json.loads(store.manifest_path.read_text())
    manifest["shards"][2]["sha256"] = "0" * 64  # stands for shard 2 encoded again
    store.manifest_path.write_text(json.dumps(manifest))
    _pusher(push_every=50).push(store)
    assert _added(local_hub)[-1] == ["README.md", "data/train-00002.parquet", "manifest.json"]


def test_a_pushed_shard_that_does_not_match_the_repos_manifest_is_refused(tmp_path, local_hub):
    _encode(ShardStore(tmp_path / "a"), _pusher(), shards=range(2))
    files = local_hub.repo("alice/emb").files_at("main")
    files["data/train-00001.parquet"] = files["data/train-00001.parquet"][:-10]  # damaged
    with pytest.raises(
        HubError,
        match=r"data/train-00001\.parquet downloaded from the dataset repo alice/emb does not "
        r"match the sha256 in its manifest; the repo is damaged\. Delete that repo",
    ):
        _pusher().restore(ShardStore(tmp_path / "b"), IDENTITY)
    assert not (tmp_path / "b" / "data" / "train-00001.parquet").exists()
