"""Encoding a streamed corpus (``datasets`` streaming=True) from local files."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import IterableDataset

from embedding_distillation.compute import ComputeConfig
from embedding_distillation.corpus import load_corpus
from embedding_distillation.encoding.config import EncodingConfig
from embedding_distillation.encoding.engine import prepare_encoding, run_encoding
from embedding_distillation.encoding.shards import ShardFolderError, ShardStore
from tests.spies import Crash, crash_at, record_encoded

CPU = ComputeConfig(device="cpu", batch_size=4)
COLUMNS = ("row_id", "text", "teacher_embedding_final", "teacher_embedding_pre_dense")


@pytest.fixture
def corpus_file(tmp_path, corpus):
    """The 50-row corpus as a Parquet file, with three invalid texts among the rows."""
    texts = list(corpus["text"])
    texts[3], texts[17], texts[40] = None, "  ", ""
    path = tmp_path / "news.parquet"
    pq.write_table(pa.table({"text": texts, "source": ["fixture"] * len(texts)}), path)
    return path


def _job(source, teacher, *, streaming, chunk_size=8, **options):
    config = EncodingConfig(teacher_model=teacher, chunk_size=chunk_size, **options)
    return prepare_encoding(load_corpus(source, streaming=streaming), config, CPU)


def _columns(store):
    dataset = store.load().with_format("numpy")
    return {name: np.asarray(dataset[name]) for name in COLUMNS}


def _assert_same(streamed, mapped):
    a, b = _columns(streamed), _columns(mapped)
    for name in COLUMNS:
        np.testing.assert_array_equal(a[name], b[name])


@pytest.fixture
def mapped(tmp_path, corpus_file, teacher_dense):
    job = _job(corpus_file, teacher_dense, streaming=False)
    return run_encoding(job, ShardStore(tmp_path / "mapped"))


def test_a_stream_gives_the_same_shards_as_the_mapped_corpus(
    tmp_path, corpus_file, teacher_dense, mapped
):
    job = _job(corpus_file, teacher_dense, streaming=True)
    assert isinstance(job.corpus, IterableDataset) and job.streaming
    assert (job.num_rows, job.num_shards, job.expected_rows) == (None, None, 50)

    streamed = run_encoding(job, ShardStore(tmp_path / "streamed"))

    _assert_same(streamed, mapped)
    manifest = streamed.manifest()  # the counts are known once the stream has ended
    assert manifest["num_rows"] == 47 and len(manifest["shards"]) == 6
    assert manifest["skipped_texts"] == 3
    assert manifest["identity"]["corpus_fingerprint"] == "streamed"
    assert 3 not in _columns(streamed)["row_id"]  # row ids are positions in the stream


def test_max_samples_takes_the_first_rows_of_the_stream(tmp_path, corpus_file, teacher_dense):
    job = _job(corpus_file, teacher_dense, streaming=True, max_samples=20)
    assert job.expected_rows == 20
    store = run_encoding(job, ShardStore(tmp_path / "out"))
    assert list(_columns(store)["row_id"]) == [i for i in range(20) if i not in (3, 17)]


def test_a_killed_stream_resumes_after_its_last_shard(
    tmp_path, corpus_file, teacher_dense, mapped, monkeypatch
):
    job = _job(corpus_file, teacher_dense, streaming=True)
    crash_at(monkeypatch, job, 3)
    with pytest.raises(Crash):
        run_encoding(job, ShardStore(tmp_path / "out"))
    assert ShardStore(tmp_path / "out").num_listed() == 3

    job = _job(corpus_file, teacher_dense, streaming=True)
    encoded = record_encoded(monkeypatch, job)
    resumed = run_encoding(job, ShardStore(tmp_path / "out"))

    assert encoded == [3, 4, 5]
    _assert_same(resumed, mapped)


def test_a_changed_stream_is_refused_on_resume(tmp_path, corpus_file, teacher_dense, monkeypatch):
    job = _job(corpus_file, teacher_dense, streaming=True)
    crash_at(monkeypatch, job, 2)
    with pytest.raises(Crash):
        run_encoding(job, ShardStore(tmp_path / "out"))
    table = pq.read_table(corpus_file)
    texts = table.column("text").to_pylist()
    texts[5] = "a sentence that was not there before"
    pq.write_table(table.set_column(0, "text", pa.array(texts)), corpus_file)

    job = _job(corpus_file, teacher_dense, streaming=True)
    with pytest.raises(ShardFolderError, match="streamed corpus no longer matches .*shard 0"):
        run_encoding(job, ShardStore(tmp_path / "out"))


def test_an_invalid_text_fails_the_stream_at_its_row_and_keeps_the_shards_before(
    tmp_path, corpus_file, teacher_dense
):
    job = _job(corpus_file, teacher_dense, streaming=True, invalid_texts="fail", max_samples=30)
    store = ShardStore(tmp_path / "out")
    with pytest.raises(ValueError, match=r"Row 3 of the streamed corpus has a None, empty"):
        run_encoding(job, store)
    assert store.num_listed() == 0 and not store.is_complete()

    job = _job(corpus_file, teacher_dense, streaming=True, invalid_texts="fail", chunk_size=2)
    with pytest.raises(ValueError, match=r"Row 3 of the streamed corpus"):
        run_encoding(job, ShardStore(tmp_path / "small"))
    assert ShardStore(tmp_path / "small").num_listed() == 1  # rows 0-1, before row 3


def test_a_stream_without_the_text_column_fails_before_any_weights_load(corpus_file, teacher_dense):
    with pytest.raises(ValueError, match=r"Text column 'body' not found .*\['text', 'source'\]"):
        _job(corpus_file, teacher_dense, streaming=True, text_column="body")


def test_a_stream_of_invalid_texts_only_is_refused(tmp_path, teacher_dense):
    path = tmp_path / "blank.parquet"
    pq.write_table(pa.table({"text": ["", "  ", None, ""]}), path)
    job = _job(path, teacher_dense, streaming=True)
    with pytest.raises(ValueError, match=r"All 4 texts in column 'text' of the streamed corpus"):
        run_encoding(job, ShardStore(tmp_path / "out"))
