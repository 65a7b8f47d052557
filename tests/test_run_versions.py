"""Two overlapping ``kedro run``: each run's nodes load the versions their own run saved."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kedro.io import DataCatalog, MemoryDataset, Version
from kedro_datasets.json import JSONDataset

from embedding_distillation.datasets import EmbeddingShardsDataset
from embedding_distillation.encoding.shards import ShardStore
from embedding_distillation.run_versions import PinSavedVersionsHook
from tests.conftest import kedro_env, run_kedro

# A project of three nodes over two versioned datasets: `early` is saved before the other run
# saves its own, `late` after. `read` records which run's versions the run loaded.
PIPELINE = """
import time
from pathlib import Path

from kedro.pipeline import Node, Pipeline


def save_early(run):
    return {"run": run}, True


def save_late(run, wait_for, early_saved):
    deadline = time.monotonic() + 120
    while wait_for and not Path(wait_for).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(wait_for)
        time.sleep(0.05)
    return {"run": run}


def read(early, late):
    return {"early": early["run"], "late": late["run"]}


def register_pipelines():
    return {
        "__default__": Pipeline(
            [
                Node(save_early, "params:run", ["early", "early_saved"], name="save_early"),
                Node(
                    save_late,
                    ["params:run", "params:wait_for", "early_saved"],
                    "late",
                    name="save_late",
                ),
                Node(read, ["early", "late"], "seen", name="read"),
            ]
        )
    }
"""

CATALOG = """
early:
  type: json.JSONDataset
  filepath: data/early.json
  versioned: true
late:
  type: json.JSONDataset
  filepath: data/late.json
  versioned: true
seen:
  type: json.JSONDataset
  filepath: data/seen_${runtime_params:run}.json
"""


def _race_project(path: Path, hooks: str) -> Path:
    """A Kedro project whose settings register ``hooks`` (Python source of the HOOKS tuple)."""
    package = path / "src" / "race_project"
    package.mkdir(parents=True)
    (path / "pyproject.toml").write_text(
        '[tool.kedro]\npackage_name = "race_project"\nproject_name = "race"\n'
        'kedro_init_version = "1.7.0"\nsource_dir = "src"\n'
    )
    (package / "__init__.py").write_text("")
    (package / "pipeline_registry.py").write_text(PIPELINE)
    (package / "settings.py").write_text(
        f"from embedding_distillation.run_versions import PinSavedVersionsHook\n\nHOOKS = {hooks}\n"
    )
    (path / "conf" / "base").mkdir(parents=True)
    (path / "conf" / "local").mkdir()
    (path / "conf" / "base" / "catalog.yml").write_text(CATALOG)
    (path / "conf" / "base" / "parameters.yml").write_text('run: A\nwait_for: ""\n')
    return path


def _versions(project: Path, name: str) -> dict[str, str]:
    """``{version: run}`` of the versioned dataset ``name``, oldest first."""
    files = sorted((project / "data" / f"{name}.json").glob(f"*/{name}.json"))
    return {file.parent.name: json.loads(file.read_text())["run"] for file in files}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("hooks", "seen_by_a"),
    [
        ("(PinSavedVersionsHook(),)", {"early": "A", "late": "A"}),
        # Kedro's default, for contrast: the race is real, and `late` is the load it gets wrong.
        ("()", {"early": "A", "late": "B"}),
    ],
)
def test_a_run_loads_its_own_versions_while_another_run_saves_newer_ones(
    tmp_path, hooks, seen_by_a
):
    project = _race_project(tmp_path, hooks)
    go, log_a = project / "go", tmp_path / "run_a.log"
    with log_a.open("w") as log:
        run_a = subprocess.Popen(
            [sys.executable, "-m", "kedro", "run", "--params", f"run=A,wait_for={go}"],
            cwd=project,
            env=kedro_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        # Run A saved `early` and waits before saving `late`.
        while not list(project.glob("data/early.json/*/early.json")):
            assert run_a.poll() is None, log_a.read_text()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.05)

        run_b = run_kedro(project, "run", "--params", "run=B", timeout=120)
        assert run_b.returncode == 0, run_b.stdout[-3000:] + run_b.stderr[-3000:]
        go.touch()
        run_a.wait(timeout=120)
    finally:
        if run_a.poll() is None:
            run_a.kill()
            run_a.wait()
    assert run_a.returncode == 0, log_a.read_text()[-3000:]

    for name in ("early", "late"):  # run B's versions are the newest of both datasets
        assert list(_versions(project, name).values()) == ["A", "B"]
    assert json.loads((project / "data" / "seen_A.json").read_text()) == seen_by_a
    assert json.loads((project / "data" / "seen_B.json").read_text()) == {
        "early": "B",
        "late": "B",
    }


def _saved(catalog: DataCatalog, name: str, data: object) -> None:
    """Save ``data`` as a node would, with the hook around it."""
    hook = PinSavedVersionsHook()
    hook.before_pipeline_run(run_params={}, pipeline=None, catalog=catalog)
    catalog.save(name, data)
    hook.after_dataset_saved(dataset_name=name, data=data, node=None)


def test_a_load_after_a_save_reads_the_saved_version_not_a_newer_one(tmp_path):
    path = str(tmp_path / "metrics.json")
    catalog = DataCatalog(
        {"metrics": JSONDataset(filepath=path, version=Version(None, "2026-01-01T00.00.00.000Z"))}
    )
    _saved(catalog, "metrics", {"run": "this"})
    JSONDataset(filepath=path, version=Version(None, "2026-01-02T00.00.00.000Z")).save(
        {"run": "other"}
    )
    catalog.release("metrics")  # Kedro's own cache of the load version is gone, the pin stays

    assert catalog.load("metrics") == {"run": "this"}


def test_unversioned_and_memory_datasets_are_left_alone(tmp_path):
    catalog = DataCatalog(
        {"plain": JSONDataset(filepath=str(tmp_path / "plain.json")), "free": MemoryDataset()},
        save_version="v1",
    )
    _saved(catalog, "plain", {"a": 1})
    _saved(catalog, "free", {"b": 2})

    assert catalog.load("plain") == {"a": 1}
    assert catalog.load("free") == {"b": 2}


def test_teacher_embeddings_pin_to_the_folder_the_node_wrote(tmp_path):
    """Under torchrun a rank > 0 saves the folder rank 0 wrote, in rank 0's version."""
    root = tmp_path / "teacher_embeddings"
    dataset = EmbeddingShardsDataset(
        filepath=str(root), version=Version(None, "2026-01-02T00.00.00.000Z")
    )
    folder = ShardStore(root / "2026-01-01T00.00.00.000Z" / "teacher_embeddings")
    hook = PinSavedVersionsHook()
    hook.before_pipeline_run(
        run_params={}, pipeline=None, catalog=DataCatalog({"teacher_embeddings": dataset})
    )
    hook.after_dataset_saved(dataset_name="teacher_embeddings", data=folder, node=None)

    assert dataset.resolve_load_version() == "2026-01-01T00.00.00.000Z"
    assert dataset.resolve_save_version() == "2026-01-02T00.00.00.000Z"
