"""The students the pipeline registry builds branches for: published by a session, or read from conf.

``Branches`` stands in for ``distillation.create_pipeline(students=...)``: one cheap node per
student, which records the options it was given, so these tests see which names reached the
registry and what a run of its pipeline does, without training anything.
"""

from pathlib import Path
from typing import Any

import pytest
import yaml
from kedro.framework import project
from kedro.framework.project import configure_project
from kedro.pipeline import Node, Pipeline

from embedding_distillation import pipeline_registry, registry_students
from embedding_distillation.pipelines import distillation
from tests.conftest import base_parameters, make_project_copy

PACKAGE = "embedding_distillation"


class Branches:
    """``create_pipeline(students=...)``: one ``<name>.resolve_student`` node per student.

    Each node records the ``params:students.<name>`` it was given in ``options``; ``built``
    holds the students of every call that named some. Without students, the real pipeline.
    """

    def __init__(self, real: Any) -> None:
        self.real = real
        self.built: list[tuple[str, ...]] = []
        self.options: dict[str, Any] = {}

    def __call__(self, students: tuple[str, ...] = (), **kwargs: Any) -> Pipeline:
        if not students:
            return self.real(**kwargs)
        self.built.append(tuple(students))
        return Pipeline([self._node(name) for name in students])

    def _node(self, name: str) -> Node:
        def resolve_student(options: Any) -> None:
            self.options[name] = options

        return Node(
            func=resolve_student,
            inputs=f"params:students.{name}",
            outputs=None,
            name="resolve_student",
            namespace=name,
        )


@pytest.fixture(autouse=True)
def unpublished(monkeypatch: pytest.MonkeyPatch):
    """The project configured, no students published yet; Kedro's pipelines dropped after."""
    configure_project(PACKAGE)  # its settings (config loader, merge strategy) and registry
    monkeypatch.setattr(registry_students, "_published", None)
    yield
    project.pipelines.configure(f"{PACKAGE}.pipeline_registry")  # built with the stand-in


@pytest.fixture
def branches(monkeypatch: pytest.MonkeyPatch) -> Branches:
    """The stand-in, as the distillation package's ``create_pipeline`` (find_pipelines' too)."""
    fake = Branches(distillation.create_pipeline)
    monkeypatch.setattr(distillation, "create_pipeline", fake)
    return fake


def students(**entries: Any) -> dict[str, Any]:
    """A ``students`` group with these entries and every conf/base student left out (null).

    Parameters merge key by key, so a group written in another file keeps the base's students
    unless they are nulled.
    """
    base = base_parameters().get("students") or {}
    return {**dict.fromkeys(base), **entries}


def node_names(pipeline: Pipeline) -> list[str]:
    return sorted(node.name for node in pipeline.nodes)


def test_published_students_get_a_branch_each_in_the_registry(branches):
    names = registry_students.use({"students": {"a": {}, "b": {"learning_rate": 0.1}, "c": None}})
    assert names == ("a", "b")
    assert registry_students.names() == ("a", "b")
    pipelines = pipeline_registry.register_pipelines()
    assert branches.built == [("a", "b")]
    assert node_names(pipelines["distillation"]) == ["a.resolve_student", "b.resolve_student"]
    default = set(node_names(pipelines["__default__"]))
    assert default == set(node_names(pipelines["teacher_embeddings"])) | {
        "a.resolve_student",
        "b.resolve_student",
    }


@pytest.mark.parametrize("parameters", [{}, {"students": None}, {"students": {}}])
def test_no_students_keep_the_single_student_pipeline(branches, parameters):
    assert registry_students.use(parameters) == ()
    pipelines = pipeline_registry.register_pipelines()
    assert branches.built == []
    assert node_names(pipelines["distillation"]) == node_names(branches.real())


def test_new_students_drop_kedros_cached_pipelines(branches):
    registry_students.use({"students": {"a": {}}})
    first = project.pipelines["distillation"]
    assert node_names(first) == ["a.resolve_student"]

    registry_students.use({"students": {"a": {}}})  # the same students: the cache is kept
    assert project.pipelines["distillation"] is first

    registry_students.use({"students": {"b": {}, "c": {}}})
    assert node_names(project.pipelines["distillation"]) == [
        "b.resolve_student",
        "c.resolve_student",
    ]
    assert branches.built == [("a",), ("b", "c")]


def test_an_invalid_name_is_refused_and_not_published():
    registry_students.use({"students": {"a": {}}})
    with pytest.raises(
        ValueError, match=r"students: 'mini-lm' is not a Python identifier .* mini_lm"
    ):
        registry_students.use({"students": {"mini-lm": {}}})
    assert registry_students.names() == ("a",)


def _base_students(project_path: Path, group: dict[str, Any]) -> None:
    """Make ``group`` the only ``students`` of the copy's conf/base and conf/local."""
    conf = project_path / "conf"
    for file in [*conf.glob("base/parameters*.yml"), *conf.glob("local/parameters*.yml")]:
        parameters = yaml.safe_load(file.read_text()) or {}
        if "students" in parameters:
            del parameters["students"]
            file.write_text(yaml.safe_dump(parameters))
    (conf / "base" / "parameters_students.yml").write_text(yaml.safe_dump({"students": group}))


@pytest.fixture
def conf_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project copy whose conf/base names students a and b; conf/extra drops a, adds c."""
    path = make_project_copy(tmp_path / "project")
    _base_students(path, {"a": {}, "b": {"learning_rate": 0.1}})
    (path / "conf" / "extra").mkdir()
    (path / "conf" / "extra" / "parameters.yml").write_text(
        yaml.safe_dump({"students": {"a": None, "c": {}}})
    )
    monkeypatch.chdir(path / "src")  # the project is found from below its root too
    monkeypatch.delenv("KEDRO_ENV", raising=False)
    return path


def test_without_a_session_the_names_come_from_conf(conf_project, branches):
    assert registry_students.names() == ("a", "b")
    pipelines = pipeline_registry.register_pipelines()
    assert branches.built == [("a", "b")]
    assert node_names(pipelines["distillation"]) == ["a.resolve_student", "b.resolve_student"]


def test_without_a_session_kedro_env_names_the_environment(conf_project, monkeypatch):
    monkeypatch.setenv("KEDRO_ENV", "extra")
    assert registry_students.names() == ("b", "c")  # merged key by key: a nulled, c added


def test_published_students_win_over_conf(conf_project):
    registry_students.use({"students": {"z": {}}})
    assert registry_students.names() == ("z",)


def test_without_conf_there_are_no_students(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert registry_students.names() == ()


def test_the_registry_builds_a_namespace_per_published_student():
    registry_students.use({"students": {"a": {}, "b": {"learning_rate": 0.1}}})
    built = pipeline_registry.register_pipelines()["distillation"]
    assert {node.namespace for node in built.nodes} == {None, "a", "b"}
    assert {
        "split_embeddings",
        "a.resolve_student",
        "b.train_student_model",
        "compare_students",
    } <= set(node_names(built))
