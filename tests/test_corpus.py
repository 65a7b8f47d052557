import pytest
from datasets import DatasetDict, IterableDataset

from embedding_distillation.corpus import load_corpus
from embedding_distillation.encoding.texts import limit_rows


def test_dataset_passes_through_and_max_samples_keeps_the_first_rows(corpus):
    assert load_corpus(corpus) is corpus
    limited = load_corpus(corpus, max_samples=5)
    assert limited["text"] == corpus["text"][:5]
    assert limit_rows(corpus, 1000) is corpus


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".csv"])
def test_local_files_load_in_order(tmp_path, corpus, suffix):
    path = tmp_path / f"corpus{suffix}"
    {".parquet": corpus.to_parquet, ".jsonl": corpus.to_json, ".csv": corpus.to_csv}[suffix](
        str(path)
    )
    assert load_corpus(path)["text"] == corpus["text"]


@pytest.mark.parametrize("kind", ["file", "saved folder", "dataset"])
def test_streaming_reads_the_same_rows_in_order(tmp_path, corpus, kind):
    corpus.to_parquet(str(tmp_path / "news.parquet"))
    corpus.save_to_disk(tmp_path / "saved")
    source = {"file": tmp_path / "news.parquet", "saved folder": tmp_path / "saved"}.get(
        kind, corpus
    )
    streamed = load_corpus(source, streaming=True, max_samples=30)
    assert isinstance(streamed, IterableDataset)
    assert [row["text"] for row in streamed] == corpus["text"][:30]
    if kind == "file":
        assert streamed.info.dataset_name == "news"


def test_saved_dataset_dict_picks_the_split(tmp_path, corpus):
    DatasetDict({"train": corpus, "test": corpus.select(range(3))}).save_to_disk(tmp_path / "dd")
    assert len(load_corpus(tmp_path / "dd", split="test")) == 3
    with pytest.raises(
        ValueError, match=r"Split 'dev' not found .*available splits: \['test', 'train'\]"
    ):
        load_corpus(tmp_path / "dd", split="dev")


def test_missing_local_path_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Corpus path '\./nope\.parquet' does not exist"):
        load_corpus("./nope.parquet")


def test_unknown_suffix_lists_the_supported_ones(tmp_path):
    path = tmp_path / "corpus.xlsx"
    path.write_text("x")
    with pytest.raises(ValueError, match=r"unknown suffix\. Supported: \['\.arrow'"):
        load_corpus(path)


def test_unreachable_hub_id_explains_the_options():
    with pytest.raises(OSError, match="Could not load dataset 'someone/missing-corpus'"):
        load_corpus("someone/missing-corpus")
