"""The Kedro project itself: its conf, catalog and CLI, run as a user runs them."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from datasets import Dataset

from tests.conftest import make_sentences

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the project's conf and pyproject with a tiny corpus in data/."""
    path = tmp_path_factory.mktemp("project")
    shutil.copytree(ROOT / "conf", path / "conf", ignore=shutil.ignore_patterns("credentials.yml"))
    (path / "conf" / "base" / "credentials.yml").write_text(
        (ROOT / "conf" / "base" / "credentials.yml").read_text()
    )
    shutil.copy(ROOT / "pyproject.toml", path)
    (path / "src").mkdir()  # the package itself is installed (pip install -e .)
    shutil.copy(ROOT / ".telemetry", path)
    corpus_dir = path / "data" / "01_raw" / "corpus"
    corpus_dir.mkdir(parents=True)
    Dataset.from_dict({"text": make_sentences(40, seed=3)}).to_parquet(
        str(corpus_dir / "demo_corpus.parquet")
    )
    return path


def _kedro(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_TOKEN": "hf_secret_token_123", "KEDRO_DISABLE_TELEMETRY": "1"}
    return subprocess.run(
        [sys.executable, "-m", "kedro", *args],
        check=False,
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_registry_lists_both_pipelines(project):
    result = _kedro(project, "registry", "list")
    assert result.returncode == 0, result.stderr
    for name in ("__default__", "teacher_embeddings", "distillation"):
        assert f"- {name}" in result.stdout


@pytest.mark.slow
def test_kedro_run_with_overridden_params_then_catalog_list(project, teacher_dense, student):
    params = ",".join(
        [
            f"teacher_embeddings.teacher_model={teacher_dense}",
            "teacher_embeddings.max_samples=30",
            "teacher_embeddings.chunk_size=10",
            f"distillation.student_model={student}",
            "distillation.batch_size=8",
            "distillation.logging_steps=1",
            "compute.device=cpu",
            "evaluation.speed_texts=8",
        ]
    )
    result = _kedro(project, "run", "--params", params)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    manifests = list(
        (project / "data" / "03_primary" / "teacher_embeddings").glob("*/*/manifest.json")
    )
    assert len(manifests) == 1
    manifest = json.loads(manifests[0].read_text())
    assert manifest["complete"] and manifest["num_rows"] == 30 and len(manifest["shards"]) == 3
    assert list(
        (project / "data" / "06_models" / "student_model").glob("*/student_model/model.safetensors")
    )
    metrics = json.loads(
        next(
            (project / "data" / "08_reporting").glob("distillation_metrics.json/*/*.json")
        ).read_text()
    )
    assert metrics["heldout_rows"] == 3
    assert "gold" not in metrics["teacher"]  # the optional gold pairs are absent here
    assert next((project / "data" / "08_reporting").glob("distillation_report.md/*/*.md")).exists()
    assert "hf_secret_token_123" not in result.stdout + result.stderr

    listing = _kedro(project, "catalog", "list", "--pipeline", "distillation")
    assert listing.returncode == 0, listing.stderr
    version = manifests[0].parent.parent.name
    assert f"teacher_embeddings: EmbeddingShardsDataset, versions: ['{version}']" in listing.stdout
    assert "hf_secret_token_123" not in listing.stdout + listing.stderr


@pytest.mark.slow
def test_corpus_streaming_from_the_command_line(project, teacher_dense):
    params = ",".join(
        [
            "corpus_streaming=true",  # the catalog's ${runtime_params:corpus_streaming, false}
            f"teacher_embeddings.teacher_model={teacher_dense}",
            "teacher_embeddings.max_samples=25",
            "teacher_embeddings.chunk_size=10",
            "compute.device=cpu",
        ]
    )
    result = _kedro(project, "run", "--pipeline", "teacher_embeddings", "--params", params)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Corpus: streamed, up to 25 rows" in result.stdout + result.stderr
    manifest_path = max(  # the newest version: the module's project ran other tests before
        (project / "data" / "03_primary" / "teacher_embeddings").glob("*/*/manifest.json")
    )
    manifest = json.loads(manifest_path.read_text())
    assert manifest["identity"]["corpus_fingerprint"] == "streamed"
    assert manifest["complete"] and manifest["num_rows"] == 25 and len(manifest["shards"]) == 3


def test_a_bad_parameter_stops_the_run_before_any_model_loads(project):
    result = _kedro(project, "run", "--params", "compute.use_fp16=true,compute.use_bf16=true")
    assert result.returncode != 0
    assert "use_fp16 and compute.use_bf16 are both true" in result.stdout + result.stderr
