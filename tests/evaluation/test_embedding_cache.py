"""The embedding cache: mteb's CachedEmbeddingWrapper in a folder per model weights and settings."""

import logging
import warnings

import numpy as np
import pytest
from datasets import Dataset

from embedding_distillation.evaluation.embedding_cache import (
    INITIAL_ROWS,
    cache_folder,
    mteb_encoders,
    with_cache,
)
from embedding_distillation.evaluation.encoders import EvaluatedModel
from embedding_distillation.evaluation.mteb_tasks import MtebEncoder, run_encoder
from embedding_distillation.evaluation.retrieval import (
    RETRIEVAL_TASK,
    local_retrieval_task,
    retrieval_scores,
)

RNG = np.random.default_rng(0)
VECTORS = {f"{kind}{i}": RNG.normal(size=4).tolist() for kind in "qd" for i in range(6)}
ROWS = Dataset.from_dict(
    {
        "id": [str(i) for i in range(6)],
        "query": [f"q{i}" for i in range(6)],
        "document": [f"d{i}" for i in range(6)],
    }
)


class Counter:
    """Encodes each text to a fixed vector; counts encode calls per text."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts, batch_size=32):
        self.seen += texts
        return np.array([VECTORS[text] for text in texts], dtype=np.float32)


def _model(encoder, key: str | None = "0123abcd-ffff0000") -> EvaluatedModel:
    return EvaluatedModel(encoder=encoder, source="models/tiny", revision="r1", cache_key=key)


def _run(encoder, folder, rows=ROWS):
    cached = with_cache(MtebEncoder(_model(encoder), "teacher"), folder)
    try:
        return retrieval_scores(run_encoder(cached, [local_retrieval_task(rows)], batch_size=4))
    finally:
        cached.close()


def test_the_second_run_takes_every_embedding_from_the_cache(tmp_path):
    counter = Counter()
    first = _run(counter, tmp_path)
    assert sorted(counter.seen) == sorted(VECTORS)  # each text encoded once
    counter.seen.clear()
    assert _run(counter, tmp_path) == first  # a new wrapper, as in the next run
    assert counter.seen == []
    documents = tmp_path / RETRIEVAL_TASK / "document"
    assert (documents / "vectors.npy").stat().st_size == INITIAL_ROWS * 4 * 4  # float32, 4-d


def test_new_texts_alone_are_encoded(tmp_path):
    counter = Counter()
    _run(counter, tmp_path, ROWS.select(range(3)))
    counter.seen.clear()
    _run(counter, tmp_path)
    assert sorted(counter.seen) == ["d3", "d4", "d5", "q3", "q4", "q5"]


def test_a_text_twice_in_one_call_is_stored_once_without_warnings(tmp_path):
    counter = Counter()
    rows = Dataset.from_dict({"id": ["0", "1"], "query": ["q0", "q0"], "document": ["d0", "d1"]})
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # mteb warns on a duplicate, and on no files
        _run(counter, tmp_path, rows)
    counter.seen.clear()
    _run(counter, tmp_path, rows)
    assert counter.seen == []


def test_a_damaged_cache_is_emptied_and_filled_again(tmp_path, caplog):
    counter = Counter()
    first = _run(counter, tmp_path)
    (tmp_path / RETRIEVAL_TASK / "document" / "index.json").write_text('{"trunc')
    counter.seen.clear()
    with caplog.at_level(logging.WARNING):
        assert _run(counter, tmp_path) == first
    assert "is damaged" in caplog.text and "emptied" in caplog.text
    assert sorted(counter.seen) == [f"d{i}" for i in range(6)]  # the queries' cache was intact


def test_the_folder_is_named_by_source_and_cache_key(tmp_path):
    assert cache_folder(tmp_path, _model(Counter())) == tmp_path / "tiny" / "0123abcd-ffff0000"
    assert cache_folder(tmp_path, _model(Counter(), key=None)) is None


def test_only_the_cached_roles_keep_their_embeddings(tmp_path):
    models = {
        "teacher": _model(Counter()),
        "student_after": _model(Counter()),
        "onnx": _model(Counter(), key=None),
    }
    lasting, scratch = tmp_path / "cache", tmp_path / "scratch"
    with mteb_encoders(models, cache_dir=lasting, cached=("teacher",), scratch=scratch) as found:
        assert found["teacher"].cache_path == lasting / "tiny" / "0123abcd-ffff0000"
        assert found["student_after"].cache_path == scratch / "student_after"
        assert found["onnx"].cache_path == scratch / "onnx"
    with mteb_encoders(models, cache_dir=None, cached=("teacher",), scratch=None) as plain:
        assert all(type(encoder) is MtebEncoder for encoder in plain.values())
    with mteb_encoders(models, cache_dir=lasting, cached=("teacher",), scratch=None) as only:
        assert type(only["student_after"]) is MtebEncoder
        assert only["teacher"].mteb_model_meta.name == "teacher/models/tiny"


@pytest.mark.parametrize("role", ["teacher", "student_before"])
def test_a_cached_role_without_a_key_is_not_kept(tmp_path, role):
    models = {role: _model(Counter(), key=None)}
    with mteb_encoders(models, cache_dir=tmp_path, cached=(role,), scratch=None) as encoders:
        assert type(encoders[role]) is MtebEncoder


def test_a_cache_folder_another_run_holds_is_left_alone(tmp_path, caplog):
    """mteb's numpy cache has no lock: two writers would map texts to each other's rows."""
    import fcntl

    models = {"teacher": _model(Counter())}
    folder = tmp_path / "cache" / "tiny" / "0123abcd-ffff0000"
    folder.mkdir(parents=True)
    with (folder / ".lock").open("w") as other_run:
        fcntl.flock(other_run, fcntl.LOCK_EX)  # as another process holding it would
        with (
            caplog.at_level(logging.INFO, logger="embedding_distillation"),
            mteb_encoders(
                models, cache_dir=tmp_path / "cache", cached=("teacher",), scratch=tmp_path / "s"
            ) as encoders,
        ):
            assert encoders["teacher"].cache_path == tmp_path / "s" / "teacher"
    assert "is in use by another run: this run keeps its own" in caplog.text


def test_only_rank_zero_keeps_a_lasting_cache(tmp_path, monkeypatch):
    from embedding_distillation import distributed

    monkeypatch.setattr(distributed, "is_main", lambda: False)
    models = {"teacher": _model(Counter())}
    with mteb_encoders(
        models, cache_dir=tmp_path / "cache", cached=("teacher",), scratch=tmp_path / "s"
    ) as encoders:
        assert encoders["teacher"].cache_path == tmp_path / "s" / "teacher"
