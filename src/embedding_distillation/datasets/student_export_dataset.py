"""``StudentExportDataset``: the exports of a trained student (ONNX, OpenVINO), versioned."""

import shutil
from pathlib import Path

from kedro.io.core import DatasetError

from embedding_distillation.datasets.folder_dataset import FolderDataset
from embedding_distillation.export.formats import StudentExport


class StudentExportDataset(FolderDataset[StudentExport, StudentExport]):
    """Stores the export folder the ``export_student_model`` node wrote in a scratch location.

    Saving moves that folder into place (``<filepath>/<version>/<name>``); loading lists the
    formats found there. Run an export without torch through
    :func:`embedding_distillation.export.load_encoder`.

    Example catalog entry::

        student_exports:
          type: embedding_distillation.datasets.StudentExportDataset
          filepath: data/06_models/student_exports
          versioned: true

    Args:
        filepath: Local folder path.
        version: Kedro version (set from ``versioned: true``).
        metadata: Free-form metadata (kedro-viz shows it).
    """

    def load(self) -> StudentExport:
        """The export folder of the latest version (or the pinned one), or a failure record."""
        failure = self._load_failure()
        if failure is not None:
            return failure  # type: ignore[return-value]
        return StudentExport.read(Path(self._get_load_path()))

    def save(self, data: StudentExport) -> None:
        """Move the node's export folder into the save version's folder (or save a failure)."""
        if self._save_failure(data):
            return
        if not isinstance(data, StudentExport):
            raise DatasetError(
                f"StudentExportDataset saves a StudentExport, got {type(data).__name__}."
            )

        def write(folder: Path) -> None:
            if data.folder.exists():
                shutil.move(str(data.folder), str(folder))
            else:  # nothing was exported (no formats)
                folder.mkdir()

        self._write_folder(write)
