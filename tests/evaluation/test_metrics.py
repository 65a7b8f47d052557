"""Evaluation metrics against hand-computed values, with fake models where encode is all we need."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from datasets import Dataset

from embedding_distillation.evaluation.config import EvaluationConfig
from embedding_distillation.evaluation.encoders import EvaluatedModel
from embedding_distillation.evaluation.metrics import (
    agreement,
    cost,
    evaluate_models,
    gold_similarity,
    split_heldout,
)
from tests.conftest import make_sentences


class FakeModel(torch.nn.Module):
    """Encodes each text to a fixed vector; records the batch sizes it was called with."""

    def __init__(self, vectors: dict[str, list[float]], parameters: int = 0) -> None:
        super().__init__()
        self.vectors = vectors
        self.calls: list[tuple[int, int]] = []  # (texts, batch_size)
        if parameters:
            self.weight = torch.nn.Parameter(torch.zeros(parameters))

    def encode(self, texts, batch_size=32):
        self.calls.append((len(texts), batch_size))
        return np.array([self.vectors[t] for t in texts], dtype=np.float32)


def evaluated(model: FakeModel, parameters: int | None = None, size_mb: float | None = None):
    return EvaluatedModel(
        encoder=model, source="fake", revision="0", parameters=parameters, size_mb=size_mb
    )


# --- agreement ---------------------------------------------------------------------------------


def test_agreement_matches_hand_computed_values():
    student = np.array([[1.0, 0.0], [0.0, 1.0]])
    teacher = np.array([[1.0, 0.0], [1.0, 1.0]])
    result = agreement(student, teacher)
    # squared differences: 0, 0, 1, 0 -> mean 0.25; cosines: 1 and 1/sqrt(2)
    assert result == pytest.approx({"mse": 0.25, "mean_cosine": (1 + 1 / math.sqrt(2)) / 2})


def test_agreement_ignores_scale_for_cosine_only():
    teacher = np.array([[3.0, 4.0]])
    result = agreement(2 * teacher, teacher)
    assert result["mean_cosine"] == pytest.approx(1.0)
    assert result["mse"] == pytest.approx((9 + 16) / 2)


def test_agreement_zero_vector_has_cosine_zero_not_nan():
    result = agreement(np.array([[0.0, 0.0], [1.0, 0.0]]), np.array([[1.0, 0.0], [-1.0, 0.0]]))
    assert result["mean_cosine"] == pytest.approx((0 + -1) / 2)
    assert result["mse"] == pytest.approx((1 + 0 + 4 + 0) / 4)


# --- gold_similarity ---------------------------------------------------------------------------


def test_gold_similarity_correlates_cosine_with_scores():
    s = 1 / math.sqrt(2)
    model = FakeModel(
        {
            "a": [1, 0],
            "b": [2, 0],
            "c": [1, 0],
            "d": [1, 0],
            "e": [3, 0],  # cos(a, e) = 1
            "f": [0, 5],  # cos(b, f) = 0
            "g": [s, s],  # cos(c, g) = 1/sqrt(2)
            "h": [-1, 0],  # cos(d, h) = -1
        }
    )
    pairs = Dataset.from_dict(
        {"text_1": list("abcd"), "text_2": list("efgh"), "score": [3.0, 2.0, 1.0, 0.0]}
    )

    result = gold_similarity(model, pairs, batch_size=2)

    cosine = np.array([1, 0, s, -1])
    scores = np.array([3.0, 2.0, 1.0, 0.0])
    dc, ds = cosine - cosine.mean(), scores - scores.mean()
    pearson = np.sum(dc * ds) / np.sqrt(np.sum(dc**2) * np.sum(ds**2))
    # ranks of cosine 4, 2, 3, 1 vs scores 4, 3, 2, 1: sum d^2 = 2 -> 1 - 6 * 2 / (4 * 15)
    assert result == pytest.approx({"pearson": pearson, "spearman": 0.8})
    assert result["pearson"] == pytest.approx(0.76797, abs=1e-5)
    assert model.calls == [(8, 2)]  # each distinct text once, in one call


def test_gold_similarity_encodes_repeated_texts_once():
    model = FakeModel({"a": [1, 0], "b": [0, 1], "c": [1, 1]})
    pairs = Dataset.from_dict(
        {"text_1": ["a", "a", "b"], "text_2": ["b", "c", "c"], "score": [0.0, 1.0, 0.5]}
    )
    gold_similarity(model, pairs, batch_size=8)
    assert model.calls == [(3, 8)]


def test_gold_similarity_with_a_real_model_matches_scipy(student):
    from scipy.stats import pearsonr, spearmanr
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(student, device="cpu")
    pairs = Dataset.from_dict(
        {
            "text_1": ["the cat sleeps", "a dog runs", "music book", "rain snow night", "sun"],
            "text_2": ["the cat eats", "red car train", "science data", "sun moon day", "moon"],
            "score": [0.9, 0.1, 0.3, 0.5, 0.7],
        }
    )
    left = model.encode(pairs["text_1"], convert_to_tensor=True)
    right = model.encode(pairs["text_2"], convert_to_tensor=True)
    cosine = torch.nn.functional.cosine_similarity(left, right).numpy()

    result = gold_similarity(model, pairs, batch_size=4)

    assert result["pearson"] == pytest.approx(pearsonr(cosine, pairs["score"]).statistic, abs=1e-5)
    assert result["spearman"] == pytest.approx(spearmanr(cosine, pairs["score"]).statistic)


# --- split_heldout -----------------------------------------------------------------------------


def _rows(count: int) -> Dataset:
    return Dataset.from_dict({"row": list(range(count))})


@pytest.mark.parametrize(
    ("rows", "fraction", "cap", "train", "heldout"),
    [
        (50, 0.1, 2000, 45, 5),
        (50, 0.1, 3, 47, 3),  # capped
        (10, 0.01, 2000, 9, 1),  # at least one
        (10, 0.96, 2000, 1, 9),  # round(9.6) = 10 would leave no training row
        (2, 0.5, 2000, 1, 1),
        (7, 0.5, 2000, 3, 4),  # round(3.5) = 4
    ],
)
def test_split_heldout_sizes(rows, fraction, cap, train, heldout):
    config = EvaluationConfig(heldout_fraction=fraction, max_heldout_rows=cap)
    train_part, heldout_part = split_heldout(_rows(rows), config)
    assert (len(train_part), len(heldout_part)) == (train, heldout)
    assert sorted([*train_part["row"], *heldout_part["row"]]) == list(range(rows))


def test_split_heldout_is_deterministic_per_seed():
    data = _rows(50)
    first = list(split_heldout(data, EvaluationConfig(seed=1))[1]["row"])
    again = list(split_heldout(data, EvaluationConfig(seed=1))[1]["row"])
    other = list(split_heldout(data, EvaluationConfig(seed=2))[1]["row"])
    assert first == again
    assert sorted(first) != sorted(other)
    assert first != list(range(45, 50))  # shuffled, not the tail


@pytest.mark.parametrize("rows", [0, 1])
def test_split_heldout_needs_two_rows(rows):
    with pytest.raises(ValueError, match=f"Need at least 2 embedded rows .*, got {rows}"):
        split_heldout(_rows(rows), EvaluationConfig())


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5])
def test_heldout_fraction_must_be_a_proper_fraction(fraction):
    with pytest.raises(ValueError, match=r"evaluation.heldout_fraction must be in \(0, 1\)"):
        EvaluationConfig(heldout_fraction=fraction)


# --- cost --------------------------------------------------------------------------------------


def test_cost_times_the_texts_after_a_warm_up_batch():
    texts = [f"t{i}" for i in range(10)]
    model = FakeModel({t: [1.0] for t in texts})

    result = cost(evaluated(model, parameters=262_144, size_mb=1.0), texts, batch_size=4)

    assert set(result) == {"parameters", "size_mb", "texts_per_second"}
    assert (result["parameters"], result["size_mb"]) == (262_144, 1.0)
    assert result["texts_per_second"] > 0
    assert model.calls == [(4, 4), (10, 4)]  # warm-up batch, then the timed pass


# --- evaluate_models ---------------------------------------------------------------------------


def test_evaluate_models_compares_same_size_models_with_the_stored_target():
    heldout = Dataset.from_dict(
        {"text": ["a", "b"], "target": [[1.0, 0.0], [0.0, 1.0]], "row_id": [0, 1]}
    )
    models = {
        "teacher": evaluated(FakeModel({"a": [1, 0], "b": [0, 1]})),
        "student_before": evaluated(FakeModel({"a": [1, 0, 0], "b": [0, 1, 0]})),  # other size
        "student_after": evaluated(FakeModel({"a": [1, 0], "b": [1, 1]})),
    }

    result, runs = evaluate_models(
        models,
        heldout,
        text_column="text",
        target_column="target",
        gold_pairs=None,
        batch_size=2,
        speed_texts=1,
    )

    assert runs == []  # no MTEB task asked for
    assert result["models"] == ["teacher", "student_before", "student_after"]
    assert result["heldout_rows"] == 2
    assert result["target_column"] == "target"
    assert set(result["teacher"]) == {"cost"}
    assert set(result["student_before"]) == {"cost", "neighbours"}  # no agreement across sizes
    histogram = result["student_after"]["heldout"].pop("cosine_histogram")
    assert result["student_after"]["heldout"] == pytest.approx(
        {"mse": 0.25, "mean_cosine": (1 + 1 / math.sqrt(2)) / 2}
    )
    assert sum(histogram) == 2 and histogram[-1] == 1  # cosines 1.0 and 0.707


def test_neighbour_recall_is_one_for_the_same_ranking_and_drops_when_it_changes():
    from embedding_distillation.evaluation.metrics import neighbour_recall

    rng = np.random.default_rng(0)
    reference = rng.standard_normal((30, 8))
    assert neighbour_recall(reference * 3.0, reference) == 1.0  # scale does not change neighbours
    assert neighbour_recall(rng.standard_normal((30, 5)), reference) < 0.6
    assert neighbour_recall(reference[:3], reference[:3], k=10) == 1.0  # k shrinks to rows - 1
    with pytest.raises(ValueError, match="at least 2 held-out rows"):
        neighbour_recall(reference[:1], reference[:1])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"heldout_fraction": 1.0}, r"evaluation.heldout_fraction must be in \(0, 1\), got 1.0"),
        ({"max_heldout_rows": 0}, "evaluation.max_heldout_rows must be a positive integer, got 0"),
        ({"speed_texts": -1}, "evaluation.speed_texts must be a positive integer, got -1"),
        (
            {"mteb_tasks": [3]},
            r"evaluation.mteb_tasks must be a list of MTEB task names, .*got \[3\]",
        ),
        ({"mteb_tasks": {"a": 1}}, "evaluation.mteb_tasks must be a list of MTEB task names"),
        (
            {"retrieval_max_articles": 0},
            r"evaluation.retrieval_max_articles must be a positive integer or null \(all\), got 0",
        ),
        (
            {"retrieval_max_articles": "300"},
            r"evaluation.retrieval_max_articles must be a positive integer or null \(all\), "
            "got '300'",
        ),
        (
            {"embedding_cache_dir": " "},
            r"evaluation.embedding_cache_dir must be a folder path or null \(no cache\), got ' '",
        ),
    ],
)
def test_evaluation_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EvaluationConfig(**kwargs)


def test_teacher_model_may_be_a_path_object(teacher_plain):
    from pathlib import Path

    from embedding_distillation.encoding.config import EncodingConfig

    assert EncodingConfig(teacher_model=Path(teacher_plain)).teacher_model == teacher_plain
    with pytest.raises(ValueError, match="teacher_embeddings.teacher_model is required"):
        EncodingConfig(teacher_model="")


def test_encode_with_a_progress_bar_gives_the_same_embeddings(student, capsys):
    from sentence_transformers import SentenceTransformer

    from embedding_distillation.evaluation import metrics
    from embedding_distillation.evaluation.encoders import SentenceTransformerEncoder

    model = SentenceTransformer(student, device="cpu")
    texts = make_sentences(300, seed=4)
    encoder = SentenceTransformerEncoder(model)
    plain = metrics.encode(encoder, texts, 16)
    shown = metrics.encode(encoder, texts, 16, progress="Encoding held-out (student)")
    np.testing.assert_allclose(shown, plain, atol=1e-5)
    assert "Encoding held-out (student)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("given", "expected"),
    [(None, ()), ([], ()), (["STS12"], ("STS12",)), ("STS12 SICK-R", ("STS12", "SICK-R"))],
)
def test_mteb_tasks_from_a_list_or_a_command_line_string(given, expected):
    assert EvaluationConfig(mteb_tasks=given).mteb_tasks == expected


def test_share_of_the_teachers_sts_benchmark_score():
    from embedding_distillation.evaluation.metrics import add_share_of_teacher

    results = {
        "heldout_rows": 3,
        "teacher": {"sts_benchmark": {"spearman": 80.0}},
        "student_after": {"sts_benchmark": {"spearman": 78.0}},
        "student_before": {"cost": {}},  # no STS-B: left alone
    }
    add_share_of_teacher(results)
    assert results["student_after"]["sts_benchmark"]["percent_of_teacher"] == pytest.approx(97.5)
    assert "percent_of_teacher" not in results["teacher"]["sts_benchmark"]
    assert results["student_before"] == {"cost": {}}


def test_share_of_the_teachers_retrieval_score():
    from embedding_distillation.evaluation.metrics import add_share_of_teacher

    results = {
        "teacher": {"retrieval": {"ndcg_at_10": 80.0}},
        "student_after": {
            "retrieval": {"ndcg_at_10": 72.0},
            "retrieval_teacher_index": {"ndcg_at_10": 60.0},
        },
    }
    add_share_of_teacher(results)
    assert results["student_after"]["retrieval"]["percent_of_teacher"] == pytest.approx(90.0)
    assert results["student_after"]["retrieval_teacher_index"]["percent_of_teacher"] == (
        pytest.approx(75.0)
    )
    assert "percent_of_teacher" not in results["teacher"]["retrieval"]


# --- evaluate_models with the retrieval task ------------------------------------------------------

RETRIEVAL_ROWS = Dataset.from_dict(
    {"id": ["0", "1", "2"], "query": ["q0", "q1", "q2"], "document": ["d0", "d1", "d2"]}
)
ONE_HOT = {"q0": [1, 0], "d0": [1, 0], "q1": [0, 1], "d1": [0, 1], "q2": [1, 1], "d2": [1, 1]}


def _retrieval_models():
    heldout_vectors = {"a": [1, 0], "b": [0, 1]}
    return {
        "teacher": evaluated(FakeModel(heldout_vectors | ONE_HOT)),
        "student_before": evaluated(  # 3-d: no teacher index
            FakeModel({k: [*v, 0] for k, v in (heldout_vectors | ONE_HOT).items()})
        ),
        "student_after": evaluated(FakeModel(heldout_vectors | ONE_HOT)),
    }


def _evaluate_with_retrieval(models, **kwargs):
    from embedding_distillation.evaluation.retrieval import local_retrieval_task

    heldout = Dataset.from_dict({"text": ["a", "b"], "target": [[1.0, 0.0], [0.0, 1.0]]})
    return evaluate_models(
        models,
        heldout,
        text_column="text",
        target_column="target",
        gold_pairs=None,
        retrieval=local_retrieval_task(RETRIEVAL_ROWS),
        batch_size=4,
        speed_texts=1,
        **kwargs,
    )


def test_every_model_gets_retrieval_and_the_teacher_wide_ones_the_teacher_index(caplog):
    import logging

    models = _retrieval_models()
    with caplog.at_level(logging.INFO):
        result, runs = _evaluate_with_retrieval(models)

    perfect = {"ndcg_at_10": pytest.approx(100.0), "recall_at_10": pytest.approx(100.0)}
    for name in models:
        assert {k: v for k, v in result[name]["retrieval"].items() if k in perfect} == perfect
    assert "retrieval_teacher_index" not in result["teacher"]
    assert "retrieval_teacher_index" not in result["student_before"]
    assert result["student_after"]["retrieval_teacher_index"]["percent_of_teacher"] == (
        pytest.approx(100.0)
    )
    assert "student_before: 3-d output, the teacher's is 2-d: no teacher-index retrieval" in (
        caplog.text
    )
    assert [meta.name for meta, _ in runs] == [
        "teacher/fake",
        "student_before/fake",
        "student_after/fake",
        "student_after+teacher_index/fake",
    ]
    # The teacher's documents were encoded once, for its own run and the teacher index:
    # width probe, queries, documents, cost (warm-up, timed).
    assert models["teacher"].encoder.calls == [(1, 1), (3, 4), (3, 4), (1, 4), (1, 4)]


def test_the_cached_teacher_encodes_nothing_for_the_task_the_second_time(tmp_path):
    models = _retrieval_models()
    models = {name: replace(model, cache_key="key") for name, model in models.items()}
    models["student_before"] = replace(models["student_before"], source="other")
    first, _ = _evaluate_with_retrieval(models, cache_dir=tmp_path, cached=("teacher",))
    teacher = models["teacher"].encoder
    student = models["student_after"].encoder
    teacher.calls.clear()
    student.calls.clear()

    again, _ = _evaluate_with_retrieval(models, cache_dir=tmp_path, cached=("teacher",))

    assert teacher.calls == [(1, 1), (1, 4), (1, 4)]  # width probe and cost only
    assert (3, 4) in student.calls  # not cached: the trained student changes every run
    for name in models:
        assert again[name]["retrieval"]["ndcg_at_10"] == first[name]["retrieval"]["ndcg_at_10"]
    assert (tmp_path / "fake" / "key" / "VitalArticlesRetrieval" / "document").is_dir()
    assert not (tmp_path / "other").exists()
