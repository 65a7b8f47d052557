"""``FolderDataset``: the base of the datasets stored as one folder per version."""

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from kedro.io.core import AbstractVersionedDataset, DatasetError, Version

from embedding_distillation.students import is_failure

_DI = TypeVar("_DI")
_DO = TypeVar("_DO")

# Saved in a version folder in place of its content when the student's step failed.
FAILURE_FILE = "student_failure.json"


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

    def _save_failure(self, data: object) -> bool:
        """Save ``data`` when it is a student's failure record (several students); else False.

        The record is written as :data:`FAILURE_FILE` in the version folder, so a later run
        from a node after it (``--from-nodes``) loads it back and passes it on.
        """
        if not is_failure(data):
            return False

        def write(folder: Path) -> None:
            folder.mkdir()
            (folder / FAILURE_FILE).write_text(json.dumps(data, indent=2), encoding="utf-8")

        self._write_folder(write)
        return True

    def _load_failure(self) -> dict[str, Any] | None:
        """The failure record saved in the loaded version, or ``None`` for real content."""
        path = Path(self._get_load_path()) / FAILURE_FILE
        if not path.is_file():
            return None
        record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return record

    def _exists(self) -> bool:
        try:
            path = Path(self._get_load_path())
        except DatasetError:
            return False
        return path.is_dir()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "version": self._version}
