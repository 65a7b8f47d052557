"""``kedro run --from-nodes`` for every node, and the kedro CLI around the teacher embeddings.

Each test works on its own copy of ``tiny_project`` (a project after one full ``kedro run``), so
every persisted input of every node is there, as after a user's first run.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, kedro_env, make_project_copy

SLOW_SHARDS_SITE = """
import os
if os.environ.get("ED_TEST_SLOW_SHARDS"):
    import pytest
    from tests.spies import slow_shards
    slow_shards(pytest.MonkeyPatch(), float(os.environ["ED_TEST_SLOW_SHARDS"]))
"""

TEACHER_NODES = ["select_corpus", "encode_corpus", "push_teacher_embeddings"]
DISTILLATION_NODES = [
    "split_embeddings",
    "train_student_model",
    "export_student_model",
    "evaluate_student",
    "plot_report",
    "write_report",
    "push_student_model",  # the model card carries the report
]


@pytest.fixture
def project(tiny_project: Path, tmp_path: Path) -> Path:
    """A copy of the tiny project, data included."""
    path = tmp_path / "project"
    shutil.copytree(tiny_project, path, ignore=shutil.ignore_patterns("build"))
    return path


def run_kedro(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """``python -m kedro <args>`` in ``project``; log lines unwrapped (a wide console)."""
    return subprocess.run(
        [sys.executable, "-m", "kedro", *args],
        check=False,
        cwd=project,
        env={**kedro_env(), "COLUMNS": "400", **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


def _output(result: subprocess.CompletedProcess) -> str:
    """stdout + stderr with rich's line wrapping undone."""
    return " ".join((result.stdout + result.stderr).split())


def _ran(result: subprocess.CompletedProcess) -> list[str]:
    return re.findall(r"Running node: (\w+)", _output(result))


def _versions(project: Path, dataset: str) -> list[str]:
    folder = project / "data" / dataset
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _newest(project: Path, dataset: str) -> Path:
    """The file of the newest version of ``dataset`` (a path under data/)."""
    folder = project / "data" / dataset
    return folder / _versions(project, dataset)[-1] / folder.name


@pytest.mark.slow
@pytest.mark.parametrize(
    ("pipeline", "node"),
    [("teacher_embeddings", n) for n in TEACHER_NODES]
    + [("distillation", n) for n in DISTILLATION_NODES],
)
def test_from_nodes_runs_that_node_and_what_follows_it(project, pipeline, node):
    nodes = TEACHER_NODES if pipeline == "teacher_embeddings" else DISTILLATION_NODES
    embeddings = _versions(project, "03_primary/teacher_embeddings")
    students = _versions(project, "06_models/student_model")
    exports = _versions(project, "06_models/student_exports")
    metrics = _versions(project, "08_reporting/distillation_metrics.json")

    result = run_kedro(project, "run", "--pipeline", pipeline, "--from-nodes", node)

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ran = _ran(result)
    assert node in ran and not set(ran) & set(nodes[: nodes.index(node)])
    encoded = node in ("select_corpus", "encode_corpus")
    assert len(_versions(project, "03_primary/teacher_embeddings")) == len(embeddings) + encoded
    trained = node in ("split_embeddings", "train_student_model")
    assert len(_versions(project, "06_models/student_model")) == len(students) + trained
    exported = node in ("split_embeddings", "train_student_model", "export_student_model")
    assert len(_versions(project, "06_models/student_exports")) == len(exports) + exported
    evaluated = exported or node == "evaluate_student"
    assert len(_versions(project, "08_reporting/distillation_metrics.json")) == (
        len(metrics) + evaluated
    )
    if node == "evaluate_student":  # the latest saved student, re-evaluated without training
        assert "Running node: train_student_model" not in _output(result)
        record = json.loads(_newest(project, "08_reporting/distillation_metrics.json").read_text())
        assert record["heldout_rows"] == 3
        assert record["teacher_model"] == "data/01_raw/models/teacher"
    if node == "encode_corpus":  # Kedro's timing lines put the encoding on the encode node
        text = _output(result)
        start = text.index("Running node: encode_corpus")
        last_shard = text.rindex("Shard 3/3 written")
        saved = text.index("Saving data to teacher_embeddings (EmbeddingShardsDataset)...")
        assert start < last_shard < saved < text.index("Completed node: encode_corpus")
    if node == "push_teacher_embeddings":
        assert "push_every is null: the teacher embeddings are not pushed" in _output(result)


@pytest.mark.slow
def test_distilling_an_older_embeddings_version_names_and_scores_its_teacher(
    project, teacher_plain
):
    """The reproduced bug: encode with teacher A, then with B; distil A's version with B set."""
    (version_a,) = _versions(project, "03_primary/teacher_embeddings")
    teacher_b = f"teacher_embeddings.teacher_model={teacher_plain}"
    result = run_kedro(project, "run", "--pipeline", "teacher_embeddings", "--params", teacher_b)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    result = run_kedro(
        project,
        "run",
        "--pipeline",
        "distillation",
        "--params",
        teacher_b,
        "--load-versions",
        f"teacher_embeddings:{version_a}",
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metrics = json.loads(_newest(project, "08_reporting/distillation_metrics.json").read_text())
    assert metrics["teacher_model"] == "data/01_raw/models/teacher"  # A, as the manifest says
    report = _newest(project, "08_reporting/distillation_report.md").read_text()
    assert "data/01_raw/models/teacher" in report and teacher_plain not in report


def _slow_site(tmp_path: Path) -> dict[str, str]:
    """An environment whose Python processes sleep before each shard (ED_TEST_SLOW_SHARDS)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SLOW_SHARDS_SITE)
    return {"PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}


@pytest.mark.slow
def test_a_second_kedro_run_of_the_same_job_is_refused_and_a_killed_one_resumes(
    tmp_path, teacher_dense
):
    project = make_project_copy(
        tmp_path / "project",
        parameters={
            "compute": {"device": "cpu", "batch_size": 8},
            "teacher_embeddings": {"teacher_model": teacher_dense, "chunk_size": 5},
        },
    )
    site = _slow_site(tmp_path)
    first = subprocess.Popen(
        [sys.executable, "-m", "kedro", "run", "--pipeline", "teacher_embeddings"],
        cwd=project,
        env={**kedro_env(), **site, "ED_TEST_SLOW_SHARDS": "3"},  # 8 shards: 24 s at least
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        folder = project / "data" / "03_primary" / "teacher_embeddings"
        deadline = time.monotonic() + 300
        while not list(folder.glob("*/teacher_embeddings/manifest.json")):
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        (unfinished,) = folder.glob("*/teacher_embeddings")

        second = run_kedro(project, "run", "--pipeline", "teacher_embeddings", **site)

        output = _output(second)
        assert second.returncode != 0
        assert f"{unfinished} is being written by another process (pid {first.pid} on" in output
        assert "Loading teacher" not in output  # refused before the teacher loaded
        assert first.poll() is None  # the first run goes on
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()

    third = run_kedro(project, "run", "--pipeline", "teacher_embeddings", **site)
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    assert "Resuming the unfinished run" in _output(third)
    (manifest_path,) = folder.glob("*/teacher_embeddings/manifest.json")  # one version
    manifest = json.loads(manifest_path.read_text())
    assert manifest["complete"] and manifest["num_rows"] == 40
