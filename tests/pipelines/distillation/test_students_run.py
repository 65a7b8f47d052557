"""Several students from one set of teacher embeddings, through the project's own session."""

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_in_process

# tiny_project's teacher embeddings are reused: only the distillation pipeline runs.
ONE_FORMAT = "export.formats=[onnx]"


def _with_students(project: Path, students: dict) -> Path:
    """Set ``students`` in the project copy's conf/local parameters."""
    path = project / "conf" / "local" / "parameters.yml"
    parameters = yaml.safe_load(path.read_text())
    parameters["students"] = students
    path.write_text(yaml.safe_dump(parameters))
    return project


def _newest(project: Path, dataset: str) -> Path:
    """The newest version's file or folder of ``dataset`` (a path under data/)."""
    folder = project / "data" / dataset
    return sorted(folder.iterdir())[-1] / folder.name


@pytest.mark.slow
def test_two_students_are_trained_and_compared_and_a_failing_one_is_reported(tiny_project_copy):
    project = _with_students(
        tiny_project_copy,
        {
            "a": {},
            "b": {"learning_rate": 1.0e-3},
            "broken": {"text_column": "no_such_column"},  # passes the checks, fails training
        },
    )
    ran = run_in_process(project, pipeline="distillation", params=ONE_FORMAT)

    for name in ("a", "b", "broken"):
        assert f"{name}.train_student_model" in ran and f"{name}.resolve_student" in ran
    assert "compare_students" in ran
    for name in ("a", "b"):  # each in its own version folder, a model that loads
        model = _newest(project, f"06_models/students/{name}/student_model")
        assert (model / "model.safetensors").exists(), name
        options = json.loads(
            _newest(project, f"06_models/students/{name}/student_options.json").read_text()
        )
        assert options["output_dir"].endswith(f"/{name}")
    options = json.loads(_newest(project, "06_models/students/b/student_options.json").read_text())
    assert options["learning_rate"] == 1.0e-3

    # The failing student: its record in place of its model, and in its report.
    failure = json.loads(
        (
            _newest(project, "06_models/students/broken/student_model") / "student_failure.json"
        ).read_text()
    )
    assert failure["failed"]["step"] == "train_student_model"
    assert "no_such_column" in failure["failed"]["message"]
    report = _newest(project, "08_reporting/students/broken/distillation_report.md").read_text()
    assert "broken failed at train_student_model" in report

    comparison = json.loads(_newest(project, "08_reporting/students_comparison.json").read_text())
    assert comparison["students"] == ["a", "b", "broken"]
    trained = {row["student"]: row for row in comparison["rows"] if row["form"] == "torch"}
    assert set(trained) == {"a", "b"}
    assert all(row["texts_per_second"] > 0 for row in trained.values())
    assert [f["student"] for f in comparison["failures"]] == ["broken"]
    markdown = _newest(project, "08_reporting/students_comparison.md").read_text()
    assert "`kedro run --namespaces broken`" in markdown


def test_an_unknown_key_in_a_student_stops_the_run_before_any_node(tiny_project_copy):
    project = _with_students(tiny_project_copy, {"a": {}, "b": {"lerning_rate": 1.0e-3}})
    with pytest.raises(
        ValueError, match=r"Unknown key\(s\) \['lerning_rate'\] in the 'students.b'"
    ):
        run_in_process(project, pipeline="distillation", params=ONE_FORMAT)
    assert not (project / "data" / "06_models" / "students").exists()  # no node ran


def test_an_invalid_student_name_stops_the_run_before_any_node(tiny_project_copy):
    project = _with_students(tiny_project_copy, {"mini-lm": {}})
    with pytest.raises(ValueError, match=r"students: 'mini-lm' is not a Python identifier"):
        run_in_process(project, pipeline="distillation", params=ONE_FORMAT)
    assert not (project / "data" / "06_models" / "students").exists()  # no node ran
