import json

import numpy as np
import pyarrow as pa
import pytest

from embedding_distillation.encoding.shards import (
    DamagedShardError,
    ShardFolderError,
    ShardStore,
    embedding_array,
)

IDENTITY = {"teacher_fingerprint": "abc", "num_rows": 4}


def _table(start, rows, dtype="float32"):
    values = np.arange(start * 3, (start + rows) * 3, dtype=np.float32).reshape(rows, 3)
    return pa.table(
        {"row_id": pa.array(range(start, start + rows)), "emb": embedding_array(values, dtype)}
    )


def test_shards_and_manifest_round_trip(tmp_path):
    store = ShardStore(tmp_path / "out")
    assert store.begin(IDENTITY) == set()
    store.write_shard(0, _table(0, 2))
    store.write_shard(1, _table(2, 2))
    store.finish(seconds=1.0)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["complete"] and manifest["num_rows"] == 4 and manifest["seconds"] == 1.0
    assert [s["file"] for s in manifest["shards"]] == [
        "data/train-00000.parquet",
        "data/train-00001.parquet",
    ]
    loaded = store.load()
    assert loaded["row_id"] == [0, 1, 2, 3]
    assert loaded.features["emb"].length == 3
    np.testing.assert_array_equal(np.asarray(loaded["emb"][3]), [9, 10, 11])


def test_float16_storage_round_trips_within_half_precision(tmp_path):
    values = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    column = embedding_array(values, "float16")
    assert column.type.value_type == pa.float16()
    back = np.asarray(column.values.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(5, 8)
    np.testing.assert_allclose(back, values, rtol=1e-3, atol=1e-3)


def test_a_different_job_is_refused_with_what_changed(tmp_path):
    store = ShardStore(tmp_path)
    store.begin(IDENTITY)
    with pytest.raises(
        ShardFolderError,
        match=r"different job \(changed: \['teacher_fingerprint'\]\); refusing to mix",
    ):
        store.begin({**IDENTITY, "teacher_fingerprint": "other"})


def test_a_foreign_folder_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ShardFolderError, match="is not empty but has no manifest.json"):
        ShardStore(tmp_path).begin(IDENTITY)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ('{"format_version": 99}', "is not a teacher-embeddings manifest"),
    ],
)
def test_a_corrupt_manifest_is_an_error(tmp_path, content, message):
    (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(ShardFolderError, match=message):
        ShardStore(tmp_path).begin(IDENTITY)


def _three_shards(folder):
    store = ShardStore(folder)
    store.begin(IDENTITY)
    for index in range(3):
        store.write_shard(index, _table(2 * index, 2))
    store.finish()
    return store


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF  # inside the data pages: the footer still reads
    path.write_bytes(bytes(data))


def test_the_manifest_records_each_shard_size_and_sha256(tmp_path):
    import hashlib

    store = _three_shards(tmp_path)
    for shard in store.manifest()["shards"]:
        data = (tmp_path / shard["file"]).read_bytes()
        assert shard["size"] == len(data)
        assert shard["sha256"] == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (_truncate, r"is [\d,]+ bytes, the manifest says [\d,]+"),
        (_flip_a_byte, r"does not match the sha256 in the manifest \(its bytes changed\)"),
        (lambda path: path.unlink(), "is missing"),
    ],
)
def test_loading_names_a_damaged_shard_and_the_fix(tmp_path, damage, problem):
    _three_shards(tmp_path)
    damage(tmp_path / "data" / "train-00001.parquet")
    with pytest.raises(
        DamagedShardError,
        match=rf"in {tmp_path} are damaged: data/train-00001.parquet {problem}\. Encoding the "
        r"same job into this folder again .* re-encodes only the damaged shard",
    ) as error:
        ShardStore(tmp_path).load()
    assert [d.file for d in error.value.damage] == ["data/train-00001.parquet"]


def test_a_flipped_byte_passes_the_parquet_reader_unnoticed(tmp_path):
    """Why the sha256 is needed: the damaged shard still reads, with other values."""
    import pyarrow.parquet as pq

    store = _three_shards(tmp_path)
    path = tmp_path / "data" / "train-00001.parquet"
    before = pq.read_table(path)
    _flip_a_byte(path)
    try:
        assert not pq.read_table(path).equals(before)
    except (OSError, pa.ArrowException):
        pass  # or it no longer decodes at all: either way the sha256 names the shard first
    assert [d.file for d in store.damaged_shards()] == ["data/train-00001.parquet"]


