"""The dry run: its runner and session in this process, and one ``kedro run`` for its exit.

The command line is run once (the plan printed, the command's success); every other dry run
goes through the project's session in this process (``run_in_process``), as ``kedro run`` does.
"""

import logging
import re

import pytest
from kedro.framework.session import KedroSession
from kedro.io import DataCatalog, MemoryDataset

from embedding_distillation.dry_run import DryRunner
from embedding_distillation.pipelines.distillation.pipeline import create_pipeline as distillation
from embedding_distillation.pipelines.teacher_embeddings.pipeline import (
    create_pipeline as teacher_embeddings,
)
from embedding_distillation.session import ProjectSession
from embedding_distillation.training import static
from tests.conftest import base_parameters, make_project_copy, run_in_process, run_kedro
from tests.spies import record_encoded

TINY = {
    "compute": {"device": "cpu", "batch_size": 8},
    "teacher_embeddings": {"max_samples": 30, "chunk_size": 10},
    "distillation": {"batch_size": 8},
}


def _tiny(teacher, student):
    """The parameter groups that differ from conf/base: tiny models, few rows."""
    return {
        **TINY,
        "teacher_embeddings": {**TINY["teacher_embeddings"], "teacher_model": teacher},
        "distillation": {**TINY["distillation"], "student_model": student},
    }


@pytest.fixture
def project(tmp_path, teacher_dense, student):
    return make_project_copy(tmp_path, parameters=_tiny(teacher_dense, student))


def _written(project):
    return sorted(
        str(path.relative_to(project))
        for folder in ("02_intermediate", "03_primary", "06_models", "08_reporting")
        for path in (project / "data" / folder).rglob("*")
    )


def _dry_run(project, caplog, **options) -> str:
    """A dry run in this process (``run_in_process`` options); the plan it printed."""
    with caplog.at_level(logging.INFO):
        ran = run_in_process(project, **options)
    assert ran == []  # no node ran
    assert "Nothing was encoded" in caplog.text
    (plan,) = [
        r.getMessage() for r in caplog.records if r.name == "embedding_distillation.dry_run.plan"
    ]
    return plan


def _catalog(corpus, teacher, student):
    """The catalog entries a dry run of both pipelines reads, with the tiny models."""
    groups = base_parameters()
    for name, values in _tiny(teacher, student).items():
        groups[name] = {**groups[name], **values}
    datasets = {f"params:{name}": MemoryDataset(values) for name, values in groups.items()}
    return DataCatalog({**datasets, "corpus": MemoryDataset(corpus, copy_mode="assign")})


def test_the_dry_runner_logs_the_plan_and_runs_no_node(
    corpus, teacher_dense, student, monkeypatch, caplog
):
    encoded = record_encoded(monkeypatch)
    catalog = _catalog(corpus, teacher_dense, student)
    with caplog.at_level(logging.INFO):
        result = DryRunner().run(teacher_embeddings() + distillation(), catalog)
    assert result == {}
    assert encoded == []  # no node ran: nothing was encoded
    assert "teacher_embeddings" not in catalog and "student_model" not in catalog
    (plan,) = [
        r.getMessage() for r in caplog.records if r.name == "embedding_distillation.dry_run.plan"
    ]
    assert plan.startswith("teacher_embeddings:\n  teacher: ")
    assert "30 rows to encode from column 'text'" in plan
    assert "\ndistillation:\n  student: " in plan
    assert "training: 27 rows, 1 epoch(s) of batch 8 = 4 steps" in plan
    assert "Nothing was encoded, trained or written" in caplog.text


@pytest.mark.parametrize("dry_run", [True, False, None])
def test_the_session_hands_a_dry_run_to_the_dry_runner(monkeypatch, dry_run):
    runs = []
    monkeypatch.setattr(KedroSession, "run", lambda self, *args, **kwargs: runs.append(kwargs))
    parameters = {} if dry_run is None else {"dry_run": dry_run}
    monkeypatch.setattr(
        ProjectSession, "_get_config_loader", lambda self: {"parameters": parameters}
    )
    ProjectSession.run(object.__new__(ProjectSession), pipeline_names=["distillation"])
    (kwargs,) = runs
    assert kwargs["pipeline_names"] == ["distillation"]
    assert isinstance(kwargs.get("runner"), DryRunner) is bool(dry_run)


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


def test_dry_run_of_distillation_alone_needs_stored_embeddings(project):
    with pytest.raises(
        ValueError, match=re.escape("Run `kedro run --pipeline teacher_embeddings` first")
    ):
        run_in_process(project, pipeline="distillation", params="dry_run=true")


def test_dry_run_reports_a_bad_text_column_before_any_work(project):
    with pytest.raises(ValueError, match="Text column 'body' not found in the corpus"):
        run_in_process(project, params="dry_run=true,teacher_embeddings.text_column=body")
    assert _written(project) == []


def test_gpu_env_overrides_single_keys_of_the_base_groups(project, teacher_dense, student, caplog):
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
    plan = _dry_run(project, caplog, env="gpu", params=params)
    assert "on cpu in bf16" in plan  # use_bf16 from conf/gpu
    assert "batches of up to 65,536 padded tokens" in plan
    assert "shards: 1 of up to 5,000 rows" in plan
    assert "3 epoch(s) of batch 128" in plan
    assert "text" in plan  # base keys (text_column) survive the merge


def test_dry_run_plans_a_static_student_without_distilling_it(
    project, teacher_dense, monkeypatch, caplog
):
    distilled = []  # model2vec's distillation, the project's one way in: not called
    monkeypatch.setattr(static, "distil_vocabulary", lambda *a, **k: distilled.append(a))
    params = ",".join(
        [
            "dry_run=true",
            "distillation.student_type=static",
            f"distillation.student_model={teacher_dense}",
            "distillation.static_pca_dims=16",
            "distillation.learning_rate=0.01",
        ]
    )
    plan = _dry_run(project, caplog, params=params)
    assert "parameters; StaticEmbedding -> Dense -> Normalize)" in plan
    assert "into 16-d vectors (PCA 16, SIF 0.0001) when training starts" in plan
    assert distilled == []  # model2vec did not run
    assert _written(project) == []


def test_dry_run_refuses_layers_for_a_static_student(project):
    params = "dry_run=true,distillation.student_type=static,distillation.student_init=0 1"
    with pytest.raises(
        ValueError, match=r"student_init \(0, 1\) does not apply to student_type 'static'"
    ):
        run_in_process(project, params=params)
