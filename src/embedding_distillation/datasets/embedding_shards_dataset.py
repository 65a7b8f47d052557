"""``EmbeddingShardsDataset``: teacher embeddings as a versioned folder of Parquet shards.

Saving an :class:`~embedding_distillation.encoding.engine.EncodingJob` runs it shard by shard
into the save version's folder, so a crash loses at most the shard being encoded. When the
newest version on disk is an unfinished run of the *same* job (same teacher weights, settings
and corpus), the new run adopts it (the folder moves to the new version) and continues after
its last complete shard; an unfinished run of a different job is left alone and a new version
starts. Loading only ever sees complete versions.
"""

import json
import logging
import os
from pathlib import Path, PurePosixPath
from typing import Any

from datasets import Dataset
from kedro.io.core import AbstractVersionedDataset, DatasetError, Version

from embedding_distillation import distributed
from embedding_distillation.encoding.engine import EncodingJob, run_encoding
from embedding_distillation.encoding.shards import MANIFEST_NAME, ShardStore
from embedding_distillation.hub import EmbeddingsPusher

logger = logging.getLogger(__name__)


def _manifest_state(path: str) -> bool | None:
    """True for a complete shard folder, False for an unfinished one, None for neither."""
    try:
        return bool(json.loads((Path(path) / MANIFEST_NAME).read_text()).get("complete"))
    except (OSError, ValueError):
        return None


def _is_complete(path: str) -> bool:
    return _manifest_state(path) is True


class EmbeddingShardsDataset(AbstractVersionedDataset[EncodingJob, Dataset]):
    """Reads and writes teacher embeddings (Parquet shards + manifest).

    Example catalog entry::

        teacher_embeddings:
          type: embedding_distillation.datasets.EmbeddingShardsDataset
          filepath: data/03_primary/teacher_embeddings
          versioned: true
          credentials: huggingface        # only used when push_every is set

    Args:
        filepath: Local folder path.
        version: Kedro version (set from ``versioned: true``).
        credentials: ``{"token": ...}`` for Hub pushes; never shown. ``HF_TOKEN`` is the fallback.
        hub_endpoint: Hub URL for pushes (a private deployment); ``None`` = ``HF_ENDPOINT`` or
            the public Hub.
        metadata: Free-form metadata (kedro-viz shows it).
    """

    def __init__(
        self,
        *,
        filepath: str,
        version: Version | None = None,
        credentials: dict[str, Any] | None = None,
        hub_endpoint: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            filepath=PurePosixPath(Path(filepath).as_posix()),
            version=version,
            exists_function=_is_complete,
        )
        self._token = (credentials or {}).get("token")
        self._hub_endpoint = hub_endpoint
        self.metadata = metadata

    def load(self) -> Dataset:
        """The embeddings of the latest complete version (or the pinned one), memory-mapped."""
        return ShardStore(self._get_load_path()).load()

    def save(self, data: EncodingJob) -> None:
        """Run the encoding job into the save version's folder (resuming when possible)."""
        if not isinstance(data, EncodingJob):
            raise DatasetError(
                "EmbeddingShardsDataset saves an EncodingJob (the output of the encode node), "
                f"got {type(data).__name__}."
            )
        # Under torchrun every process encodes into the folder rank 0 picks (its own session
        # version would differ by milliseconds); only rank 0 moves or creates folders.
        distributed.init(data.device)
        target = distributed.on_main(lambda: self._prepare_target(data))
        pusher = EmbeddingsPusher.from_config(
            data.config,
            token=self._token,
            source_name=data.source_name,
            endpoint=self._hub_endpoint,
        )
        store = ShardStore(target, split=data.config.split)
        if pusher is not None:  # continue after the shards already pushed (e.g. another machine)
            distributed.on_main(lambda: pusher.restore(store, data.identity()))
        run_encoding(data, store, on_shard=pusher)

    def _prepare_target(self, job: EncodingJob) -> Path:
        if not self._version:
            return Path(self._filepath)
        target = Path(self._get_versioned_path(self.resolve_save_version()))  # type: ignore[arg-type]
        if target.exists():
            raise DatasetError(
                f"Save path {target} already exists; versions are never overwritten."
            )
        partial = self._latest_unfinished_version()
        if partial is None:
            return target
        manifest = ShardStore(partial).manifest()
        if manifest is not None and manifest["identity"] == job.identity():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(partial, target)
            _remove_if_empty(partial.parent)
            logger.info("Resuming the unfinished run %s as version %s", partial, target.parent.name)
        else:
            logger.warning(
                "The unfinished run in %s was made with other settings, teacher or corpus; "
                "starting a new version instead (delete that folder to reclaim its space).",
                partial.parent,
            )
        return target

    def _latest_unfinished_version(self) -> Path | None:
        pattern = str(self._get_versioned_path("*"))
        for path in sorted(self._glob_function(pattern), reverse=True):
            state = _manifest_state(path)
            if state is True:
                return None  # a newer complete version: nothing to resume
            if state is False:
                return Path(path)
        return None

    def _exists(self) -> bool:
        try:
            return _is_complete(str(self._get_load_path()))
        except DatasetError:
            return False

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "version": self._version}


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass
