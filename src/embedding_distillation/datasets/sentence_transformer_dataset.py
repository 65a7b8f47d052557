"""``SentenceTransformerModelDataset``: a sentence-transformers model folder, versioned."""

from typing import Any

from kedro.io.core import DatasetError, Version
from sentence_transformers import SentenceTransformer

from embedding_distillation.datasets.folder_dataset import FolderDataset


class SentenceTransformerModelDataset(FolderDataset[SentenceTransformer, SentenceTransformer]):
    """Saves and loads a ``SentenceTransformer`` as a model folder (safetensors weights).

    With ``versioned: true`` each save is a new folder ``<filepath>/<version>/<name>``.
    A save writes to a temporary folder and renames it into place, so a crash never leaves a
    half-written model that looks complete.

    Example catalog entry::

        student_model:
          type: embedding_distillation.datasets.SentenceTransformerModelDataset
          filepath: data/06_models/student_model
          versioned: true

    Args:
        filepath: Local folder path.
        load_args: Keyword arguments for ``SentenceTransformer(...)`` (e.g. ``device``).
        save_args: Keyword arguments for ``SentenceTransformer.save(...)``.
        version: Kedro version (set from ``versioned: true``).
        metadata: Free-form metadata (kedro-viz shows it).
    """

    DEFAULT_LOAD_ARGS: dict[str, Any] = {"device": "cpu"}
    DEFAULT_SAVE_ARGS: dict[str, Any] = {"safe_serialization": True}

    def __init__(
        self,
        *,
        filepath: str,
        load_args: dict[str, Any] | None = None,
        save_args: dict[str, Any] | None = None,
        version: Version | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(filepath=filepath, version=version, metadata=metadata)
        self._load_args = {**self.DEFAULT_LOAD_ARGS, **(load_args or {})}
        self._save_args = {**self.DEFAULT_SAVE_ARGS, **(save_args or {})}

    def load(self) -> SentenceTransformer:
        """Load the model folder (latest version unless pinned), or its failure record."""
        failure = self._load_failure()
        if failure is not None:
            return failure  # type: ignore[return-value]
        return SentenceTransformer(str(self._get_load_path()), **self._load_args)

    def save(self, data: SentenceTransformer) -> None:
        """Write the model folder atomically (or a failed student's record)."""
        if self._save_failure(data):
            return
        if not isinstance(data, SentenceTransformer):
            raise DatasetError(
                f"SentenceTransformerModelDataset saves a SentenceTransformer, got "
                f"{type(data).__name__}."
            )
        self._write_folder(lambda folder: data.save(str(folder), **self._save_args))

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "load_args": self._load_args}
