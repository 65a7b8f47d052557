"""The project's Kedro session (``SESSION_CLASS`` in ``settings.py``).

``kedro run``, ``kedro ipython``, notebooks and the tests' in-process runs build their session
from ``settings.SESSION_CLASS``; this one adds two things to Kedro's:

- It publishes the students the run's parameters name (``--env`` and ``--params`` included)
  to the pipeline registry (:mod:`embedding_distillation.registry_students`) before Kedro loads
  the registry, which cannot read parameters itself.
- It hands a run whose ``dry_run`` parameter is true to
  :class:`~embedding_distillation.dry_run.DryRunner` instead of the runner asked for.
"""

from typing import Any

from kedro.framework.context import KedroContext
from kedro.framework.session import KedroSession

from embedding_distillation import registry_students
from embedding_distillation.dry_run import DryRunner


class ProjectSession(KedroSession):
    """A ``KedroSession`` that tells the pipeline registry the run's students."""

    def load_context(self) -> KedroContext:
        """Publish the run's students, then build the context as Kedro does.

        Before Kedro's context: its hooks and its parameter validation load the registry.
        """
        registry_students.use(self._parameters())
        return super().load_context()

    def run(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Run as Kedro does, with :class:`DryRunner` as the runner when ``dry_run`` is true.

        The students are published before Kedro scopes the registry to the requested pipelines
        (publishing new ones resets that scope).
        """
        parameters = self._parameters()
        registry_students.use(parameters)
        if parameters.get("dry_run"):
            kwargs["runner"] = DryRunner()
        return super().run(*args, **kwargs)

    def _parameters(self) -> dict[str, Any]:
        # The config loader alone merges --params in: load_context() would also build a
        # context and call the after_context_created hooks, which super().run() does again.
        return self._get_config_loader()["parameters"]
