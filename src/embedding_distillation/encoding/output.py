"""Where an encoding run writes its shards, and how a rerun finds them again after a crash.

Both front doors' outputs live here: a fixed folder for the API (:class:`FolderOutput`) and this
run's version of ``teacher_embeddings`` for Kedro (:class:`VersionedShardOutput`, which continues
the newest unfinished version of the same job). Only one process writes a folder at a time
(:mod:`~embedding_distillation.encoding.lock`): a second run of the same job fails at once,
naming the first.
"""

import logging
import os
from pathlib import Path
from typing import Any, Protocol

from embedding_distillation.encoding.job import EncodingJob
from embedding_distillation.encoding.lock import WriterLock, probe
from embedding_distillation.encoding.shards import ShardFolderError, ShardStore, manifest_state

logger = logging.getLogger(__name__)


class ShardOutput(Protocol):
    """Where a run writes its shards. Its methods run on rank 0 only."""

    def reserve(self, job: EncodingJob) -> None:
        """Fail now, before the teacher loads, when another process writes this job's folder."""

    def open(self, identity: dict[str, Any]) -> Path:
        """Choose and lock the folder for the job ``identity`` (resuming one); return it."""

    def release(self) -> None:
        """Give the folder up (idempotent)."""


class FolderOutput:
    """A fixed folder (the API's ``output_dir``): a rerun continues what it holds.

    Args:
        folder: The shard folder (created if missing).
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self._lock: WriterLock | None = None

    def reserve(self, job: EncodingJob) -> None:
        """Take the folder's lock at once (the folder is known before the teacher loads)."""
        if self._lock is None:
            self._lock = WriterLock.acquire(self.folder)

    def open(self, identity: dict[str, Any]) -> Path:
        """The folder, locked."""
        if self._lock is None:
            self._lock = WriterLock.acquire(self.folder)
        return self.folder

    def release(self) -> None:
        """Release the lock."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None


class VersionedShardOutput:
    """This run's version folder, or an unfinished version of the same job, moved to it.

    Nothing is written until :meth:`open`: the node claims the folder once the teacher is loaded.

    Args:
        root: The versioned dataset's folder (``filepath``).
        target: This run's version folder (``root`` itself when not versioned).
        versioned: Whether ``root`` holds versions.
    """

    def __init__(self, root: Path, target: Path, *, versioned: bool) -> None:
        self.root = root
        self.target = target
        self.versioned = versioned
        self._lock: WriterLock | None = None

    def __repr__(self) -> str:
        return f"VersionedShardOutput(target={str(self.target)!r})"

    def unfinished_versions(self, identity: dict[str, Any] | None = None) -> list[Path]:
        """Unfinished version folders, newest first.

        With ``identity``, only those newer than the newest *complete* version of that same job
        (an older unfinished run of it was superseded). A complete version of another job (the
        demo run between two halves of a long encoding) does not hide an unfinished one.
        """
        if not self.versioned:
            return []
        found = []
        for path in sorted(self.root.glob(f"*/{self.root.name}"), reverse=True):
            state = manifest_state(path)
            if state is True and identity is not None:
                manifest = _manifest(path)
                if manifest is not None and manifest["identity"] == identity:
                    break  # this job finished later: its older unfinished runs are left alone
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
        others = []
        for folder in self.unfinished_versions(identity):
            manifest = _manifest(folder)
            if manifest is None or manifest["identity"] != identity:
                others.append(folder.parent.name)
                continue
            adopted = self._adopt(folder, identity)
            if adopted is not None:
                return adopted
        if others:
            logger.warning(
                "Unfinished run(s) %s were made with other settings, teacher or corpus; starting "
                "a new version instead (run with their settings to resume one, or delete them to "
                "reclaim their space).",
                ", ".join(str(self.root / name) for name in others),
            )
        if self.versioned and self.target.exists():
            raise FileExistsError(
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
