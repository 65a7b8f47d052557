"""Project commands added to ``kedro``: ``kedro catalog list``."""

from pathlib import Path
from typing import Any

import click
from kedro.framework.startup import bootstrap_project
from kedro.io.core import AbstractVersionedDataset, VersionNotFoundError


@click.group(name="embedding-distillation")
def cli() -> None:
    """Commands of the embedding-distillation project."""


@cli.group()
def catalog() -> None:
    """Commands for working with the catalog."""


@catalog.command(name="list")
@click.option("--env", "-e", default=None, help="Kedro configuration environment.")
@click.option("--pipeline", "-p", "pipelines", multiple=True, help="Only these pipelines.")
def list_datasets(env: str | None, pipelines: tuple[str, ...]) -> None:
    """List each pipeline's datasets with their type and, if versioned, their versions."""
    from kedro.framework.project import pipelines as registered
    from kedro.framework.project import settings

    project_path = Path.cwd()
    bootstrap_project(project_path)
    # The project's session: it tells the registry the students of this environment.
    with settings.SESSION_CLASS.create(project_path=project_path, env=env) as session:
        data_catalog = session.load_context().catalog  # type: ignore[attr-defined]
        for name in pipelines or sorted(registered):
            click.echo(f"{name}:")
            for dataset_name in sorted(registered[name].datasets()):
                if dataset_name.startswith("params:") or dataset_name == "parameters":
                    continue
                click.echo(f"  {dataset_name}: {_describe(data_catalog, dataset_name)}")


def _describe(data_catalog: Any, name: str) -> str:
    if name not in data_catalog:
        return "MemoryDataset (not in catalog)"
    dataset = data_catalog[name]
    text = type(dataset).__name__
    if isinstance(dataset, AbstractVersionedDataset):
        try:
            versions = dataset.list_versions(full_path=False)
        except VersionNotFoundError:
            versions = []
        text += f", versions: {versions[:5]}{' ...' if len(versions) > 5 else ''}"
    return text
