"""The notebooks in notebooks/ run top to bottom on the tiny project; a cell error fails the test."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import ROOT

NOTEBOOKS = ROOT / "notebooks"
INSPECT = "inspect_teacher_embeddings.ipynb"
RUN = "run_distillation.ipynb"


def _outputs(notebook: nbformat.NotebookNode, mime: str) -> list[str]:
    """Every output of the executed notebook with that MIME type."""
    return [
        output["data"][mime]
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if mime in output.get("data", {})
    ]


def _execute(name: str, project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Run the notebook with notebooks/ of ``project`` as working directory, like a user."""
    monkeypatch.setenv("KEDRO_DISABLE_TELEMETRY", "1")  # the kernel inherits the environment
    workdir = project / "notebooks"
    workdir.mkdir(exist_ok=True)
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    )
    try:
        client.execute()  # raises CellExecutionError, naming the cell, on the first error
    finally:
        executed = tmp_path / name
        nbformat.write(notebook, executed)
        print(f"executed notebook: {executed}")
    return notebook


@pytest.mark.parametrize("name", [INSPECT, RUN])
def test_notebooks_are_stored_without_outputs(name):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and code[0].source == "%load_ext kedro.ipython"
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)


@pytest.mark.slow
def test_inspect_notebook_plots_and_compares_neighbours(tiny_project_copy, monkeypatch, tmp_path):
    notebook = _execute(INSPECT, tiny_project_copy, monkeypatch, tmp_path)
    assert len(_outputs(notebook, "image/png")) == 1  # the 2-D projection
    tables = _outputs(notebook, "text/html")
    assert any("student neighbour" in table for table in tables)
    printed = "".join(
        output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", [])
    )
    assert "30 texts" in printed  # teacher_embeddings.max_samples of the tiny project
    assert "of the teacher's 5 nearest neighbours" in printed


@pytest.mark.slow
def test_run_notebook_distils_with_overrides_and_shows_the_report(
    tiny_project_copy, monkeypatch, tmp_path
):
    reports = tiny_project_copy / "data" / "08_reporting" / "distillation_report.md"
    before = set(reports.iterdir())
    notebook = _execute(RUN, tiny_project_copy, monkeypatch, tmp_path)
    assert len(set(reports.iterdir()) - before) == 1  # one new report version
    shown = _outputs(notebook, "text/markdown")
    assert len(shown) == 1 and shown[0].startswith("# Distillation report")
