"""``FolderDataset``: the base of the datasets stored as one folder per version."""

import os
import shutil
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from kedro.io.core import AbstractVersionedDataset, DatasetError, Version

_DI = TypeVar("_DI")
_DO = TypeVar("_DO")


class FolderDataset(AbstractVersionedDataset[_DI, _DO]):
    """A folder per save (``<filepath>/<version>/<name>`` when versioned), written atomically.

    Subclasses write through :meth:`_write_folder`: the content goes to a temporary sibling
    that is renamed into place, so a crash never leaves a half-written folder that looks
    complete.

    Args:
        filepath: Local folder path.
        version: Kedro version (set from ``versioned: true``).
        metadata: Free-form metadata (kedro-viz shows it).
    """

    def __init__(
        self,
        *,
        filepath: str,
        version: Version | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(filepath=PurePosixPath(Path(filepath).as_posix()), version=version)
        self.metadata = metadata

    def _write_folder(self, write: Callable[[Path], None]) -> None:
        """Call ``write(folder)`` on a temporary folder path, then rename it into place."""
        target = Path(self._get_save_path())
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        if target.exists():  # unversioned: replace the previous folder
            shutil.rmtree(target)
        os.replace(tmp, target)

    def _exists(self) -> bool:
        try:
            path = Path(self._get_load_path())
        except DatasetError:
            return False
        return path.is_dir()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "version": self._version}
