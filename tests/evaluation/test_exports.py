"""Exports in the evaluation: agreement with the torch student and the int8 verdict."""

import numpy as np
import pytest
from datasets import Dataset

from embedding_distillation.evaluation.encoders import EvaluatedModel
from embedding_distillation.evaluation.exports import INT8_MIN_SHARE, add_verdicts
from embedding_distillation.evaluation.metrics import evaluate_models


class Table:
    def __init__(self, vectors):
        self.vectors = vectors

    def encode(self, texts, batch_size=32):
        return np.array([self.vectors[t] for t in texts], dtype=np.float32)


def _model(vectors):
    return EvaluatedModel(encoder=Table(vectors), source="s", revision="r")


def test_an_export_is_compared_row_by_row_with_its_torch_model():
    heldout = Dataset.from_dict({"text": ["a", "b", "c"], "target": [[1.0, 0.0]] * 3})
    student = {"a": [1.0, 0.0], "b": [0.0, 1.0], "c": [1.0, 1.0]}
    export = {"a": [2.0, 0.0], "b": [0.0, 1.0], "c": [1.0, 0.0]}  # c: cosine 1/sqrt(2)
    metrics, _ = evaluate_models(
        {"teacher": _model(student), "student_after": _model(student), "onnx": _model(export)},
        heldout,
        text_column="text",
        target_column="target",
        gold_pairs=None,
        batch_size=2,
        speed_texts=2,
        exports_of={"onnx": "student_after"},
    )
    found = metrics["onnx"]["agreement"]
    assert found["min_cosine"] == pytest.approx(1 / np.sqrt(2))
    assert found["mean_cosine"] == pytest.approx((2 + 1 / np.sqrt(2)) / 3)
    assert found["worst_text"] == "c"
    assert "agreement" not in metrics["student_after"]


def _metrics(share: float | None) -> dict:
    sts = {} if share is None else {"sts_benchmark": {"percent_of_student": share}}
    return {"onnx": {"sts_benchmark": {"percent_of_student": 100.0}}, "onnx_int8": sts}


@pytest.mark.parametrize(
    ("share", "recommended", "verdict"),
    [
        (99.5, True, "keeps 99.5 % of the student's STS-B"),
        (INT8_MIN_SHARE, True, "keeps 99.0 % of the student's STS-B"),
        (98.94, False, "not recommended: keeps 98.9 % of the student's STS-B (below 99 %)"),
        (None, None, "not judged: no STS Benchmark pairs"),
    ],
)
def test_an_int8_export_is_recommended_only_when_it_keeps_99_percent(share, recommended, verdict):
    metrics = _metrics(share)
    add_verdicts(metrics, ("onnx", "onnx_int8"))
    assert (metrics["onnx_int8"]["recommended"], metrics["onnx_int8"]["verdict"]) == (
        recommended,
        verdict,
    )
    assert metrics["onnx"]["recommended"] is True  # float32: passed the gate when written
