"""``EmbeddingShardsDataset``: teacher embeddings as a versioned folder of Parquet shards.

The ``encode_corpus`` node writes a version shard by shard, through
:class:`~embedding_distillation.datasets.EmbeddingsWriterDataset` (the same folder), so a
crash loses at most the shard being encoded; saving the node's output here checks that the
version is complete and is one of this dataset's. Loading only ever sees complete versions,
checks every shard against the manifest's sizes and sha256, and returns the rows with their
provenance (:class:`~embedding_distillation.encoding.provenance.TeacherEmbeddings`).
"""

import logging
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from kedro.io.core import AbstractVersionedDataset, DatasetError, Version
from kedro_datasets._typing import TablePreview

from embedding_distillation.encoding.config import ROW_ID_COLUMN
from embedding_distillation.encoding.provenance import TeacherEmbeddings
from embedding_distillation.encoding.shards import ShardFolderError, ShardStore, manifest_state

logger = logging.getLogger(__name__)

PREVIEW_DIMS = 3  # leading dimensions shown per embedding column
PREVIEW_TEXT_CHARS = 80


def _is_complete(path: str) -> bool:
    return manifest_state(path) is True


class EmbeddingShardsDataset(AbstractVersionedDataset[ShardStore, TeacherEmbeddings]):
    """Reads teacher embeddings (Parquet shards + manifest); saving checks what the node wrote.

    Example catalog entry::

        teacher_embeddings:
          type: embedding_distillation.datasets.EmbeddingShardsDataset
          filepath: data/03_primary/teacher_embeddings
          versioned: true

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
        super().__init__(
            filepath=PurePosixPath(Path(filepath).as_posix()),
            version=version,
            exists_function=_is_complete,
        )
        self.metadata = metadata

    def load(self) -> TeacherEmbeddings:
        """The latest complete version (or the pinned one), checked, with its provenance."""
        folder = Path(self._get_load_path())
        version = self.resolve_load_version()
        fix = (
            f"A rerun encodes a new version rather than repairing a complete one: delete "
            f"{folder.parent if version else folder} and run `kedro run --pipeline "
            "teacher_embeddings`, or load another version with `--load-versions "
            "teacher_embeddings:<version>` (`kedro catalog list` shows them)."
        )
        try:
            return TeacherEmbeddings.open(ShardStore(folder), version, fix=fix)
        except ShardFolderError as e:  # a message of its own, not "Failed while loading"
            raise DatasetError(str(e)) from e

    def save(self, data: ShardStore) -> None:
        """Check that ``data`` is a complete folder of this dataset (the node wrote it)."""
        if not isinstance(data, ShardStore):
            raise DatasetError(
                "EmbeddingShardsDataset saves the shard folder that the encode_corpus node "
                f"wrote (a ShardStore), got {type(data).__name__}."
            )
        root = Path(self._filepath).resolve()
        folder = data.folder.resolve()
        ours = (
            folder.parent.parent == root and folder.name == root.name
            if self._version
            else (folder == root)
        )
        if not ours:
            raise DatasetError(
                f"The encode_corpus node wrote {data.folder}, which is not "
                f"{'a version of ' if self._version else ''}{self._filepath}. The "
                "teacher_embeddings_writer entry of the catalog must have the filepath "
                "(and the versioned setting) of teacher_embeddings."
            )
        try:
            manifest = data.check_complete()
        except ShardFolderError as e:
            raise DatasetError(str(e)) from e
        logger.info("teacher_embeddings: %d rows in %s", manifest["num_rows"], data.folder)

    def saved_version(self, data: ShardStore) -> str:
        """The version that saving ``data`` stored: its folder's (rank 0's under ``torchrun``).

        :class:`~embedding_distillation.run_versions.PinSavedVersionsHook` pins the run's
        later loads to it.
        """
        return data.folder.parent.name

    def preview(self, nrows: int = 5) -> TablePreview:
        """The first rows: row id, text, and per embedding column its norm and first values.

        kedro-viz shows it as a table.
        """
        store = ShardStore(Path(self._get_load_path()))
        manifest = store.check_complete()
        text_column = manifest["identity"]["text_column"]
        columns = list(manifest["identity"]["columns"])
        table = next(pq.ParquetFile(store.files()[0]).iter_batches(batch_size=nrows))
        names = [ROW_ID_COLUMN, text_column]
        values: list[list[Any]] = [
            table.column(ROW_ID_COLUMN).to_pylist(),
            [text[:PREVIEW_TEXT_CHARS] for text in table.column(text_column).to_pylist()],
        ]
        for column in columns:
            array = table.column(column)
            matrix = np.asarray(array.values.to_numpy(zero_copy_only=False), dtype=np.float32)
            matrix = matrix.reshape(len(array), -1)
            names.append(f"{column} norm")
            values.append([round(float(n), 4) for n in np.linalg.norm(matrix, axis=1)])
            for dim in range(min(PREVIEW_DIMS, matrix.shape[1])):
                names.append(f"{column}[{dim}]")
                values.append([round(float(v), 4) for v in matrix[:, dim]])
        rows = [list(row) for row in zip(*values, strict=True)]
        return TablePreview({"index": list(range(len(rows))), "columns": names, "data": rows})

    def _exists(self) -> bool:
        try:
            return _is_complete(str(self._get_load_path()))
        except DatasetError:
            return False

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "version": self._version}
