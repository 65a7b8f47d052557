"""``EmbeddingsCheckpointDataset``: the folder the ``encode_corpus`` node writes, shard by shard.

Encoding an hour-long corpus must survive a crash, so the node writes each shard as it
completes instead of handing everything to a dataset at the end. Loading this dataset gives the
node where to write (:class:`VersionedShardOutput`): this run's version folder of
``teacher_embeddings`` (same ``filepath``), or, when the newest unfinished version was made by
the same job (same teacher weights, settings and corpus), that version, moved to this run's
version so the run continues after its last complete shard. It also gives the node the Hub
pusher (``credentials``) for pushes while encoding and for continuing after shards already
pushed. Nothing is written on load: the node claims the folder once the teacher is loaded.

Only one process writes a folder at a time (:mod:`~embedding_distillation.encoding.lock`): a
second run of the same job fails at once, naming the first.
"""

import logging
import os
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io.core import AbstractVersionedDataset, DatasetError, Version

from embedding_distillation.datasets.embedding_shards_dataset import manifest_state
from embedding_distillation.encoding.job import EncodingJob
from embedding_distillation.encoding.lock import FolderInUseError, WriterLock, probe
from embedding_distillation.encoding.shards import ShardFolderError, ShardStore
from embedding_distillation.hub import EmbeddingsPusher

logger = logging.getLogger(__name__)


class VersionedShardOutput:
    """Where this run of the encode node writes: a new version, or an adopted unfinished one.

    Args:
        root: The dataset's folder (``filepath``).
        target: This run's version folder (``root`` itself when not versioned).
        versioned: Whether ``root`` holds versions.
        token: Hub token for pushes; never shown.
        endpoint: Hub URL for pushes.
    """

    def __init__(
        self,
        root: Path,
        target: Path,
        *,
        versioned: bool,
        token: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        self.root = root
        self.target = target
        self.versioned = versioned
        self._token = token
        self._endpoint = endpoint
        self._lock: WriterLock | None = None

    def __repr__(self) -> str:
        return f"VersionedShardOutput(target={str(self.target)!r})"

    def pusher(self, job: EncodingJob) -> EmbeddingsPusher | None:
        """The Hub pusher for ``job`` (``None`` unless ``push_every`` is set)."""
        return EmbeddingsPusher.from_config(
            job.config, token=self._token, source_name=job.source_name, endpoint=self._endpoint
        )

    def unfinished_versions(self) -> list[Path]:
        """Unfinished version folders newer than the newest complete one, newest first."""
        if not self.versioned:
            return []
        found = []
        for path in sorted(self.root.glob(f"*/{self.root.name}"), reverse=True):
            state = manifest_state(path)
            if state is True:
                break  # a newer complete version: older unfinished runs are left alone
            if state is False:
                found.append(path)
        return found

    def reserve(self, job: EncodingJob) -> None:
        """Fail before the teacher loads when a live process writes this job's version."""
        for folder in [self.target] if not self.versioned else self.unfinished_versions():
            busy = probe(folder)
            if busy is not None and _same_job_settings(folder, job):
                raise busy

    def open(self, identity: dict[str, Any]) -> Path:
        """Lock and return the folder for ``identity``: an adopted unfinished version, or new."""
        for folder in self.unfinished_versions():
            manifest = _manifest(folder)
            if manifest is None or manifest["identity"] != identity:
                logger.warning(
                    "The unfinished run in %s was made with other settings, teacher or corpus; "
                    "starting a new version instead (delete that folder to reclaim its space).",
                    folder.parent,
                )
                continue
            adopted = self._adopt(folder, identity)
            if adopted is not None:
                return adopted
        if self.versioned and self.target.exists():
            raise DatasetError(
                f"Save path {self.target} already exists; versions are never overwritten."
            )
        self._lock = WriterLock.acquire(self.target)
        return self.target

    def _adopt(self, folder: Path, identity: dict[str, Any]) -> Path | None:
        try:
            lock = WriterLock.acquire(folder, create=False)
        except FileNotFoundError:  # moved away by another run meanwhile
            return None
        manifest = _manifest(folder)
        if manifest is None or manifest["identity"] != identity or manifest["complete"]:
            lock.release()
            return None
        self._lock = lock
        if folder == self.target:
            return folder
        self.target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(folder, self.target)
        lock.moved_to(self.target)
        _remove_if_empty(folder.parent)
        logger.info("Resuming the unfinished run %s as version %s", folder, self.target.parent.name)
        return self.target

    def release(self) -> None:
        """Release the folder's lock."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def _manifest(folder: Path) -> dict[str, Any] | None:
    try:
        return ShardStore(folder).manifest()
    except ShardFolderError:
        return None


def _same_job_settings(folder: Path, job: EncodingJob) -> bool:
    """True when ``folder`` holds ``job`` as far as it is known before the teacher loads."""
    manifest = _manifest(folder)
    if manifest is None:
        return True  # a writer that has not written its manifest yet: assume it is this job
    identity = manifest["identity"]
    recorded = (manifest.get("provenance") or {}).get("teacher_model")
    settings = job.settings_identity()
    return all(identity.get(key) == value for key, value in settings.items()) and recorded in (
        None,
        job.config.teacher_model,
    )


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


class EmbeddingsCheckpointDataset(AbstractVersionedDataset[Any, VersionedShardOutput]):
    """Load-only: where the ``encode_corpus`` node writes ``teacher_embeddings`` shard by shard.

    Example catalog entry (``filepath`` and ``versioned`` as for ``teacher_embeddings``)::

        teacher_embeddings_checkpoint:
          type: embedding_distillation.datasets.EmbeddingsCheckpointDataset
          filepath: data/03_primary/teacher_embeddings
          versioned: true
          credentials: huggingface        # only used when push_every is set

    Args:
        filepath: The ``teacher_embeddings`` folder.
        version: Kedro version (set from ``versioned: true``): this run's save version.
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
            exists_function=lambda path: manifest_state(path) is not None,
        )
        self._token = (credentials or {}).get("token")
        self._hub_endpoint = hub_endpoint
        self.metadata = metadata

    def load(self) -> VersionedShardOutput:
        """Where this run writes (nothing is created or moved until the node claims it)."""
        root = Path(self._filepath)
        if self._version:
            target = Path(self._get_versioned_path(self.resolve_save_version()))  # type: ignore[arg-type]
        else:
            target = root
        return VersionedShardOutput(
            root,
            target,
            versioned=bool(self._version),
            token=self._token,
            endpoint=self._hub_endpoint,
        )

    def save(self, data: Any) -> None:
        """Not supported: the node writes through the loaded output."""
        raise DatasetError(
            "EmbeddingsCheckpointDataset is load-only: encode_corpus writes the shards through "
            "it and returns the folder, which teacher_embeddings saves."
        )

    def _exists(self) -> bool:
        return True  # there is always somewhere to write

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": str(self._filepath),
            "version": self._version,
            "credentials": "***" if self._token else None,
            "hub_endpoint": self._hub_endpoint,
        }


__all__ = ["EmbeddingsCheckpointDataset", "FolderInUseError", "VersionedShardOutput"]
