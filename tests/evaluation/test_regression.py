"""The Hub never receives a regression silently: the STS-B dev check before a push."""

import logging

import pytest
from sentence_transformers import SentenceTransformer

from embedding_distillation.datasets import HubModelDataset
from embedding_distillation.evaluation.regression import (
    REGRESSION_TOLERANCE,
    check_push,
    sts_dev_change,
)
from embedding_distillation.export.formats import StudentExport
from embedding_distillation.pipelines.distillation.nodes import push_student_model
from tests.hub.conftest import TOKEN, local_hub  # noqa: F401 (the fixture)

PROVENANCE = {
    "teacher_model": "org/teacher",
    "teacher_fingerprint": "f" * 64,
    "output_type": "final",
    "embedding_dtype": "float32",
    "corpus_fingerprint": "c" * 64,
    "columns": {"teacher_embedding_final": 32},
    "num_rows": 50,
}


def _metrics(before: float, after: float) -> dict:
    return {
        "student_before": {"sts_dev": {"spearman": before}},
        "student_after": {"sts_dev": {"spearman": after}},
    }


def test_the_change_is_read_from_the_evaluation():
    assert sts_dev_change(_metrics(82.0, 81.5)) == (82.0, 81.5)
    assert sts_dev_change({"student_after": {"sts_dev": {"spearman": 80.0}}}) is None


@pytest.mark.parametrize("after", [82.0, 82.5, 82.0 - REGRESSION_TOLERANCE])
def test_a_student_at_or_near_its_untrained_self_is_pushed(after):
    check_push((82.0, after), repo_id="alice/s", allow=False)


def test_a_regression_is_refused_naming_both_figures_and_the_way_out():
    with pytest.raises(
        ValueError,
        match=r"Not pushing the student to alice/s: distillation made it worse\. Its STS "
        r"Benchmark dev score fell from 82\.03 \(untrained\) to 80\.14 \(-1\.89\), more than "
        r"the 0\.2 points allowed\. The trained student is saved locally\. Set "
        r"distillation\.allow_regression: true to push it anyway\.",
    ):
        check_push((82.03, 80.14), repo_id="alice/s", allow=False)


def test_allow_regression_pushes_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="embedding_distillation"):
        check_push((82.03, 80.14), repo_id="alice/s", allow=True)
    assert "fell from 82.03 to 80.14 (allow_regression is true)" in caplog.text


def test_no_dev_figures_push_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="embedding_distillation"):
        check_push(None, repo_id="alice/s", allow=False)
    assert "without a regression check" in caplog.text


def _push_request(student: str, metrics: dict, **params):
    model = SentenceTransformer(student, device="cpu")
    return push_student_model(
        model,
        StudentExport(None, ()),
        metrics,
        "# Distillation report\n\nWhat happened.\n",
        {"student_model": student, "push_to_hub": True, "hub_model_id": "alice/s", **params},
        PROVENANCE,
        {"device": "cpu"},
    )


def test_the_push_node_refuses_a_regression_before_anything_reaches_the_hub(
    local_hub,  # noqa: F811
    student,
):
    with pytest.raises(ValueError, match=r"fell from 82\.03 \(untrained\) to 80\.14"):
        _push_request(student, _metrics(82.03, 80.14))
    assert not local_hub.repos  # nothing was created


def test_allow_regression_reaches_the_local_hub(local_hub, student):  # noqa: F811
    request = _push_request(student, _metrics(82.03, 80.14), allow_regression=True)
    HubModelDataset(credentials={"token": TOKEN}).save(request)
    assert "model.safetensors" in local_hub.repo("alice/s", "model").files_at("main")


def test_an_improved_student_reaches_the_local_hub(local_hub, student):  # noqa: F811
    request = _push_request(student, _metrics(82.03, 82.41))
    HubModelDataset(credentials={"token": TOKEN}).save(request)
    assert "model.safetensors" in local_hub.repo("alice/s", "model").files_at("main")
