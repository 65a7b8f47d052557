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


def _evaluate(model, heldout, training, params, teacher):
    """The evaluate node on CPU, without gold pairs, timing 4 texts."""
    return evaluate_student(
        model,
        heldout,
        None,
        training,
        params,
        {"teacher_model": teacher},
        {"device": "cpu", "batch_size": 8},
        {"speed_texts": 4},
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
    metrics = _evaluate(model, embeddings.select(range(8)), training, params, teacher_dense)
    assert metrics["heldout_rows"] == 8
    assert "heldout" not in metrics["student_before"]  # 32-d student vs 40-d target
    assert metrics["student_after"]["cost"]["parameters"] > 0
    assert "| Student (after) |" in write_report(metrics)


def test_evaluate_node_compares_a_cut_student_with_its_untrained_cut(embeddings, student):
    from sentence_transformers import SentenceTransformer

    whole = SentenceTransformer(student, device="cpu")
    cut = {"student_model": student, "student_init": [1]}  # 1 of its 2 layers
    metrics = _evaluate(whole, embeddings.select(range(8)), {}, cut, student)
    before = metrics["student_before"]["cost"]["parameters"]
    assert before < metrics["teacher"]["cost"]["parameters"]  # not the whole student_model
    assert before < metrics["student_after"]["cost"]["parameters"]
    assert metrics["student_layers"] == [1]


def test_train_node_takes_precision_from_compute(embeddings, student):
    with pytest.raises(ValueError, match="use_fp16 and compute.use_bf16 are both true"):
        train_student_model(
            embeddings, {"student_model": student}, {"use_fp16": True, "use_bf16": True}
        )


def test_plan_model_push_follows_push_to_hub(student):
    model = object()
    metrics = {"student_after": {"mean_cosine": 0.9}}
    teacher = {"teacher_model": "org/teacher", "repo_id": "alice/emb"}
    assert plan_model_push(model, metrics, {"student_model": student}, teacher, {}).repo_id is None
    request = plan_model_push(
        model,
        metrics,
        {
            "student_model": student,
            "push_to_hub": True,
            "hub_model_id": "alice/s",
            "hub_token": "hf_x",
        },
        teacher,
        {},
    )
    assert (request.model, request.repo_id, request.token) == (model, "alice/s", "hf_x")
    assert request.card.teacher_model == "org/teacher"
    assert request.card.training_data == "alice/emb"
    assert request.card.metrics == metrics
    assert request.card.training_config["hub_token"] == "***"


def test_hidden_state_rows_train_and_evaluate_against_the_deepest_mapped_layer(
    tmp_path, corpus, teacher_plain, student
):
    """``output_type: hidden_states`` rows: the hidden-state term alone, then evaluation."""
    from embedding_distillation.api import TeacherEmbeddingsGenerator

    generator = TeacherEmbeddingsGenerator(teacher_plain, device="cpu")
    rows = generator.generate(
        corpus, output_type="hidden_states", layer_indices=[1, 3], output_dir=tmp_path / "e"
    )
    params = {
        "student_model": student,
        "num_epochs": 1,
        "batch_size": 16,
        "output_dir": str(tmp_path / "ckpt"),
        "hidden_state_layer_map": {1: 1, 2: 3},
        "hidden_state_weight": 2.0,
        "logging_steps": 1,
    }
    train, heldout = split_embeddings(rows, {"heldout_fraction": 0.2})
    model, training = train_student_model(train, params, {"device": "cpu"})
    assert model.get_embedding_dimension() == 32  # no projection without an embedding target
    logged = [e for e in training["log_history"] if "loss" in e]
    assert logged and all("hidden_state" in e and "embedding" not in e for e in logged)

    metrics = _evaluate(model, heldout, training, params, teacher_plain)
    assert metrics["target_column"] == "hidden_state_layer_3"
    assert 0 <= metrics["student_after"]["neighbours"]["recall_at_10"] <= 1
    assert "heldout" not in metrics["student_after"]  # 32-d student, 48-d teacher layer


def test_pca_projection_keeps_the_student_comparable_with_the_teacher(
    tmp_path, embeddings, teacher_dense, student
):
    params = {
        "student_model": student,
        "num_epochs": 1,
        "batch_size": 16,
        "output_dir": str(tmp_path),
        "projection": "pca",
    }
    model, training = train_student_model(embeddings, params, {"device": "cpu"})
    assert [type(m).__name__ for m in model] == ["Transformer", "Pooling", "Dense", "Normalize"]
    assert not any(p.requires_grad for p in model[2].parameters())
    metrics = _evaluate(model, embeddings.select(range(8)), training, params, teacher_dense)
    assert "mse" in metrics["student_after"]["heldout"]  # 40-d output vs 40-d targets


def test_bad_hidden_state_map_stops_the_train_node_before_loading(tmp_path, embeddings):
    with pytest.raises(ValueError, match=r"needs teacher column\(s\) \['hidden_state_layer_4'\]"):
        train_student_model(
            embeddings,
            {"student_model": "does/not-exist", "hidden_state_layer_map": {1: 4}},
            {"device": "cpu"},
        )


def test_evaluate_node_measures_the_trained_student_at_the_compute_precision(
    embeddings, student, monkeypatch
):
    """The catalog loads the trained student in float32; under bf16 the teacher and the
    untrained student run in bfloat16, so the trained one must too (same speed and quality
    footing), while the model that is saved and pushed keeps its float32 weights."""
    import torch
    from sentence_transformers import SentenceTransformer

    from embedding_distillation.pipelines.distillation import nodes

    seen = {}

    def spy(models, *args, **kwargs):
        seen.update({name: next(m.parameters()).dtype for name, m in models.items()})
        return {}

    monkeypatch.setattr(nodes, "evaluate_models", spy)
    trained = SentenceTransformer(student, device="cpu")
    evaluate_student(
        trained,
        embeddings.select(range(8)),
        None,
        {},
        {"student_model": student},
        {"teacher_model": student},
        {"device": "cpu", "use_bf16": True},
        {"speed_texts": 4},
    )
    assert seen == dict.fromkeys(("teacher", "student_before", "student_after"), torch.bfloat16)
    assert next(trained.parameters()).dtype == torch.float32