@pytest.mark.parametrize("damage", [_truncate, _flip_a_byte, lambda path: path.unlink()])
def test_resuming_drops_a_damaged_shard_and_keeps_the_ones_after_it(tmp_path, damage, caplog):
    _three_shards(tmp_path)
    damage(tmp_path / "data" / "train-00001.parquet")
    store = ShardStore(tmp_path)
    with caplog.at_level("WARNING"):
        assert store.begin(IDENTITY) == {0, 2}  # shard 2 is intact: kept, listed after 1
    assert "Shard data/train-00001.parquet in" in caplog.text and "encoding it again" in caplog.text
    manifest = store.manifest()
    assert not manifest["complete"] and manifest["num_rows"] == 2
    assert not (tmp_path / "data" / "train-00001.parquet").exists()
    store.write_shard(1, _table(2, 2))  # the rerun encodes it again
    assert [s["first_row"] for s in store.manifest()["shards"]] == [0, 2, 4]


def test_a_manifest_without_checksums_loads_and_says_once_it_is_unverified(tmp_path, caplog):
    store = _three_shards(tmp_path)
    manifest = json.loads(store.manifest_path.read_text())
    for shard in manifest["shards"]:  # as written before checksums were recorded
        del shard["size"], shard["sha256"]
    store.manifest_path.write_text(json.dumps(manifest))
    with caplog.at_level("WARNING"):
        assert ShardStore(tmp_path).load()["row_id"] == list(range(6))
    lines = [r.getMessage() for r in caplog.records if "unverified" in r.getMessage()]
    assert lines == [
        f"{tmp_path}: 3 of 3 shards are unverified (the manifest predates shard checksums; "
        "only their Parquet footers were checked)"
    ]
    _truncate(tmp_path / "data" / "train-00002.parquet")  # what can still be caught
    with pytest.raises(DamagedShardError, match="train-00002.parquet is not a readable Parquet"):
        ShardStore(tmp_path).load()
    assert ShardStore(tmp_path).begin(IDENTITY) == {0, 1}  # an old run resumes as before


def test_hidden_files_do_not_make_a_new_folder_foreign(tmp_path):
    (tmp_path / ".writer.lock").touch()
    assert ShardStore(tmp_path).begin(IDENTITY) == set()


def test_unlisted_leftovers_are_removed_on_resume(tmp_path):
    store = ShardStore(tmp_path)
    store.begin(IDENTITY)
    store.write_shard(0, _table(0, 2))
    leftover = tmp_path / "data" / ".train-00001.parquet.tmp"
    leftover.write_bytes(b"half a shard")
    assert store.begin(IDENTITY) == {0}
    assert not leftover.exists()


def test_loading_an_unfinished_folder_says_to_run_the_pipeline(tmp_path):
    store = ShardStore(tmp_path)
    store.begin(IDENTITY)
    with pytest.raises(
        ShardFolderError, match=r"does not hold complete teacher embeddings \(0 shards\)"
    ):
        store.load()


def test_unlisted_complete_shards_count_as_done_and_are_listed_up_to_a_gap(tmp_path):
    store = ShardStore(tmp_path)
    store.begin(IDENTITY)
    store.write_shard(0, _table(0, 2))
    for index in (1, 3):  # written by other processes; the manifest has not caught up
        store.write_shard_file(index, _table(2 * index, 2))
    assert store.num_listed() == 1
    assert store.begin(IDENTITY) == {0, 1, 3}
    assert store.num_listed() == 2  # shard 1 follows shard 0; shard 3 waits for shard 2
    store.write_shard_file(2, _table(4, 2))
    assert store.list_completed() == 4
    manifest = store.manifest()
    assert [s["first_row"] for s in manifest["shards"]] == [0, 2, 4, 6]
    assert manifest["num_rows"] == 8


def test_an_unreadable_unlisted_shard_is_removed_on_resume(tmp_path):
    store = ShardStore(tmp_path)
    store.begin(IDENTITY)
    broken = tmp_path / "data" / "train-00001.parquet"
    broken.write_bytes(b"not parquet")
    assert store.begin(IDENTITY) == set()
    assert not broken.exists()


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_embedding_columns_are_stored_byte_stream_split(tmp_path, dtype):
    import pyarrow.parquet as pq

    values = np.random.default_rng(0).standard_normal((64, 16)).astype(np.float32) / 8
    table = pa.table(
        {
            "row_id": pa.array(range(64)),
            "text": pa.array([f"text {i}" for i in range(64)]),
            "emb": embedding_array(values, dtype),
        }
    )
    store = ShardStore(tmp_path / "out")
    store.begin(IDENTITY)
    store.write_shard(0, table)
    store.finish()
    metadata = pq.ParquetFile(tmp_path / "out" / "data" / "train-00000.parquet").metadata
    encodings = {
        metadata.row_group(0).column(i).path_in_schema: metadata.row_group(0).column(i).encodings
        for i in range(metadata.num_columns)
    }
    assert "BYTE_STREAM_SPLIT" in encodings["emb.list.element"]
    assert not any("DICTIONARY" in e for names in encodings.values() for e in names)
    np.testing.assert_array_equal(
        np.asarray(store.load()["emb"], dtype=np.float32), values.astype(dtype)
    )
