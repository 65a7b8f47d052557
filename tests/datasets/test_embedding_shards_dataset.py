import json
import logging

import pytest
from kedro.io import DatasetError
from kedro.io.core import Version

from embedding_distillation.compute import ComputeConfig
from embedding_distillation.datasets import EmbeddingShardsDataset
from embedding_distillation.encoding.config import EncodingConfig
from embedding_distillation.encoding.engine import prepare_encoding
from tests.spies import crash_at, record_encoded


def _job(corpus, teacher, **options):
    config = EncodingConfig(teacher_model=teacher, chunk_size=16, **options)
    return prepare_encoding(corpus, config, ComputeConfig(device="cpu", batch_size=8))


def _dataset(root, save=None, load=None):
    return EmbeddingShardsDataset(filepath=str(root / "emb"), version=Version(load, save))


def test_save_then_load_a_new_version(tmp_path, corpus, teacher_dense):
    dataset = _dataset(tmp_path)
    dataset.save(_job(corpus, teacher_dense))
    assert dataset.exists()
    assert dataset.load().num_rows == 50
    assert len(dataset.list_versions()) == 1


def test_an_unfinished_version_of_the_same_job_is_adopted(
    tmp_path, corpus, teacher_dense, monkeypatch, caplog
):
    job = _job(corpus, teacher_dense)
    crash_at(monkeypatch, job, 1)
    with pytest.raises(DatasetError, match="Failed while saving"):
        _dataset(tmp_path, save="2026-01-01T00.00.00.000Z").save(job)
    monkeypatch.undo()
    assert not _dataset(tmp_path).exists()  # an unfinished version is never loaded

    job = _job(corpus, teacher_dense)
    encoded = record_encoded(monkeypatch, job)
    dataset = _dataset(tmp_path, save="2026-01-02T00.00.00.000Z")
    with caplog.at_level(logging.INFO):
        dataset.save(job)
    assert encoded == [1, 2, 3]
    assert "Resuming the unfinished run" in caplog.text
    assert dataset.list_versions(full_path=False) == ["2026-01-02T00.00.00.000Z"]
    assert not (tmp_path / "emb" / "2026-01-01T00.00.00.000Z").exists()
    assert dataset.load()["row_id"] == list(range(50))


def test_an_unfinished_version_of_another_job_is_left_alone(
    tmp_path, corpus, teacher_dense, monkeypatch, caplog
):
    job = _job(corpus, teacher_dense, max_samples=40)
    crash_at(monkeypatch, job, 1)
    with pytest.raises(DatasetError, match="Failed while saving"):
        _dataset(tmp_path, save="2026-01-01T00.00.00.000Z").save(job)
    monkeypatch.undo()
    with caplog.at_level(logging.WARNING):
        _dataset(tmp_path, save="2026-01-02T00.00.00.000Z").save(_job(corpus, teacher_dense))
    assert "made with other settings, teacher or corpus; starting a new version" in caplog.text
    manifest = json.loads(
        (tmp_path / "emb" / "2026-01-01T00.00.00.000Z" / "emb" / "manifest.json").read_text()
    )
    assert not manifest["complete"]


def test_pinned_load_version(tmp_path, corpus, teacher_dense):
    _dataset(tmp_path, save="2026-01-01T00.00.00.000Z").save(
        _job(corpus, teacher_dense, max_samples=20)
    )
    _dataset(tmp_path, save="2026-01-02T00.00.00.000Z").save(_job(corpus, teacher_dense))
    assert _dataset(tmp_path).load().num_rows == 50
    assert _dataset(tmp_path, load="2026-01-01T00.00.00.000Z").load().num_rows == 20


def test_only_jobs_can_be_saved(tmp_path, corpus):
    with pytest.raises(DatasetError, match="saves an EncodingJob .* got Dataset"):
        _dataset(tmp_path).save(corpus)


def test_describe_shows_no_token(tmp_path):
    dataset = EmbeddingShardsDataset(filepath=str(tmp_path), credentials={"token": "hf_secret123"})
    assert "hf_secret123" not in str(dataset)
    assert "hf_secret123" not in repr(dataset._describe())
