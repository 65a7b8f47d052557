"""``PinSavedVersionsHook``: a run loads the versions it saved itself, not the newest on disk.

Kedro loads the newest version of a versioned dataset, so when two ``kedro run`` of one project
overlap, a node that loads a dataset saved earlier in its own run (the student model, for export
and evaluation) can get the other run's. This hook pins such loads to the run's own version.
"""

import logging
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.io import AbstractVersionedDataset, Version

logger = logging.getLogger(__name__)


class PinSavedVersionsHook:
    """Once a versioned dataset is saved, every later load of it in the run reads that version.

    A dataset whose save takes a folder a node wrote elsewhere says which version that is with a
    ``saved_version(data)`` method (``EmbeddingShardsDataset``: under ``torchrun``, rank 0's).
    Under ``ParallelRunner`` each node runs on a copy of the catalog, which this does not reach.
    """

    def __init__(self) -> None:
        self._catalog: Any = None

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        """Keep the run's catalog (``after_dataset_saved`` is not given it)."""
        self._catalog = catalog

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node: Any) -> None:
        """Pin the load version of ``dataset_name`` to the version this save wrote."""
        dataset = self._catalog.get(dataset_name) if self._catalog is not None else None
        if not isinstance(dataset, AbstractVersionedDataset):
            return
        save_version = dataset.resolve_save_version()
        if save_version is None:  # not versioned
            return
        saved_version = getattr(dataset, "saved_version", None)
        version = saved_version(data) if saved_version is not None else save_version
        # Kedro has no public setter for a dataset's load version; replacing the catalog entry
        # by `catalog.get(name, version=...)` instead would drop its validator and log a warning.
        dataset._version = Version(load=version, save=save_version)
        logger.debug("%s: later loads in this run read version %s", dataset_name, version)
