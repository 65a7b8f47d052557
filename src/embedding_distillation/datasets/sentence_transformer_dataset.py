"""``SentenceTransformerModelDataset``: a sentence-transformers model folder, versioned."""

import os
import shutil
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io.core import AbstractVersionedDataset, DatasetError, Version
from sentence_transformers import SentenceTransformer


class SentenceTransformerModelDataset(
    AbstractVersionedDataset[SentenceTransformer, SentenceTransformer]
):
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
        super().__init__(filepath=PurePosixPath(Path(filepath).as_posix()), version=version)
        self._load_args = {**self.DEFAULT_LOAD_ARGS, **(load_args or {})}
        self._save_args = {**self.DEFAULT_SAVE_ARGS, **(save_args or {})}
        self.metadata = metadata

    def load(self) -> SentenceTransformer:
        """Load the model folder (latest version unless pinned)."""
        return SentenceTransformer(str(self._get_load_path()), **self._load_args)

    def save(self, data: SentenceTransformer) -> None:
        """Write the model folder atomically."""
        if not isinstance(data, SentenceTransformer):
            raise DatasetError(
                f"SentenceTransformerModelDataset saves a SentenceTransformer, got "
                f"{type(data).__name__}."
            )
        target = Path(self._get_save_path())
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        data.save(str(tmp), **self._save_args)
        if target.exists():  # unversioned: replace the previous model
            shutil.rmtree(target)
        os.replace(tmp, target)

    def _exists(self) -> bool:
        try:
            path = Path(self._get_load_path())
        except DatasetError:
            return False
        return path.is_dir()

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": str(self._filepath),
            "version": self._version,
            "load_args": self._load_args,
        }
