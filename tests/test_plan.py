import math

import pytest
from datasets import Dataset

from embedding_distillation.plan import plan_distillation, plan_teacher_embeddings

COMPUTE = {"device": "cpu", "batch_size": 8}


def _teacher_params(teacher, **overrides):
    return {"teacher_model": teacher, "chunk_size": 20, **overrides}


def _distillation_params(student, **overrides):
    return {"student_model": student, "batch_size": 8, "num_epochs": 2, **overrides}


def test_encoding_plan_counts_rows_shards_columns_and_bytes(corpus, teacher_dense):
    corpus = Dataset.from_dict({"text": [*corpus["text"][:45], "", None]})
    plan = plan_teacher_embeddings(corpus, _teacher_params(teacher_dense), COMPUTE)
    text = "\n".join(plan.lines)
    assert plan.num_rows == 45
    assert "45 rows to encode from column 'text' (2 invalid texts skipped)" in text
    assert "teacher_embedding_final (40-d), teacher_embedding_pre_dense (48-d)" in text
    assert "shards: 3 of up to 20 rows; batches of 8 texts" in text
    embedding_bytes = 45 * ((40 + 48) * 4 + 8)
    assert f"{embedding_bytes / 1e6:,.1f} MB embeddings and row ids" in text
    assert "Hub push: none" in text
    assert plan.stand_in.column_names == [
        "text",
        "teacher_embedding_final",
        "teacher_embedding_pre_dense",
    ]
    assert len(plan.stand_in[0]["teacher_embedding_pre_dense"]) == 48


def test_encoding_plan_with_float16_token_batches_and_pushes(corpus, teacher_dense):
    params = _teacher_params(
        teacher_dense,
        embedding_dtype="float16",
        max_tokens_per_batch=256,
        push_every=20,
        repo_id="me/embeddings",
    )
    plan = plan_teacher_embeddings(corpus, params, COMPUTE)
    text = "\n".join(plan.lines)
    assert "stored as float16" in text
    assert f"{50 * ((40 + 48) * 2 + 8) / 1e6:,.1f} MB embeddings" in text
    assert "batches of up to 256 padded tokens" in text
    assert "about 3 commit(s) of new shards to me/embeddings" in text


def test_encoding_plan_fails_on_a_missing_text_column(corpus, teacher_dense):
    with pytest.raises(ValueError, match=r"'body'"):
        plan_teacher_embeddings(corpus, _teacher_params(teacher_dense, text_column="body"), COMPUTE)


def test_distillation_plan_counts_steps_and_names_the_projection(corpus, teacher_dense, student):
    plan = plan_teacher_embeddings(corpus, _teacher_params(teacher_dense), COMPUTE)
    lines = plan_distillation(
        plan.stand_in, plan.num_rows, _distillation_params(student), COMPUTE, {}
    )
    text = "\n".join(lines)
    assert "Transformer -> Pooling -> Dense -> Normalize" in text  # the added projection
    assert "target: teacher_embedding_final (40-d), mse loss\n" in text
    assert f"training: 45 rows, 2 epoch(s) of batch 8 = {math.ceil(45 / 8) * 2} steps" in text
    assert "evaluation: 5 held-out rows; no benchmark (no STS Benchmark pairs)" in text
    assert (
        "evaluated while training: before the first step, after the last, on 5 held-out rows; "
        "keeps the best step by heldout_cosine" in lines
    )


