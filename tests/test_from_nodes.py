"""``kedro run --from-nodes`` for every node, and the kedro CLI around the teacher embeddings.

Each test works on its own copy of ``tiny_project`` (a project after one full ``kedro run``), so
every persisted input of every node is there, as after a user's first run. Three boundaries run
through the command line; the others run the same session in this process (``run_in_process``).
"""

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kedro.framework.hooks import hook_impl

from embedding_distillation.encoding import engine
from embedding_distillation.encoding.lock import FolderInUseError
from tests.conftest import (
    ROOT,
    kedro_env,
    kedro_output,
    make_project_copy,
    run_in_process,
    run_kedro,
)
from tests.spies import record_encoded

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
# The boundaries run by `kedro run --from-nodes` itself: the start of each pipeline, and a node
# in the middle whose inputs are all persisted versions of an earlier run.
COMMAND_LINE = {"select_corpus", "split_embeddings", "evaluate_student"}
# The reruns export one format, as tiny_project's first run does: which nodes run is under test
# here, not the formats (tests/export/ covers those).
ONE_FORMAT = "export.formats=[onnx]"


def _ran(result: subprocess.CompletedProcess) -> list[str]:
    return re.findall(r"Running node: (\w+)", kedro_output(result))


class EncodeTimeline:
    """A hook: the shards encoded when ``encode_corpus`` starts and when it returns."""

    def __init__(self, encoded: list[int]) -> None:
        self.encoded = encoded
        self.at: dict[str, list[int]] = {}

    @hook_impl
    def before_node_run(self, node):
        if node.name == "encode_corpus":
            self.at["start"] = list(self.encoded)

    @hook_impl
    def after_node_run(self, node):  # before Kedro saves the node's outputs
        if node.name == "encode_corpus":
            self.at["end"] = list(self.encoded)


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
def test_from_nodes_runs_that_node_and_what_follows_it(
    tiny_project_copy, pipeline, node, monkeypatch, caplog
):
    project = tiny_project_copy
    nodes = TEACHER_NODES if pipeline == "teacher_embeddings" else DISTILLATION_NODES
    embeddings = _versions(project, "03_primary/teacher_embeddings")
    students = _versions(project, "06_models/student_model")
    exports = _versions(project, "06_models/student_exports")
    metrics = _versions(project, "08_reporting/distillation_metrics.json")

    timeline = EncodeTimeline(record_encoded(monkeypatch))  # of the run in this process
    if node in COMMAND_LINE:
        result = run_kedro(
            project, "run", "--pipeline", pipeline, "--from-nodes", node, "--params", ONE_FORMAT
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        ran = _ran(result)
    else:
        with caplog.at_level(logging.INFO):
            ran = run_in_process(
                project, pipeline=pipeline, params=ONE_FORMAT, from_nodes=[node], hooks=[timeline]
            )

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
        assert "train_student_model" not in ran
        record = json.loads(_newest(project, "08_reporting/distillation_metrics.json").read_text())
        assert record["heldout_rows"] == 3
        assert record["teacher_model"] == "data/01_raw/models/teacher"
    if node == "encode_corpus":  # the encoding is the encode node's, not its output's save
        assert timeline.at == {"start": [], "end": [0, 1, 2]}
    if node == "push_teacher_embeddings":
        assert "push_every is null: the teacher embeddings are not pushed" in caplog.text


@pytest.mark.slow
def test_distilling_an_older_embeddings_version_names_and_scores_its_teacher(
    tiny_project_copy, teacher_plain
):
    """The reproduced bug: encode with teacher A, then with B; distil A's version with B set."""
    project = tiny_project_copy
    (version_a,) = _versions(project, "03_primary/teacher_embeddings")
    teacher_b = f"teacher_embeddings.teacher_model={teacher_plain},{ONE_FORMAT}"
    run_in_process(project, pipeline="teacher_embeddings", params=teacher_b)

    run_in_process(
        project,
        pipeline="distillation",
        params=teacher_b,
        load_versions={"teacher_embeddings": version_a},
    )

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
    tmp_path, teacher_dense, monkeypatch, caplog
):
    """The first run is a process of its own, killed with SIGKILL; the others run here."""
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

        loaded = []  # the teacher loads of the second run: none, it is refused first
        monkeypatch.setattr(
            engine, "load_sentence_transformer", lambda *a, **k: loaded.append(a) or None
        )

        with pytest.raises(FolderInUseError) as refused:
            run_in_process(project, pipeline="teacher_embeddings")

        output = " ".join(str(refused.value).split())
        assert f"{unfinished} is being written by another process (pid {first.pid} on" in output
        assert loaded == []  # refused before the teacher loaded
        assert first.poll() is None  # the first run goes on
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    monkeypatch.undo()

    with caplog.at_level(logging.INFO):
        run_in_process(project, pipeline="teacher_embeddings")
    assert "Resuming the unfinished run" in caplog.text
    (manifest_path,) = folder.glob("*/teacher_embeddings/manifest.json")  # one version
    manifest = json.loads(manifest_path.read_text())
    assert manifest["complete"] and manifest["num_rows"] == 40
