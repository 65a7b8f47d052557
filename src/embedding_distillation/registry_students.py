"""The students of the run, for the pipeline registry: the channel from the session Kedro lacks.

Kedro calls ``register_pipelines()`` without arguments, on the first access of
``kedro.framework.project.pipelines``, and caches what it returns (Kedro issue #3093): the
registry cannot see the run's parameters, which only the session knows (``--env``,
``--params``). So the project's session
(:class:`~embedding_distillation.session.ProjectSession`) publishes the students its parameters
name with :func:`use` before Kedro loads the registry, and the registry reads them with
:func:`names`. Without such a session (kedro-viz builds its own, ``kedro registry``), :func:`names`
reads ``conf/`` as a run without ``--params`` would, in the environment ``KEDRO_ENV`` names.
"""

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kedro.config import MissingConfigException
from kedro.framework import project
from kedro.utils import find_kedro_project

from embedding_distillation.students import student_names

logger = logging.getLogger(__name__)

# The students of the last session's parameters (None: no session published any). The one
# channel from the session to register_pipelines(), which Kedro calls without arguments.
_published: tuple[str, ...] | None = None


def use(parameters: Mapping[str, Any]) -> tuple[str, ...]:
    """Publish the students of ``parameters`` to the pipeline registry.

    When they differ from the published ones, Kedro's cached pipelines are dropped
    (``pipelines.configure``, as ``configure_project`` does), so the next access builds them for
    these students: a second session in the same process never runs the first one's pipeline.

    Args:
        parameters: The run's parameters (all groups, environment and ``--params`` included).

    Returns:
        The students' names, in file order; ``()`` for the single-student pipeline.

    Raises:
        ValueError: For an invalid ``students`` group (see
            :func:`~embedding_distillation.students.student_names`).
    """
    global _published  # noqa: PLW0603 (the channel above)
    names = student_names(parameters)
    if names != _published:
        _published = names
        if project.PACKAGE_NAME:  # else no registry was configured, so none is cached
            project.pipelines.configure(f"{project.PACKAGE_NAME}.pipeline_registry")
    return names


def names() -> tuple[str, ...]:
    """The students the pipeline registry builds branches for.

    Returns:
        The names published by the session (:func:`use`); without a session, those of
        ``conf/`` of the project around the working directory, in the environment
        ``KEDRO_ENV`` names (the project's default one when it is unset); ``()`` when there
        is no ``conf/``.

    Raises:
        ValueError: For an invalid ``students`` group.
    """
    if _published is not None:
        return _published
    settings = project.settings
    root = find_kedro_project(Path.cwd()) or Path.cwd()
    try:
        parameters = settings.CONFIG_LOADER_CLASS(
            conf_source=str(root / settings.CONF_SOURCE),
            env=os.getenv("KEDRO_ENV"),
            **settings.CONFIG_LOADER_ARGS,
        )["parameters"]
    except MissingConfigException:
        logger.debug("No parameters under %s: the single-student pipeline", root)
        return ()
    return student_names(parameters)
