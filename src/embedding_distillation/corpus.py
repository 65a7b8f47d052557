"""Reading a text corpus from a Hub id, a local file or folder, or a ``datasets.Dataset``.

A corpus is either map-style (a memory-mapped ``datasets.Dataset``) or streamed (a
``datasets.IterableDataset`` from ``streaming=True``: nothing is downloaded or cached before
encoding starts). Its texts are checked by :mod:`~embedding_distillation.encoding.texts`, before
any model is loaded.
"""

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TypeAlias

import datasets
from datasets import Dataset, DatasetDict, IterableDataset
from datasets.exceptions import DatasetGenerationError

from embedding_distillation.corpus_files import explain_load_error
from embedding_distillation.encoding.shards import MANIFEST_NAME, ShardStore
from embedding_distillation.encoding.texts import Corpus, limit_rows
from embedding_distillation.hub_reachability import check_hub_reachable
from embedding_distillation.models import looks_like_local_path

# File suffix -> `datasets` builder name for local files.
BUILDERS = {
    ".parquet": "parquet",
    ".jsonl": "json",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "text",
    ".arrow": "arrow",
}

CorpusSource: TypeAlias = str | os.PathLike[str] | Dataset | IterableDataset


def load_corpus(
    source: CorpusSource,
    *,
    split: str = "train",
    max_samples: int | None = None,
    streaming: bool = False,
    token: str | None = None,
) -> Corpus:
    """Load a corpus as a memory-mapped ``datasets.Dataset``, or stream it.

    Args:
        source: A ``Dataset`` or ``IterableDataset``, a folder saved with ``save_to_disk``, a
            teacher-embeddings shard folder, a data file (parquet, jsonl, json, csv, tsv, txt,
            arrow), a folder of such files, or a Hub id.
        split: Split to take when the source has several.
        max_samples: Keep only the first N rows.
        streaming: Read data files and Hub datasets with ``streaming=True`` (an
            ``IterableDataset``): rows are read as they are encoded, with no download or Arrow
            cache beforehand (local text files are read once first, to check they are UTF-8).
            Folders saved with ``save_to_disk`` and shard folders are memory-mapped already;
            they are streamed from their Arrow files.
        token: Hub token for a private Hub dataset (``None``: ``HF_TOKEN`` or the stored
            login); never shown.

    Returns:
        The rows, in source order.
    """
    dataset: Corpus
    if isinstance(source, Dataset | IterableDataset):
        dataset = source
    elif isinstance(source, DatasetDict):
        dataset = _pick_split(source, split, repr(source))
    else:
        dataset = _load_from_reference(os.fspath(source), split, streaming, token)
    if streaming and isinstance(dataset, Dataset):
        name = dataset.info.dataset_name
        dataset = dataset.to_iterable_dataset()
        dataset.info.dataset_name = name
    return limit_rows(dataset, max_samples)


def corpus_name(source: CorpusSource) -> str:
    """The corpus's name in logs, provenance, dataset cards and default folder and repo names.

    The one rule for every front door: a file, folder or Hub id is named by its last part as
    given (``data/news.parquet`` -> ``news.parquet``), a dataset by the name it carries
    (:func:`load_corpus` names local files and folders after them), an unnamed in-memory
    ``Dataset`` ``dataset-<first 8 characters of its fingerprint>`` (so two different ones get
    different default folders), anything else ``corpus``.
    """
    if isinstance(source, Dataset) and not source.info.dataset_name:
        # datasets has no public accessor for the content fingerprint it keeps per table.
        return f"dataset-{source._fingerprint[:8]}"
    if isinstance(source, Dataset | IterableDataset):
        return source.info.dataset_name or "corpus"
    return Path(os.fspath(source)).name or "corpus"


def _load_from_reference(text: str, split: str, streaming: bool, token: str | None) -> Corpus:
    path = Path(text).expanduser()
    if path.is_file():
        builder = BUILDERS.get("".join(path.suffixes[-1:]).lower())
        if builder is None:
            raise ValueError(
                f"Cannot read corpus file {text!r}: unknown suffix. Supported: "
                f"{sorted(BUILDERS)}. Convert it, or pass a folder saved with save_to_disk."
            )
        with _clear_file_errors(path, streaming):
            loaded = datasets.load_dataset(
                builder, data_files={split: str(path)}, split=split, streaming=streaming
            )
        return _named(_as_dataset(loaded, split, text), path.stem)
    if path.is_dir():
        if (path / MANIFEST_NAME).exists():  # teacher embeddings written by this project
            return _named(ShardStore(path).load(), path.name)
        if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
            return _named(_as_dataset(datasets.load_from_disk(str(path)), split, text), path.name)
        with _clear_file_errors(path, streaming):
            loaded = datasets.load_dataset(str(path), split=split, streaming=streaming)
        return _named(_as_dataset(loaded, split, text), path.name)
    if looks_like_local_path(text) or not text:
        raise FileNotFoundError(
            f"Corpus path {text!r} does not exist (working directory: {Path.cwd()}). Pass an "
            "existing file or folder, or a Hugging Face Hub dataset id such as 'org/name'."
        )
    check_hub_reachable(text, repo_type="dataset", what="corpus")
    try:
        loaded = datasets.load_dataset(text, split=split, streaming=streaming, token=token)
    except Exception as e:  # datasets raises many types for a missing/unreachable repo
        raise OSError(
            f"Could not load dataset {text!r} (split {split!r}) from the Hugging Face Hub: {e}. "
            "Check the id, the split name and network/HF_ENDPOINT; if you meant a local path, "
            "it does not exist. A private dataset needs a token: `credentials: huggingface` on "
            "the catalog entry (conf/local/credentials.yml), or HF_TOKEN."
        ) from e
    return _as_dataset(loaded, split, text)


@contextlib.contextmanager
def _clear_file_errors(path: Path, streaming: bool) -> Iterator[None]:
    """Turn ``datasets``' generic generation error into one that names the file at fault.

    ``path`` is the data file, or the folder of data files, being loaded. A streamed corpus is
    read later, while encoding, where such an error would come after shards were written: its
    files are checked up front instead (0 rows, and every byte of the text files decoded once).
    """
    if streaming and (clear := explain_load_error(_data_files(path))) is not None:
        raise clear
    try:
        yield
    except DatasetGenerationError as e:
        clear = explain_load_error(_data_files(path))
        if clear is None:
            raise
        raise clear from e


def _data_files(path: Path) -> list[Path]:
    """``path`` itself, or the files in the folder ``path``."""
    return [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())


def _named(dataset: Corpus, name: str) -> Corpus:
    """Name a local corpus after its file or folder (the builder name, e.g. 'parquet', otherwise).

    The name is used in logs and in the default Hub repo name ``<user>/<name>-embeddings``.
    """
    dataset.info.dataset_name = name
    return dataset


def _as_dataset(loaded: object, split: str, name: str) -> Corpus:
    if isinstance(loaded, DatasetDict):
        return _pick_split(loaded, split, name)
    assert isinstance(loaded, Dataset | IterableDataset), type(loaded)
    return loaded


def _pick_split(dataset_dict: DatasetDict, split: str, name: str) -> Dataset:
    if split not in dataset_dict:
        raise ValueError(
            f"Split {split!r} not found in {name}; available splits: {sorted(dataset_dict)}. "
            "Set `split` to one of them."
        )
    return dataset_dict[split]
