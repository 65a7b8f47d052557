"""The retrieval task through mteb: hand-computed scores, the teacher-index routing, errors."""

import math

import numpy as np
import pytest
from datasets import Dataset
from sentence_transformers import SentenceTransformer

from embedding_distillation.evaluation.encoders import EvaluatedModel, from_sentence_transformer
from embedding_distillation.evaluation.mteb_tasks import MtebEncoder, run_encoder
from embedding_distillation.evaluation.retrieval import (
    RETRIEVAL_TASK,
    TeacherIndexEncoder,
    local_retrieval_task,
    retrieval_scores,
    score_retrieval,
)
from tests.conftest import make_sentences

# Three articles in 2-d: q1 and q2 find their own document first; q0's own document (cosine
# 0.6) comes second, after d1 (cosine 0.995).
QUERIES = {"q0": [1.0, 0.0], "q1": [1.0, 0.1], "q2": [0.0, 1.0]}
DOCUMENTS = {"d0": [0.6, 0.8], "d1": [1.0, 0.1], "d2": [0.0, 1.0]}
ROWS = Dataset.from_dict(
    {"id": ["0", "1", "2"], "query": ["q0", "q1", "q2"], "document": list(DOCUMENTS)}
)
HAND_NDCG = 100 * (1 / math.log2(3) + 1 + 1) / 3  # q0's document at rank 2; mteb rounds to 1e-5


class Lookup:
    """Encodes each text to a fixed vector; records what it was asked to encode."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors
        self.seen: list[str] = []

    def encode(self, texts, batch_size=32):
        self.seen += texts
        return np.array([self.vectors[text] for text in texts], dtype=np.float32)


def _model(encoder, source: str = "lookup") -> EvaluatedModel:
    return EvaluatedModel(encoder=encoder, source=source, revision="r1")


def test_scores_through_mteb_equal_a_hand_computation():
    runs = run_encoder(
        MtebEncoder(_model(Lookup(QUERIES | DOCUMENTS)), "teacher"),
        [local_retrieval_task(ROWS)],
        batch_size=2,
    )
    assert retrieval_scores(runs) == {
        "ndcg_at_10": pytest.approx(HAND_NDCG, abs=1e-3),
        "recall_at_10": pytest.approx(100.0),
    }
    assert runs[0][1].task_name == RETRIEVAL_TASK
    assert runs[0][1].get_score() == pytest.approx(
        HAND_NDCG / 100, abs=1e-5
    )  # the main score: nDCG@10


def test_a_tiny_model_finds_each_document_when_query_and_document_are_the_same_text(student):
    model = SentenceTransformer(student, device="cpu")
    texts = make_sentences(15, seed=4)
    rows = Dataset.from_dict({"id": [str(i) for i in range(15)], "query": texts, "document": texts})
    runs = run_encoder(
        MtebEncoder(from_sentence_transformer(model, "tiny"), "student_after"),
        [local_retrieval_task(rows)],
        batch_size=4,
    )
    assert retrieval_scores(runs) == {
        "ndcg_at_10": pytest.approx(100.0),
        "recall_at_10": pytest.approx(100.0),
    }


def test_the_teacher_index_encodes_queries_with_the_model_and_documents_with_the_teacher():
    # The student's own documents would make every query perfect; the teacher's are those above.
    student = Lookup(QUERIES | {"d0": [1.0, 0.0], "d1": [1.0, 0.1], "d2": [0.0, 1.0]})
    teacher = Lookup(DOCUMENTS)
    model = _model(student, "student")
    task = local_retrieval_task(ROWS)

    entries, runs = score_retrieval(
        MtebEncoder(model, "student_after"),
        task,
        model=model,
        role="student_after",
        teacher=MtebEncoder(_model(teacher, "teacher"), "teacher"),
        batch_size=2,
    )

    assert entries["retrieval"]["ndcg_at_10"] == pytest.approx(100.0)
    assert entries["retrieval_teacher_index"]["ndcg_at_10"] == pytest.approx(HAND_NDCG, abs=1e-3)
    assert entries["retrieval_teacher_index"]["seconds"] >= 0
    assert sorted(teacher.seen) == ["d0", "d1", "d2"]  # documents only
    assert sorted(set(student.seen)) == ["d0", "d1", "d2", "q0", "q1", "q2"]
    assert student.seen.count("q0") == 2  # its own run and the teacher-index run
    assert [meta.name for meta, _ in runs] == [
        "student_after/student",
        "student_after+teacher_index/student",
    ]


def test_without_a_teacher_only_the_models_own_retrieval_runs():
    model = _model(Lookup(QUERIES | DOCUMENTS))
    entries, runs = score_retrieval(
        MtebEncoder(model, "teacher"),
        local_retrieval_task(ROWS),
        model=model,
        role="teacher",
        teacher=None,
        batch_size=2,
    )
    assert set(entries) == {"retrieval"}
    assert len(runs) == 1


def test_the_teacher_index_encoder_routes_on_the_prompt_type():
    from mteb.types import PromptType

    calls = []

    class Recorder:
        def __init__(self, name):
            self.name = name

        def encode(self, inputs, **kwargs):
            calls.append((self.name, kwargs["prompt_type"]))
            return np.zeros((1, 2), dtype=np.float32)

    encoder = TeacherIndexEncoder(
        Recorder("student"), Recorder("teacher"), _model(None), "student_after"
    )
    for prompt_type in (PromptType.document, PromptType.query, None):
        encoder.encode(
            [], task_metadata=None, hf_split="test", hf_subset="default", prompt_type=prompt_type
        )
    assert calls == [
        ("teacher", PromptType.document),
        ("student", PromptType.query),
        ("student", None),
    ]


def test_max_articles_keeps_the_first_rows():
    task = local_retrieval_task(ROWS, max_articles=2)
    task.load_data()
    split = task.dataset["default"]["test"]
    assert split["queries"]["text"] == ["q0", "q1"]
    assert split["corpus"]["text"] == ["d0", "d1"]
    assert split["relevant_docs"] == {"0": {"0": 1}, "1": {"1": 1}}
    # Results at different sizes are not comparable: each size is its own revision.
    assert task.metadata.revision == "v1-2"
    assert local_retrieval_task(ROWS).metadata.revision == f"v1-{len(ROWS)}"


def test_no_retrieval_run_gives_no_scores():
    assert retrieval_scores([]) == {}


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            {"id": ["0"], "query": ["q"]},
            r"The retrieval rows lack column\(s\) \['document'\]; they have \['id', 'query'\]\. "
            r"Rebuild them with `python -m embedding_distillation\.demo`",
        ),
        (
            {"id": ["0", "0"], "query": ["a", "b"], "document": ["c", "d"]},
            r"one unique id per row, got 1 repeated id\(s\)",
        ),
        ({"id": [], "query": [], "document": []}, r"one unique id per row, got no rows"),
        (
            {"id": ["0", "1"], "query": ["a", "  "], "document": ["c", "d"]},
            r"1 retrieval row\(s\) have an empty query or document \(ids \['1'\]\)",
        ),
    ],
)
def test_bad_rows_are_refused_with_the_fix(rows, message):
    with pytest.raises(ValueError, match=message):
        local_retrieval_task(Dataset.from_dict(rows))
