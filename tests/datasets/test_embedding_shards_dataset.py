"""``EmbeddingShardsDataset``: the shard folder the encode node wrote, and its versions."""

import json

import pytest
from kedro.io import DatasetError
from kedro.io.core import Version

from embedding_distillation.datasets import EmbeddingShardsDataset
from embedding_distillation.encoding.provenance import TeacherEmbeddings
from tests.datasets.conftest import encode_version, shards_dataset, shards_job


def test_save_then_load_a_new_version_with_its_provenance(tmp_path, corpus, teacher_dense):
    encode_version(tmp_path, shards_job(corpus, teacher_dense), save="2026-01-01T00.00.00.000Z")
    dataset = shards_dataset(tmp_path)
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


def test_pinned_load_version(tmp_path, corpus, teacher_dense):
    encode_version(
        tmp_path, shards_job(corpus, teacher_dense, max_samples=20), "2026-01-01T00.00.00.000Z"
    )
    encode_version(tmp_path, shards_job(corpus, teacher_dense), "2026-01-02T00.00.00.000Z")
    assert shards_dataset(tmp_path).load().rows.num_rows == 50
    assert shards_dataset(tmp_path, load="2026-01-01T00.00.00.000Z").load().rows.num_rows == 20


def test_only_the_encode_nodes_folder_can_be_saved(tmp_path, corpus, teacher_dense):
    with pytest.raises(DatasetError, match=r"wrote \(a ShardStore\), got Dataset"):
        shards_dataset(tmp_path).save(corpus)
    store = encode_version(tmp_path, shards_job(corpus, teacher_dense), "2026-01-01T00.00.00.000Z")
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
    encode_version(tmp_path, shards_job(corpus, teacher_dense), "2026-01-01T00.00.00.000Z")
    version = tmp_path / "emb" / "2026-01-01T00.00.00.000Z"
    shard = version / "emb" / "data" / "train-00002.parquet"
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(
        DatasetError,
        match=r"damaged: data/train-00002\.parquet is [\d,]+ bytes, the manifest says [\d,]+\. A "
        rf"rerun encodes a new version rather than repairing a complete one: delete {version} "
        r"and run `kedro run --pipeline teacher_embeddings`, or load another version",
    ):
        shards_dataset(tmp_path).load()


def test_preview_shows_the_first_rows_with_norms_and_leading_dimensions(
    tmp_path, corpus, teacher_dense
):
    encode_version(tmp_path, shards_job(corpus, teacher_dense), "2026-01-01T00.00.00.000Z")
    preview = shards_dataset(tmp_path).preview()
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
