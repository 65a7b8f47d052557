"""``EmbeddingsWriterDataset``: where the encode node writes, and which unfinished version it continues."""

import json
import logging

import pytest
from kedro.io import DatasetError
from kedro.io.core import Version

from embedding_distillation.datasets import EmbeddingsWriterDataset
from embedding_distillation.encoding.lock import FolderInUseError, WriterLock
from tests.datasets.conftest import encode_version, shards_dataset, shards_job
from tests.spies import Crash, crash_at, record_encoded


def crash_first_version(root, job, monkeypatch, at_shard):
    """Encode ``job`` into version 2026-01-01 and crash it at shard ``at_shard`` (unfinished)."""
    crash_at(monkeypatch, job, at_shard)
    with pytest.raises(Crash):
        encode_version(root, job, save="2026-01-01T00.00.00.000Z")
    monkeypatch.undo()


def test_the_writer_is_load_only_and_loading_writes_nothing(tmp_path):
    writer = EmbeddingsWriterDataset(filepath=str(tmp_path / "emb"), version=Version(None, None))
    target = writer.load()
    assert not (tmp_path / "emb").exists()
    assert target.target.parent.parent == tmp_path / "emb"
    with pytest.raises(DatasetError, match="EmbeddingsWriterDataset is load-only"):
        writer.save("shards")


def test_an_unfinished_version_of_the_same_job_is_adopted(
    tmp_path, corpus, teacher_dense, monkeypatch, caplog
):
    job = shards_job(corpus, teacher_dense)
    crash_first_version(tmp_path, job, monkeypatch, at_shard=1)  # the node's own error
    assert not shards_dataset(tmp_path).exists()  # an unfinished version is never loaded

    job = shards_job(corpus, teacher_dense)
    encoded = record_encoded(monkeypatch, job)
    with caplog.at_level(logging.INFO):
        encode_version(tmp_path, job, save="2026-01-02T00.00.00.000Z")
    assert encoded == [1, 2, 3]
    assert "Resuming the unfinished run" in caplog.text
    dataset = shards_dataset(tmp_path)
    assert dataset.list_versions(full_path=False) == ["2026-01-02T00.00.00.000Z"]
    assert not (tmp_path / "emb" / "2026-01-01T00.00.00.000Z").exists()
    assert dataset.load().rows["row_id"] == list(range(50))


def test_an_unfinished_version_of_another_job_is_left_alone(
    tmp_path, corpus, teacher_dense, monkeypatch, caplog
):
    job = shards_job(corpus, teacher_dense, max_samples=40)
    crash_first_version(tmp_path, job, monkeypatch, at_shard=1)
    with caplog.at_level(logging.WARNING):
        encode_version(tmp_path, shards_job(corpus, teacher_dense), save="2026-01-02T00.00.00.000Z")
    assert "were made with other settings, teacher or corpus; starting a new version" in caplog.text
    manifest = json.loads(
        (tmp_path / "emb" / "2026-01-01T00.00.00.000Z" / "emb" / "manifest.json").read_text()
    )
    assert not manifest["complete"]


def test_a_complete_run_of_another_job_in_between_does_not_hide_the_unfinished_one(
    tmp_path, corpus, teacher_dense, monkeypatch
):
    """As when the demo runs between two halves of a long encoding."""
    job = shards_job(corpus, teacher_dense)
    crash_first_version(tmp_path, job, monkeypatch, at_shard=2)
    encode_version(
        tmp_path, shards_job(corpus, teacher_dense, max_samples=20), save="2026-01-02T00.00.00.000Z"
    )

    job = shards_job(corpus, teacher_dense)
    encoded = record_encoded(monkeypatch, job)
    encode_version(tmp_path, job, save="2026-01-03T00.00.00.000Z")
    assert encoded == [2, 3]
    assert not (tmp_path / "emb" / "2026-01-01T00.00.00.000Z").exists()
    assert shards_dataset(tmp_path).load().rows["row_id"] == list(range(50))


def test_an_unfinished_run_older_than_a_complete_run_of_the_same_job_is_left_alone(
    tmp_path, corpus, teacher_dense, monkeypatch
):
    encode_version(tmp_path, shards_job(corpus, teacher_dense), save="2026-01-02T00.00.00.000Z")
    job = shards_job(corpus, teacher_dense)
    crash_first_version(tmp_path, job, monkeypatch, at_shard=2)  # 2026-01-01: older

    job = shards_job(corpus, teacher_dense)
    encoded = record_encoded(monkeypatch, job)
    encode_version(tmp_path, job, save="2026-01-03T00.00.00.000Z")
    assert encoded == [0, 1, 2, 3]
    assert (tmp_path / "emb" / "2026-01-01T00.00.00.000Z").exists()


def test_a_version_being_written_by_another_process_is_not_adopted(
    tmp_path, corpus, teacher_dense, monkeypatch
):
    job = shards_job(corpus, teacher_dense)
    crash_first_version(tmp_path, job, monkeypatch, at_shard=1)
    unfinished = tmp_path / "emb" / "2026-01-01T00.00.00.000Z" / "emb"
    with WriterLock.acquire(unfinished):  # stands for a run still writing it
        load = record_encoded(monkeypatch)
        with pytest.raises(FolderInUseError, match=rf"{unfinished} is being written by another"):
            encode_version(
                tmp_path, shards_job(corpus, teacher_dense), save="2026-01-02T00.00.00.000Z"
            )
        assert load == []  # refused before encoding anything
    assert unfinished.exists()  # left where it was


def test_an_unfinished_version_written_before_checksums_and_locks_is_adopted(
    tmp_path, corpus, teacher_dense, monkeypatch, caplog
):
    """As the runs started with the previous code leave their versions: adopted and finished."""
    job = shards_job(corpus, teacher_dense)
    crash_first_version(tmp_path, job, monkeypatch, at_shard=2)
    old = tmp_path / "emb" / "2026-01-01T00.00.00.000Z" / "emb"
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["provenance"]
    for shard in manifest["shards"]:
        del shard["size"], shard["sha256"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    for hidden in old.glob(".writer.*"):
        hidden.unlink()

    job = shards_job(corpus, teacher_dense)
    encoded = record_encoded(monkeypatch, job)
    with caplog.at_level(logging.INFO):
        encode_version(tmp_path, job, save="2026-01-02T00.00.00.000Z")
    assert encoded == [2, 3]
    assert "Resuming the unfinished run" in caplog.text
    embeddings = shards_dataset(tmp_path).load()
    assert embeddings.rows["row_id"] == list(range(50))
    assert embeddings.provenance.teacher_model == teacher_dense
    shards = json.loads((embeddings.folder / "manifest.json").read_text())["shards"]
    assert ["sha256" in shard for shard in shards] == [False, False, True, True]
    assert "2 of 4 shards are unverified" in caplog.text
