"""``EmbeddingsWriterDataset``: where the ``encode_corpus`` node writes, shard by shard.

Encoding an hour-long corpus must survive a crash, so the node writes each shard as it
completes instead of handing everything to a dataset at the end. This dataset only resolves the
run's save version; the folder policy (adopting an unfinished version of the same job, one
writer at a time) is :class:`~embedding_distillation.encoding.output.VersionedShardOutput`'s.
"""

from pathlib import Path
from typing import Any

from kedro.io.core import DatasetError

from embedding_distillation.datasets.folder_dataset import FolderDataset
from embedding_distillation.encoding.output import VersionedShardOutput


class EmbeddingsWriterDataset(FolderDataset[Any, VersionedShardOutput]):
    """Load-only: where the ``encode_corpus`` node writes ``teacher_embeddings`` shard by shard.

    Example catalog entry (``filepath`` and ``versioned`` as for ``teacher_embeddings``)::

        teacher_embeddings_writer:
          type: embedding_distillation.datasets.EmbeddingsWriterDataset
          filepath: data/03_primary/teacher_embeddings
          versioned: true

    Args:
        filepath: The ``teacher_embeddings`` folder.
        version: Kedro version (set from ``versioned: true``): this run's save version.
        metadata: Free-form metadata (kedro-viz shows it).
    """

    def load(self) -> VersionedShardOutput:
        """Where this run writes (nothing is created or moved until the node claims it)."""
        root = Path(self._filepath)
        if not self._version:
            return VersionedShardOutput(root, root, versioned=False)
        target = Path(self._get_versioned_path(self.resolve_save_version()))  # type: ignore[arg-type]
        return VersionedShardOutput(root, target, versioned=True)

    def save(self, data: Any) -> None:
        """Not supported: the node writes through the loaded output."""
        raise DatasetError(
            "EmbeddingsWriterDataset is load-only: encode_corpus writes the shards through "
            "it and returns the folder, which teacher_embeddings saves."
        )

    def _exists(self) -> bool:
        return True  # there is always somewhere to write
