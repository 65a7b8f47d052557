"""Project pipelines."""

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

from embedding_distillation import registry_students
from embedding_distillation.pipelines import distillation


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines; ``__default__`` runs both in order."""
    pipelines = find_pipelines(raise_errors=True)
    # The one addition to find_pipelines(): a branch per student of the run, whose names
    # find_pipelines() cannot pass to create_pipeline().
    if students := registry_students.names():
        pipelines["distillation"] = distillation.create_pipeline(students=students)
    pipelines["__default__"] = sum(pipelines.values(), Pipeline([]))
    return pipelines
