"""``MtebResultsDataset``: the result files of one evaluation, in mteb's own layout, versioned."""

from pathlib import Path
from typing import TYPE_CHECKING

from embedding_distillation.datasets.folder_dataset import FolderDataset

if TYPE_CHECKING:
    from mteb import BenchmarkResults, TaskResult
    from mteb.models.model_meta import ModelMeta

MtebRuns = list[tuple["ModelMeta", "TaskResult"]]


class MtebResultsDataset(FolderDataset["MtebRuns", "BenchmarkResults"]):
    """Writes ``(model meta, task result)`` pairs with ``mteb.ResultCache``; reads them back.

    The folder is an mteb results cache (``results/<model>/<revision>/<task>.json`` plus
    ``model_meta.json``), so mteb's own tooling reads it::

        mteb.ResultCache(cache_path=folder).load_results(include_remote=False)

    With ``versioned: true`` each save is a new folder ``<filepath>/<version>/<name>``; a save
    writes a temporary folder and renames it into place.

    Example catalog entry::

        mteb_results:
          type: embedding_distillation.datasets.MtebResultsDataset
          filepath: data/08_reporting/mteb_results
          versioned: true

    Args:
        filepath: Local folder path.
        version: Kedro version (set from ``versioned: true``).
        metadata: Free-form metadata (kedro-viz shows it).
    """

    def load(self) -> "BenchmarkResults":
        """Every result in the folder (latest version unless pinned), or a failure record."""
        import mteb

        failure = self._load_failure()
        if failure is not None:
            return failure  # type: ignore[return-value]

        cache = mteb.ResultCache(cache_path=Path(self._get_load_path()))
        return cache.load_results(include_remote=False)

    def save(self, data: MtebRuns) -> None:
        """Write each task result and its model's meta with ``mteb.ResultCache.save_to_cache``."""
        import mteb

        if self._save_failure(data):
            return

        def write(folder: Path) -> None:
            cache = mteb.ResultCache(cache_path=folder)  # creates the folder, also for no results
            for meta, task_result in data:
                cache.save_to_cache(task_result, meta)

        self._write_folder(write)
