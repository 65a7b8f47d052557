"""MTEB tasks through mteb: the local STS Benchmark against hand computations, names, errors."""

import math
import sys

import numpy as np
import pytest
from datasets import Dataset
from sentence_transformers import SentenceTransformer

from embedding_distillation.evaluation.encoders import EvaluatedModel, from_sentence_transformer
from embedding_distillation.evaluation.mteb_tasks import (
    MtebEncoder,
    check_task_names,
    import_mteb,
    local_sts_benchmark,
    main_scores,
    resolve_tasks,
    run_tasks,
    sts_benchmark_scores,
)
from tests.conftest import make_sentences

S = 1 / math.sqrt(2)
VECTORS = {  # cosines of the pairs below: 1, 1/sqrt(2), 0, -1/sqrt(2)
    "a": [1.0, 0.0],
    "b": [2.0, 0.0],
    "c": [1.0, 0.0],
    "d": [S, S],
    "e": [0.0, 1.0],
    "f": [1.0, 0.0],
    "g": [1.0, 0.0],
    "h": [-S, S],
}
PAIRS = Dataset.from_dict(
    {"sentence1": ["a", "c", "e", "g"], "sentence2": ["b", "d", "f", "h"], "score": [4, 5, 1, 0]}
)


class Lookup:
    """Encodes each text to a fixed vector; records what it was asked to encode."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors
        self.seen: list[str] = []

    def encode(self, texts, batch_size=32):
        self.seen += texts
        return np.array([self.vectors[text.split(": ")[-1]] for text in texts], dtype=np.float32)


def _model(encoder, **kwargs) -> EvaluatedModel:
    return EvaluatedModel(encoder=encoder, source="lookup", revision="r1", **kwargs)


def test_sts_benchmark_through_mteb_equals_a_hand_computation():
    runs = run_tasks(
        _model(Lookup(VECTORS)), "student_after", [local_sts_benchmark(PAIRS)], batch_size=2
    )

    scores = sts_benchmark_scores(runs)
    # cosines 1, .707, 0, -.707 rank 4, 3, 2, 1; scores 4, 5, 1, 0 rank 3, 4, 2, 1: sum d^2 = 2
    assert scores["spearman"] == pytest.approx(100 * (1 - 6 * 2 / (4 * 15)))
    cosine, gold = np.array([1, S, 0, -S]), np.array([4, 5, 1, 0]) / 5
    dc, dg = cosine - cosine.mean(), gold - gold.mean()
    pearson = np.sum(dc * dg) / np.sqrt(np.sum(dc**2) * np.sum(dg**2))
    assert scores["pearson"] == pytest.approx(100 * pearson)
    assert main_scores(runs) == {
        "STSBenchmark": {"main_score": pytest.approx(0.8), "metric": "cosine_spearman"}
    }
    meta, result = runs[0]
    assert (meta.name, meta.revision, result.task_name) == (
        "student_after/lookup",
        "r1",
        "STSBenchmark",
    )


def test_the_local_task_equals_a_direct_computation_on_a_tiny_model(student):
    from scipy.stats import pearsonr, spearmanr

    model = SentenceTransformer(student, device="cpu")
    first, second = make_sentences(30, seed=1), make_sentences(30, seed=2)
    pairs = Dataset.from_dict(
        {"sentence1": first, "sentence2": second, "score": np.linspace(0, 5, 30).tolist()}
    )
    left, right = model.encode(first), model.encode(second)
    cosine = (
        np.sum(left * right, axis=1) / np.linalg.norm(left, axis=1) / np.linalg.norm(right, axis=1)
    )

    runs = run_tasks(
        from_sentence_transformer(model, "tiny"),
        "teacher",
        [local_sts_benchmark(pairs)],
        batch_size=8,
    )

    scores = sts_benchmark_scores(runs)
    assert scores["spearman"] == pytest.approx(
        100 * spearmanr(cosine, pairs["score"]).statistic, abs=1e-4
    )
    assert scores["pearson"] == pytest.approx(
        100 * pearsonr(cosine, pairs["score"]).statistic, abs=1e-4
    )


def test_the_models_prompt_for_the_task_is_prepended():
    lookup = Lookup(VECTORS)
    model = _model(lookup, prompts={"STS": "similar: "})
    run_tasks(model, "teacher", [local_sts_benchmark(PAIRS)], batch_size=4)
    assert lookup.seen and all(text.startswith("similar: ") for text in lookup.seen)


def test_the_mteb_name_tells_roles_apart():
    model = _model(Lookup(VECTORS), parameters=10)
    names = {MtebEncoder(model, role).mteb_model_meta.name for role in ("teacher", "student_after")}
    assert names == {"teacher/lookup", "student_after/lookup"}


def test_no_tasks_run_nothing():
    assert run_tasks(_model(Lookup(VECTORS)), "teacher", [], batch_size=4) == []
    assert sts_benchmark_scores([]) == {}


def test_resolve_runs_the_sts_benchmark_once():
    tasks = resolve_tasks(["STSBenchmark", "SICK-R"], PAIRS)
    assert [task.metadata.name for task in tasks] == ["STSBenchmark", "SICK-R"]
    assert tasks[0].dataset is None or tasks[0].data_loaded is False  # local data, loaded lazily
    assert [task.metadata.name for task in resolve_tasks([], None)] == []
    assert [task.metadata.name for task in resolve_tasks(["SICK-R"], None)] == ["SICK-R"]


def test_an_unknown_task_name_fails_with_close_matches():
    with pytest.raises(
        ValueError,
        match=r"Unknown MTEB task 'STSBenchmrk' in evaluation.mteb_tasks. Close matches: \['STSBenchmark'",
    ):
        check_task_names(["STSBenchmark", "STSBenchmrk"])
    with pytest.raises(
        ValueError, match="Unknown MTEB task 'zzzzqqqq'.*No task has a similar name"
    ):
        check_task_names(["zzzzqqqq"])


def test_mteb_missing_names_the_package_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mteb", None)  # import mteb -> ImportError
    with pytest.raises(
        ImportError, match=r"MTEB tasks need the mteb package.*pip install 'mteb~=2.26'"
    ):
        import_mteb()
    with pytest.raises(ImportError, match="evaluation.mteb_tasks: \\[\\] to skip them"):
        check_task_names(["STS12"])
    check_task_names([])  # nothing asked for: mteb is not needed


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (PAIRS.remove_columns("score"), r"lack column\(s\) \['score'\]"),
        (
            PAIRS.map(lambda row: {"score": row["score"] * 2}),
            r"must lie in 0..5 \(MTEB's range\), got 0.0..10.0",
        ),
        (PAIRS.select([]), "must lie in 0..5 .*got no rows"),
    ],
)
def test_bad_sts_pairs_are_refused(pairs, message):
    with pytest.raises(ValueError, match=message):
        local_sts_benchmark(pairs)
