"""The teacher_embeddings datasets: the shard folder the encode node writes, and its versions."""

import json
import logging

import pytest
from kedro.io import DatasetError
from kedro.io.core import Version

from embedding_distillation.compute import ComputeConfig
from embedding_distillation.datasets import (
    EmbeddingShardsDataset,
    EmbeddingsWriterDataset,
    HubEmbeddingsDataset,
)
from embedding_distillation.encoding.config import EncodingConfig
from embedding_distillation.encoding.job import prepare_encoding
from embedding_distillation.encoding.lock import FolderInUseError, WriterLock
from embedding_distillation.encoding.provenance import TeacherEmbeddings
from embedding_distillation.encoding.run import encode_to_shards
from embedding_distillation.hub import EmbeddingsPush
from tests.spies import Crash, crash_at, record_encoded


def _job(corpus, teacher, **options):
    config = EncodingConfig(teacher_model=teacher, chunk_size=16, **options)
    return prepare_encoding(corpus, config, ComputeConfig(device="cpu", batch_size=8))


def _dataset(root, save=None, load=None):
    return EmbeddingShardsDataset(filepath=str(root / "emb"), version=Version(load, save))


def _encode(root, job, save=None):
    """What the encode node does, then the save of its output: one run of the pipeline."""
    output = EmbeddingsWriterDataset(filepath=str(root / "emb"), version=Version(None, save))
    store = encode_to_shards(job, output.load())
    _dataset(root, save=save).save(store)
    return store


def test_save_then_load_a_new_version_with_its_provenance(tmp_path, corpus, teacher_dense):
    _encode(tmp_path, _job(corpus, teacher_dense), save="2026-01-01T00.00.00.000Z")
    dataset = _dataset(tmp_path)
    assert dataset.exists()
    embeddings = dataset.load()
    assert isinstance(embeddings, TeacherEmbeddings)
    assert embeddings.rows.num_rows == 50
    provenance = embeddings.provenance
    assert (provenance.teacher_model, provenance.version) == (
        teacher_dense,
        "2026-01-01T00.00.00.000Z",
    )
    assert provenance.output_type == "final" and provenance.embedding_dtype == "float32"
    assert provenance.columns == {"teacher_embedding_final": 40, "teacher_embedding_pre_dense": 48}
    assert len(provenance.teacher_fingerprint) == 64 and len(provenance.corpus_fingerprint) == 64
    assert dataset.list_versions(full_path=False) == ["2026-01-01T00.00.00.000Z"]


def test_an_unfinished_version_of_the_same_job_is_adopted(
    tmp_path, corpus, teacher_dense, monkeypatch, caplog
):
    job = _job(corpus, teacher_dense)
    crash_at(monkeypatch, job, 1)
    with pytest.raises(Crash):  # the node's own error, not a dataset's
        _encode(tmp_path, job, save="2026-01-01T00.00.00.000Z")
    monkeypatch.undo()
    assert not _dataset(tmp_path).exists()  # an unfinished version is never loaded

    job = _job(corpus, teacher_dense)
    encoded = record_encoded(monkeypatch, job)
    with caplog.at_level(logging.INFO):
        _encode(tmp_path, job, save="2026-01-02T00.00.00.000Z")
    assert encoded == [1, 2, 3]
    assert "Resuming the unfinished run" in caplog.text
    dataset = _dataset(tmp_path)
    assert dataset.list_versions(full_path=False) == ["2026-01-02T00.00.00.000Z"]
    assert not (tmp_path / "emb" / "2026-01-01T00.00.00.000Z").exists()
    assert dataset.load().rows["row_id"] == list(range(50))


def test_an_unfinished_version_of_another_job_is_left_alone(
    tmp_path, corpus, teacher_dense, monkeypatch, caplog
):
    job = _job(corpus, teacher_dense, max_samples=40)
    crash_at(monkeypatch, job, 1)
    with pytest.raises(Crash):
        _encode(tmp_path, job, save="2026-01-01T00.00.00.000Z")
    monkeypatch.undo()
    with caplog.at_level(logging.WARNING):
        _encode(tmp_path, _job(corpus, teacher_dense), save="2026-01-02T00.00.00.000Z")
    assert "made with other settings, teacher or corpus; starting a new version" in caplog.text
    manifest = json.loads(
        (tmp_path / "emb" / "2026-01-01T00.00.00.000Z" / "emb" / "manifest.json").read_text()
    )
    assert not manifest["complete"]


def test_a_version_being_written_by_another_process_is_not_adopted(
    tmp_path, corpus, teacher_dense, monkeypatch
):
    job = _job(corpus, teacher_dense)
    crash_at(monkeypatch, job, 1)
    with pytest.raises(Crash):
        _encode(tmp_path, job, save="2026-01-01T00.00.00.000Z")
    monkeypatch.undo()
    unfinished = tmp_path / "emb" / "2026-01-01T00.00.00.000Z" / "emb"
    with WriterLock.acquire(unfinished):  # stands for a run still writing it
        load = record_encoded(monkeypatch)
        with pytest.raises(FolderInUseError, match=rf"{unfinished} is being written by another"):
            _encode(tmp_path, _job(corpus, teacher_dense), save="2026-01-02T00.00.00.000Z")
        assert load == []  # refused before encoding anything
    assert unfinished.exists()  # left where it was