def test_under_torchrun_the_steps_are_those_of_each_process(
    corpus, teacher_dense, student, monkeypatch
):
    for name, value in {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(name, value)
    plan = plan_teacher_embeddings(corpus, _teacher_params(teacher_dense), COMPUTE)
    assert "batches of 8 texts, sorted by length; shared by 2 processes" in "\n".join(plan.lines)
    lines = plan_distillation(
        plan.stand_in, plan.num_rows, _distillation_params(student), COMPUTE, {}
    )
    steps = math.ceil(45 / (8 * 2)) * 2  # as training_steps counts them: per process
    assert f"training: 45 rows, 2 epoch(s) of batch 8 x 2 processes = {steps} steps" in "\n".join(
        lines
    )


def test_the_plan_names_the_in_training_evaluation_and_its_metric(corpus, teacher_dense, student):
    plan = plan_teacher_embeddings(corpus, _teacher_params(teacher_dense), COMPUTE)
    pairs = Dataset.from_dict({"sentence1": ["a"] * 3, "sentence2": ["b"] * 3, "score": [1.0] * 3})
    params = {**_distillation_params(student), "eval_steps": 4}
    lines = plan_distillation(plan.stand_in, plan.num_rows, params, COMPUTE, {}, None, None, pairs)
    assert (
        "evaluated while training: before the first step, every 4 steps, after the last, on "
        "STS-B dev (3 pairs) and 5 held-out rows; keeps the best step by sts_dev" in lines
    )
    with pytest.raises(ValueError, match=r"metric_for_best_model is 'sts_dev' but there are no"):
        plan_distillation(
            plan.stand_in,
            plan.num_rows,
            {**params, "metric_for_best_model": "sts_dev"},
            COMPUTE,
            {},
        )


def test_distillation_plan_checks_the_target_against_the_planned_columns(
    corpus, teacher_dense, student
):
    plan = plan_teacher_embeddings(
        corpus, _teacher_params(teacher_dense, output_type="pre_dense"), COMPUTE
    )
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['teacher_embedding_final'\]"):
        plan_distillation(plan.stand_in, plan.num_rows, _distillation_params(student), COMPUTE, {})


def test_distillation_plan_refuses_a_size_mismatch_without_projection(
    corpus, teacher_dense, student
):
    plan = plan_teacher_embeddings(corpus, _teacher_params(teacher_dense), COMPUTE)
    with pytest.raises(ValueError, match=r"student outputs 32-d embeddings but the target"):
        plan_distillation(
            plan.stand_in,
            plan.num_rows,
            _distillation_params(student, projection="none"),
            COMPUTE,
            {},
        )


def test_distillation_plan_with_a_pca_head_and_a_hidden_state_term(corpus, teacher_plain, student):
    plan = plan_teacher_embeddings(
        corpus,
        _teacher_params(teacher_plain, output_type="hidden_states", layer_indices=[1, 3]),
        COMPUTE,
    )
    lines = plan_distillation(
        plan.stand_in,
        plan.num_rows,
        _distillation_params(student, hidden_state_layer_map={2: 3}, projection="pca"),
        COMPUTE,
        {},
    )
    text = "\n".join(lines)
    assert "target: the hidden-state term alone (no embedding column)" in text
    assert "hidden-state term: student layer -> teacher layer {2: 3}, weight 1" in text


def test_distillation_plan_with_pca_builds_the_head_shape(corpus, teacher_dense, student):
    plan = plan_teacher_embeddings(corpus, _teacher_params(teacher_dense), COMPUTE)
    lines = plan_distillation(
        plan.stand_in, plan.num_rows, _distillation_params(student, projection="pca"), COMPUTE, {}
    )
    assert "Transformer -> Pooling -> Dense -> Normalize" in "\n".join(lines)


def test_distillation_plan_lists_the_benchmarks_and_the_exports(
    corpus, teacher_dense, student, without_packages
):
    plan = plan_teacher_embeddings(corpus, _teacher_params(teacher_dense), COMPUTE)
    pairs = Dataset.from_dict({"sentence1": ["a"] * 3, "sentence2": ["b"] * 3, "score": [1.0] * 3})
    lines = plan_distillation(
        plan.stand_in,
        plan.num_rows,
        _distillation_params(student),
        COMPUTE,
        {"mteb_tasks": ["STSBenchmark", "SICK-R"]},
        {"formats": ["onnx", "onnx_int8"]},
        pairs,
    )
    assert "evaluation: 5 held-out rows; STS Benchmark (3 pairs), SICK-R" in lines
    assert (
        "exports: onnx, onnx_int8, each checked against the trained student on the held-out texts"
        in lines
    )
    off = plan_distillation(
        plan.stand_in, plan.num_rows, _distillation_params(student), COMPUTE, {}, {"formats": []}
    )
    assert "exports: none (export.formats is [])" in off
    assert "evaluation: 5 held-out rows; no benchmark (no STS Benchmark pairs)" in off
    without_packages("onnx", "onnxscript", "onnxruntime", "openvino", "nncf")
    bare = plan_distillation(
        plan.stand_in, plan.num_rows, _distillation_params(student), COMPUTE, {}, {}
    )
    assert (
        "exports: none (export.formats is null and the export extra is not installed: "
        "pip install 'embedding-distillation[export]')"
    ) in bare


@pytest.mark.parametrize(
    ("evaluation", "export", "message"),
    [
        ({"mteb_tasks": ["STSBenchmrk"]}, {}, "Unknown MTEB task 'STSBenchmrk'"),
        ({}, {"formats": ["onnx", "coreml"]}, r"Unknown export format\(s\) \['coreml'\]"),
    ],
)
def test_distillation_plan_refuses_unknown_tasks_and_formats(
    corpus, teacher_dense, student, evaluation, export, message
):
    plan = plan_teacher_embeddings(corpus, _teacher_params(teacher_dense), COMPUTE)
    with pytest.raises(ValueError, match=message):
        plan_distillation(
            plan.stand_in, plan.num_rows, _distillation_params(student), COMPUTE, evaluation, export
        )


def test_the_plan_names_the_similarity_term(corpus, teacher_dense, student):
    plan = plan_teacher_embeddings(corpus, _teacher_params(teacher_dense), COMPUTE)
    params = _distillation_params(student, similarity_weight=20.0)
    lines = plan_distillation(plan.stand_in, plan.num_rows, params, COMPUTE, {})
    assert (
        "target: teacher_embedding_final (40-d), mse loss + 20 x in-batch similarity MSE" in lines
    )
