"""The project's session: the run's students reach the pipeline registry, whatever sets them.

Runs go through ``run_in_process`` (the command's steps in this process) with
``create_pipeline(students=...)`` replaced by ``Branches`` (one cheap node per student), so the
nodes that ran are the registry's branches for the students the session published.
(The session's dry run is tested in tests/test_dry_run.py.)
"""

import os
import sys
from typing import Any

import pytest
import yaml
from kedro.framework.hooks import hook_impl
from kedro.framework.project import pipelines, settings
from kedro.framework.startup import bootstrap_project
from kedro.runner import SequentialRunner

from embedding_distillation import registry_students
from embedding_distillation.session import ProjectSession
from tests.conftest import NodeRecorder, make_project_copy, run_in_process
from tests.test_registry_students import (  # noqa: F401 (fixtures)
    branches,
    node_names,
    students,
    unpublished,
)


def test_the_project_runs_with_this_session():
    assert settings.SESSION_CLASS is ProjectSession


def _project(tmp_path, **entries: Any):
    """A project copy whose conf/local names these students (conf/base's left out)."""
    project = make_project_copy(tmp_path / "project", parameters={"students": students(**entries)})
    (project / "conf" / "extra").mkdir()
    (project / "conf" / "extra" / "parameters.yml").write_text(
        yaml.safe_dump({"students": students(c={"learning_rate": 0.2})})
    )
    return project


@pytest.mark.parametrize(
    ("local", "params", "env", "expected"),
    [
        pytest.param(
            {"a": {}, "b": {"learning_rate": 0.1}},
            "",
            None,
            {"a": {}, "b": {"learning_rate": 0.1}},
            id="conf-local",
        ),
        pytest.param(
            {"a": {}},
            "students.b.learning_rate=0.1",
            None,
            {"a": {}, "b": {"learning_rate": 0.1}},
            id="params-add",
        ),
        pytest.param({"a": {}, "b": {}}, "students.a=null", None, {"b": {}}, id="params-remove"),
        pytest.param({"a": {}}, "", "extra", {"c": {"learning_rate": 0.2}}, id="env"),
        pytest.param(
            {"a": {}},
            "students.c.learning_rate=0.3",
            "extra",
            {"c": {"learning_rate": 0.3}},
            id="env-and-params",
        ),
    ],
)
def test_a_run_publishes_the_students_of_its_parameters(
    tmp_path,
    branches,  # noqa: F811
    local,
    params,
    env,
    expected,
):
    project = _project(tmp_path, **local)
    ran = run_in_process(project, pipeline="distillation", params=params, env=env)
    # Kedro merges --params into conf/base and into the env before merging those two, so a
    # student added by --params may come first.
    assert sorted(registry_students.names()) == sorted(expected)
    assert sorted(ran) == [f"{name}.resolve_student" for name in expected]
    assert branches.options == expected  # each branch got its own entry


def test_two_sessions_in_one_process_run_their_own_students(
    tmp_path,
    branches,  # noqa: F811
    monkeypatch,
):
    project = _project(tmp_path, a={})
    monkeypatch.chdir(project)
    monkeypatch.setattr(sys, "path", sys.path[:])  # bootstrap_project adds to both
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    bootstrap_project(project)  # once, as in a notebook: Kedro's pipelines stay cached
    ran = []
    for runtime_params in (None, {"students": {"a": None, "b": {}}}):
        recorder = NodeRecorder()
        with settings.SESSION_CLASS.create(
            project_path=project, runtime_params=runtime_params
        ) as session:
            session._hook_manager.register(recorder)
            session.run(pipeline_names=["distillation"], runner=SequentialRunner())
        ran.append(recorder.ran)
    assert ran == [["a.resolve_student"], ["b.resolve_student"]]


class PipelinesSeen:
    """A hook: the distillation nodes registered when the context is created."""

    def __init__(self) -> None:
        self.seen: list[str] | None = None

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self.seen = node_names(pipelines["distillation"])


def test_load_context_publishes_the_students_before_the_context_is_built(
    tmp_path,
    branches,  # noqa: F811
    monkeypatch,
):
    # kedro ipython and notebooks call load_context() and read `pipelines`, with no run.
    project = _project(tmp_path, a={})
    monkeypatch.chdir(project)
    monkeypatch.setattr(sys, "path", sys.path[:])
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    bootstrap_project(project)
    hook = PipelinesSeen()
    # --params: which conf/ alone (the registry's fallback) would not show.
    with settings.SESSION_CLASS.create(
        project_path=project, runtime_params={"students": {"d": {}}}
    ) as session:
        session._hook_manager.register(hook)
        context = session.load_context()
        assert hook.seen == ["a.resolve_student", "d.resolve_student"]
        assert context.params["students"] == students(a={}, d={})  # validated against them


@pytest.mark.parametrize("where", ["conf", "params"])
def test_an_invalid_student_name_stops_the_run_before_any_node(
    tmp_path,
    branches,  # noqa: F811
    where,
):
    project = _project(tmp_path, **({"mini-lm": {}} if where == "conf" else {"a": {}}))
    recorder = NodeRecorder()
    with pytest.raises(
        ValueError, match=r"students: 'mini-lm' is not a Python identifier .* e\.g\. mini_lm"
    ):
        run_in_process(
            project, params="students.mini-lm={}" if where == "params" else "", hooks=[recorder]
        )
    assert recorder.ran == []
    assert branches.built == []  # no pipeline was built for it either