def test_pinned_load_version(tmp_path, corpus, teacher_dense):
    _encode(tmp_path, _job(corpus, teacher_dense, max_samples=20), "2026-01-01T00.00.00.000Z")
    _encode(tmp_path, _job(corpus, teacher_dense), "2026-01-02T00.00.00.000Z")
    assert _dataset(tmp_path).load().rows.num_rows == 50
    assert _dataset(tmp_path, load="2026-01-01T00.00.00.000Z").load().rows.num_rows == 20


def test_only_the_encode_nodes_folder_can_be_saved(tmp_path, corpus, teacher_dense):
    with pytest.raises(DatasetError, match=r"wrote \(a ShardStore\), got Dataset"):
        _dataset(tmp_path).save(corpus)
    store = _encode(tmp_path, _job(corpus, teacher_dense), "2026-01-01T00.00.00.000Z")
    other = EmbeddingShardsDataset(
        filepath=str(tmp_path / "elsewhere"), version=Version(None, None)
    )
    with pytest.raises(
        DatasetError,
        match=r"not a version of .*elsewhere\. The teacher_embeddings_writer entry of the "
        r"catalog must have the filepath \(and the versioned setting\) of teacher_embeddings",
    ):
        other.save(store)


def test_a_damaged_version_names_the_shard_and_how_to_recover(tmp_path, corpus, teacher_dense):
    _encode(tmp_path, _job(corpus, teacher_dense), "2026-01-01T00.00.00.000Z")
    version = tmp_path / "emb" / "2026-01-01T00.00.00.000Z"
    shard = version / "emb" / "data" / "train-00002.parquet"
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(
        DatasetError,
        match=r"damaged: data/train-00002\.parquet is [\d,]+ bytes, the manifest says [\d,]+\. A "
        rf"rerun encodes a new version rather than repairing a complete one: delete {version} "
        r"and run `kedro run --pipeline teacher_embeddings`, or load another version",
    ):
        _dataset(tmp_path).load()


def test_preview_shows_the_first_rows_with_norms_and_leading_dimensions(
    tmp_path, corpus, teacher_dense
):
    _encode(tmp_path, _job(corpus, teacher_dense), "2026-01-01T00.00.00.000Z")
    preview = _dataset(tmp_path).preview()
    assert preview["columns"][:4] == [
        "row_id",
        "text",
        "teacher_embedding_final norm",
        "teacher_embedding_final[0]",
    ]
    assert "teacher_embedding_pre_dense norm" in preview["columns"]
    assert preview["index"] == [0, 1, 2, 3, 4]
    rows = {name: [row[i] for row in preview["data"]] for i, name in enumerate(preview["columns"])}
    assert rows["row_id"] == [0, 1, 2, 3, 4]
    assert rows["text"] == [text[:80] for text in corpus["text"][:5]]
    assert rows["teacher_embedding_final norm"] == pytest.approx([1.0] * 5, abs=1e-3)  # Normalize
    json.dumps(preview)  # what kedro-viz sends to the browser


def test_the_writer_is_load_only_and_loading_writes_nothing(tmp_path):
    writer = EmbeddingsWriterDataset(filepath=str(tmp_path / "emb"), version=Version(None, None))
    target = writer.load()
    assert not (tmp_path / "emb").exists()
    assert target.target.parent.parent == tmp_path / "emb"
    with pytest.raises(DatasetError, match="EmbeddingsWriterDataset is load-only"):
        writer.save("shards")


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


def test_an_unfinished_version_written_before_checksums_and_locks_is_adopted(
    tmp_path, corpus, teacher_dense, monkeypatch, caplog
):
    """As the runs started with the previous code leave their versions: adopted and finished."""
    job = _job(corpus, teacher_dense)
    crash_at(monkeypatch, job, 2)
    with pytest.raises(Crash):
        _encode(tmp_path, job, save="2026-01-01T00.00.00.000Z")
    monkeypatch.undo()
    old = tmp_path / "emb" / "2026-01-01T00.00.00.000Z" / "emb"
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["provenance"]
    for shard in manifest["shards"]:
        del shard["size"], shard["sha256"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    for hidden in old.glob(".writer.*"):
        hidden.unlink()

    job = _job(corpus, teacher_dense)
    encoded = record_encoded(monkeypatch, job)
    with caplog.at_level(logging.INFO):
        _encode(tmp_path, job, save="2026-01-02T00.00.00.000Z")
    assert encoded == [2, 3]
    assert "Resuming the unfinished run" in caplog.text
    embeddings = _dataset(tmp_path).load()
    assert embeddings.rows["row_id"] == list(range(50))
    assert embeddings.provenance.teacher_model == teacher_dense
    shards = json.loads((embeddings.folder / "manifest.json").read_text())["shards"]
    assert ["sha256" in shard for shard in shards] == [False, False, True, True]
    assert "2 of 4 shards are unverified" in caplog.text
