import pytest
from kedro.io import DatasetError

from embedding_distillation.datasets import CorpusDataset


def test_loads_a_local_parquet_file(tmp_path, corpus):
    corpus.to_parquet(str(tmp_path / "c.parquet"))
    dataset = CorpusDataset(source=str(tmp_path / "c.parquet"))
    assert dataset.exists()
    assert dataset.load()["text"] == corpus["text"]


def test_streaming_loads_an_iterable_dataset_and_is_described(tmp_path, corpus):
    from datasets import IterableDataset

    corpus.to_parquet(str(tmp_path / "c.parquet"))
    dataset = CorpusDataset(source=str(tmp_path / "c.parquet"), streaming=True)
    loaded = dataset.load()
    assert isinstance(loaded, IterableDataset)
    assert [row["text"] for row in loaded] == corpus["text"]
    assert "streaming=True" in str(dataset)


def test_optional_missing_source_loads_none(tmp_path):
    dataset = CorpusDataset(source=str(tmp_path / "gold.parquet"), optional=True)
    assert dataset.load() is None
    with pytest.raises(DatasetError, match="gold.parquet' does not exist"):
        CorpusDataset(source=str(tmp_path / "gold.parquet")).load()


def test_describing_a_hub_corpus_touches_no_network(monkeypatch):
    import datasets

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("network"))
    dataset = CorpusDataset(source="org/corpus", credentials={"token": "hf_secret123"})
    assert "org/corpus" in str(dataset) and "hf_secret123" not in str(dataset)
    assert dataset.exists()


def test_is_read_only(tmp_path):
    with pytest.raises(DatasetError, match="is read-only"):
        CorpusDataset(source="x/y").save("anything")
