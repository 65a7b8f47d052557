"""``kedro run --params dry_run=true`` and the ``gpu`` environment, through the kedro CLI."""

import pytest

from tests.conftest import make_project_copy, run_kedro

TINY = {
    "compute": {"device": "cpu", "batch_size": 8},
    "teacher_embeddings": {"max_samples": 30, "chunk_size": 10},
    "distillation": {"batch_size": 8},
}


@pytest.fixture
def project(tmp_path, teacher_dense, student):
    params = {
        **TINY,
        "teacher_embeddings": {**TINY["teacher_embeddings"], "teacher_model": teacher_dense},
        "distillation": {**TINY["distillation"], "student_model": student},
    }
    return make_project_copy(tmp_path, parameters=params)


def _written(project):
    return sorted(
        str(path.relative_to(project))
        for folder in ("02_intermediate", "03_primary", "06_models", "08_reporting")
        for path in (project / "data" / folder).rglob("*")
    )


def _unwrapped(result):
    """stdout + stderr with rich's line wrapping undone."""
    return " ".join((result.stdout + result.stderr).split())


@pytest.mark.slow
def test_dry_run_prints_the_plan_of_both_pipelines_and_writes_nothing(project):
    result = run_kedro(project, "run", "--params", "dry_run=true")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "teacher_embeddings:\n  teacher: " in result.stdout
    assert "30 rows to encode from column 'text'" in result.stdout
    assert "shards: 3 of up to 10 rows; batches of 8 texts" in result.stdout
    assert "distillation:\n  student: " in result.stdout
    assert "training: 27 rows, 1 epoch(s) of batch 8 = 4 steps" in result.stdout
    assert (
        "exports: onnx, onnx_int8, openvino, openvino_int8, each checked against the trained "
        "student on the held-out texts" in result.stdout
    )
    assert "Nothing was encoded" in result.stdout + result.stderr
    assert _written(project) == []


@pytest.mark.slow
def test_dry_run_of_distillation_alone_needs_stored_embeddings(project):
    result = run_kedro(project, "run", "--pipeline", "distillation", "--params", "dry_run=true")
    assert result.returncode != 0
    assert "Run `kedro run --pipeline teacher_embeddings` first" in _unwrapped(result)


@pytest.mark.slow
def test_dry_run_reports_a_bad_text_column_before_any_work(project):
    result = run_kedro(
        project, "run", "--params", "dry_run=true,teacher_embeddings.text_column=body"
    )
    assert result.returncode != 0
    assert "Text column 'body' not found in the corpus" in _unwrapped(result)
    assert _written(project) == []


@pytest.mark.slow
def test_gpu_env_overrides_single_keys_of_the_base_groups(project, teacher_dense, student):
    # conf/gpu replaces conf/local, so the tiny models come from --params here.
    params = ",".join(
        [
            "dry_run=true",
            "compute.device=cpu",
            f"teacher_embeddings.teacher_model={teacher_dense}",
            "teacher_embeddings.max_samples=40",
            f"distillation.student_model={student}",
        ]
    )
    result = run_kedro(project, "run", "--env", "gpu", "--params", params)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "on cpu in bf16" in result.stdout  # use_bf16 from conf/gpu
    assert "batches of up to 65,536 padded tokens" in result.stdout
    assert "shards: 1 of up to 5,000 rows" in result.stdout
    assert "3 epoch(s) of batch 128" in result.stdout
    assert "text" in result.stdout  # base keys (text_column) survive the merge


@pytest.mark.slow
def test_dry_run_plans_a_static_student_without_distilling_it(project, teacher_dense):
    params = ",".join(
        [
            "dry_run=true",
            "distillation.student_type=static",
            f"distillation.student_model={teacher_dense}",
            "distillation.static_pca_dims=16",
            "distillation.learning_rate=0.01",
        ]
    )
    result = run_kedro(project, "run", "--params", params)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "parameters; StaticEmbedding -> Dense -> Normalize)" in result.stdout
    assert "into 16-d vectors (PCA 16, SIF 0.0001) when training starts" in result.stdout
    assert "Encoding tokens" not in result.stdout + result.stderr  # model2vec did not run
    assert _written(project) == []


@pytest.mark.slow
def test_dry_run_refuses_layers_for_a_static_student(project):
    params = "dry_run=true,distillation.student_type=static,distillation.student_init=0 1"
    result = run_kedro(project, "run", "--params", params)
    assert result.returncode != 0
    assert "student_init (0, 1) does not apply to student_type 'static'" in _unwrapped(result)
