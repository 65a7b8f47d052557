"""The Kedro project itself: its conf, catalog and CLI, run as a user runs them.

The full ``kedro run`` is ``tiny_project``'s (its output kept beside it); the commands that read
the project run in this process through Kedro's own command line (click's test runner).
"""

import json
import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from kedro.framework.cli.cli import KedroCLI

from tests.conftest import TINY_PROJECT_TOKEN, make_project_copy, run_in_process


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the project's conf and pyproject with a tiny corpus in data/."""
    return make_project_copy(tmp_path_factory.mktemp("project"))


def _kedro(project: Path, *args: str, monkeypatch: pytest.MonkeyPatch):
    """``kedro <args>`` in ``project``, in this process; the click result (output, exit code)."""
    monkeypatch.chdir(project)
    monkeypatch.setattr(sys, "path", sys.path[:])  # Kedro's bootstrap adds the project's src/
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))  # and to PYTHONPATH
    monkeypatch.setenv("HF_TOKEN", TINY_PROJECT_TOKEN)
    monkeypatch.setenv("KEDRO_DISABLE_TELEMETRY", "1")
    return CliRunner().invoke(KedroCLI(project_path=project), list(args), catch_exceptions=False)


def test_registry_lists_both_pipelines(project, monkeypatch):
    result = _kedro(project, "registry", "list", monkeypatch=monkeypatch)
    assert result.exit_code == 0, result.output
    for name in ("__default__", "teacher_embeddings", "distillation"):
        assert f"- {name}" in result.output


@pytest.mark.slow
def test_kedro_run_with_overridden_params_then_catalog_list(tiny_project, monkeypatch):
    """tiny_project's ``kedro run`` (parameters from conf/local, ``HF_TOKEN`` set), then the list."""
    manifests = list(
        (tiny_project / "data" / "03_primary" / "teacher_embeddings").glob("*/*/manifest.json")
    )
    assert len(manifests) == 1
    manifest = json.loads(manifests[0].read_text())
    assert manifest["complete"] and manifest["num_rows"] == 30 and len(manifest["shards"]) == 3
    assert list(
        (tiny_project / "data" / "06_models" / "student_model").glob(
            "*/student_model/model.safetensors"
        )
    )
    reporting = tiny_project / "data" / "08_reporting"
    metrics = json.loads(next(reporting.glob("distillation_metrics.json/*/*.json")).read_text())
    assert metrics["heldout_rows"] == 3
    assert "gold" not in metrics["teacher"]  # the optional gold pairs are absent here
    assert next(reporting.glob("distillation_report.md/*/*.md")).exists()
    assert TINY_PROJECT_TOKEN not in (tiny_project.parent / "kedro_run.log").read_text()

    listing = _kedro(
        tiny_project, "catalog", "list", "--pipeline", "distillation", monkeypatch=monkeypatch
    )
    assert listing.exit_code == 0, listing.output
    version = manifests[0].parent.parent.name
    assert f"teacher_embeddings: EmbeddingShardsDataset, versions: ['{version}']" in listing.output
    assert TINY_PROJECT_TOKEN not in listing.output


@pytest.mark.slow
def test_corpus_streaming_from_the_command_line(project, teacher_dense, caplog):
    params = ",".join(
        [
            "corpus_streaming=true",  # the catalog's ${runtime_params:corpus_streaming, false}
            f"teacher_embeddings.teacher_model={teacher_dense}",
            "teacher_embeddings.max_samples=25",
            "teacher_embeddings.chunk_size=10",
            "compute.device=cpu",
        ]
    )
    with caplog.at_level("INFO"):
        run_in_process(project, pipeline="teacher_embeddings", params=params)
    assert "Corpus: streamed, up to 25 rows" in caplog.text
    manifest_path = max(  # the newest version: the module's project ran other tests before
        (project / "data" / "03_primary" / "teacher_embeddings").glob("*/*/manifest.json")
    )
    manifest = json.loads(manifest_path.read_text())
    assert manifest["identity"]["corpus_fingerprint"] == "streamed"
    assert manifest["complete"] and manifest["num_rows"] == 25 and len(manifest["shards"]) == 3


def test_a_bad_parameter_stops_the_run_before_any_model_loads(project):
    with pytest.raises(ValueError, match="use_fp16 and compute.use_bf16 are both true"):
        run_in_process(project, params="compute.use_fp16=true,compute.use_bf16=true")
