import pytest
from datasets import Dataset

from embedding_distillation.pipelines.distillation.nodes import (
    evaluate_student,
    plan_model_push,
    split_embeddings,
    train_student_model,
    write_report,
)


@pytest.fixture
def embeddings(corpus):
    rows = len(corpus)
    return Dataset.from_dict(
        {
            "row_id": list(range(rows)),
            "text": corpus["text"],
            "teacher_embedding_final": [[float(i % 7)] * 40 for i in range(rows)],
        }
    )


def test_split_embeddings_holds_out_the_fraction(embeddings):
    train, heldout = split_embeddings(embeddings, {"heldout_fraction": 0.2})
    assert (len(train), len(heldout)) == (40, 10)
    assert not set(train["row_id"]) & set(heldout["row_id"])


def test_train_and_evaluate_nodes(tmp_path, embeddings, teacher_dense, student):
    params = {
        "student_model": student,
        "num_epochs": 1,
        "batch_size": 16,
        "output_dir": str(tmp_path),
        "loss_type": "cosine",
    }
    model, training = train_student_model(embeddings, params, {"device": "cpu"})
    assert model.get_embedding_dimension() == 40
    assert training["global_step"] == 4
    metrics = evaluate_student(
        model,
        embeddings.select(range(8)),
        None,
        training,
        params,
        {"teacher_model": teacher_dense},
        {"device": "cpu", "batch_size": 8},
        {"speed_texts": 4},
    )
    assert metrics["heldout_rows"] == 8
    assert "heldout" not in metrics["student_before"]  # 32-d student vs 40-d target
    assert metrics["student_after"]["cost"]["parameters"] > 0
    assert "| Student (after) |" in write_report(metrics)


def test_train_node_takes_precision_from_compute(embeddings, student):
    with pytest.raises(ValueError, match="use_fp16 and compute.use_bf16 are both true"):
        train_student_model(
            embeddings, {"student_model": student}, {"use_fp16": True, "use_bf16": True}
        )


def test_plan_model_push_follows_push_to_hub(student):
    model = object()
    assert plan_model_push(model, {"student_model": student}, {}).repo_id is None
    request = plan_model_push(
        model,
        {
            "student_model": student,
            "push_to_hub": True,
            "hub_model_id": "alice/s",
            "hub_token": "hf_x",
        },
        {},
    )
    assert (request.model, request.repo_id, request.token) == (model, "alice/s", "hf_x")
