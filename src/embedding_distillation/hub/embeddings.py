"""Push teacher-embedding shards to a dataset repo as they complete, and resume from it.

The repo mirrors the local shard folder: ``data/<split>-00000.parquet``..., ``manifest.json``
and a dataset card (README.md). The pushed manifest is the record of what the repo holds: each
push reads it, uploads only the shards it does not list (or lists with another sha256), and
commits them together with a manifest that lists exactly what the repo holds after the commit,
so the repo never lists a shard it lacks and a repeated push (after a lost answer, or on a
rerun) uploads nothing twice. A run that starts with an empty folder downloads the shards already
pushed (:meth:`EmbeddingsPusher.restore`) and continues after them.

While encoding, :meth:`EmbeddingsPusher.after_listing` pushes each time the listed rows pass
another multiple of ``push_every``; the final push (:meth:`EmbeddingsPusher.push`, made by the
``push_teacher_embeddings`` node or at the end of ``generate_and_push``) sends the rest, in
commits of at most ``push_every`` rows, the last with the complete manifest.
"""

import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

from embedding_distillation import hub_client
from embedding_distillation.encoding.provenance import EmbeddingsProvenance, TeacherEmbeddings
from embedding_distillation.encoding.shards import MANIFEST_NAME, ShardStore
from embedding_distillation.files import sha256_file
from embedding_distillation.hub.cards import EmbeddingsCardInfo, current_command, dataset_card
from embedding_distillation.hub_client import (
    HubError,
    RetryPolicy,
    hub_api,
    redact,
    with_retries,
)

logger = logging.getLogger(__name__)

CARD_NAME = "README.md"


def slug(text: str) -> str:
    """``My Corpus!`` -> ``My-Corpus``: safe in repo and folder names (may be empty)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")


def default_repo_name(source_name: str) -> str:
    """``org/My Corpus.parquet`` -> ``My-Corpus-embeddings`` (the repo part only)."""
    base = source_name.rstrip("/").split("/")[-1].rsplit(".", 1)[0] or "corpus"
    return (slug(base) or "corpus") + "-embeddings"


class PushSettings(Protocol):
    """How to push embeddings, as ``EncodingConfig`` and :class:`EmbeddingsPush` hold it."""

    @property
    def push_every(self) -> int | None:
        """Rows per commit; ``None`` means no push."""

    @property
    def repo_id(self) -> str | None:
        """Dataset repo; ``None`` = ``<token's user>/<corpus name>-embeddings``."""

    @property
    def private(self) -> bool:
        """Create the repo as private."""


@dataclass(frozen=True)
class EmbeddingsPush:
    """A request to push ``embeddings`` every ``push_every`` rows (``None``: do not push).

    Attributes:
        embeddings: The stored embeddings (a complete version).
        push_every: Rows per commit; ``None`` means no push.
        repo_id: Dataset repo; ``None`` = ``<token's user>/<corpus name>-embeddings``.
        private: Create the repo as private (an existing repo keeps its visibility).
    """

    embeddings: TeacherEmbeddings
    push_every: int | None
    repo_id: str | None = None
    private: bool = True


@dataclass
class EmbeddingsPusher:
    """Pushes completed shards to a dataset repo every ``push_every`` rows (and at the end).

    :func:`~embedding_distillation.encoding.run.encode_to_shards` calls :meth:`restore` before
    encoding and :meth:`after_listing` after each shard; :meth:`push` makes the final push.

    Args:
        push_every: Rows between pushes.
        repo_id: Dataset repo; ``None`` = ``<token's user>/<source name>-embeddings``.
        private: Create the repo as private (an existing repo keeps its visibility).
        token: Hub token; ``None`` = ``HF_TOKEN`` or the stored login. Never shown.
        source_name: Name of the corpus (default repo name).
        endpoint: Hub URL; ``None`` = ``HF_ENDPOINT`` or the public Hub.
        retry: Retries of transient faults (``None``: ``hub_client.DEFAULT_RETRY``).
    """

    push_every: int
    repo_id: str | None = None
    private: bool = True
    token: str | None = field(default=None, repr=False)
    source_name: str = "corpus"
    endpoint: str | None = None
    retry: RetryPolicy | None = None
    _pushed_rows: int = field(default=0, repr=False)
    _api: HfApi | None = field(default=None, repr=False)

    @classmethod
    def create(
        cls,
        settings: "PushSettings",
        *,
        source_name: str = "corpus",
        token: str | None = None,
        endpoint: str | None = None,
    ) -> "EmbeddingsPusher | None":
        """A pusher for ``settings``, or ``None`` when their ``push_every`` is ``None``.

        The one factory of both pushes, while encoding (``settings``: the
        :class:`~embedding_distillation.encoding.config.EncodingConfig`) and of stored
        embeddings (an :class:`EmbeddingsPush`); the dataset card is filled from the manifest of
        the folder being pushed, whoever pushes it.

        Args:
            settings: ``push_every``, ``repo_id`` and ``private``.
            source_name: Name of the corpus (the default repo name).
            token: Hub token; ``None`` = ``HF_TOKEN`` or the stored login. Never shown.
            endpoint: Hub URL; ``None`` = ``HF_ENDPOINT`` or the public Hub.
        """
        if settings.push_every is None:
            return None
        return cls(
            push_every=settings.push_every,
            repo_id=settings.repo_id,
            private=settings.private,
            token=token,
            source_name=source_name,
            endpoint=endpoint,
        )

    @property
    def policy(self) -> RetryPolicy:
        """The retry policy in force."""
        return self.retry or hub_client.DEFAULT_RETRY

    @property
    def api(self) -> HfApi:
        """The client for this pusher's endpoint and token."""
        if self._api is None:
            self._api = hub_api(self.token, self.endpoint)
        return self._api

    def after_listing(self, store: ShardStore, all_listed: bool) -> None:
        """Push when the listed rows passed another multiple of ``push_every``.

        Once every shard is listed the final :meth:`push` sends the rest, with the complete
        manifest; nothing is pushed here then.
        """
        manifest = store.manifest()
        assert manifest is not None, "after_listing() needs a shard folder with a manifest"
        if all_listed:
            return
        if manifest["num_rows"] // self.push_every > self._pushed_rows // self.push_every:
            self.push(store)

    def resolve_repo_id(self) -> str:
        """The configured repo, or ``<token's user>/<source name>-embeddings`` (logged)."""
        if self.repo_id is None:
            user = with_retries(
                lambda: self.api.whoami()["name"],
                action="look up the user of the token for",
                repo="the default repo name",
                policy=self.policy,
                next_step="Set repo_id, or check the network and run the same command again.",
                token=self.token,
            )
            self.repo_id = f"{user}/{default_repo_name(self.source_name)}"
            logger.info(
                "No repo_id given: pushing to %s (<token's user>/<corpus name>-embeddings)",
                self.repo_id,
            )
        return self.repo_id

    def remote_manifest(self) -> dict[str, Any] | None:
        """The manifest the repo holds, or ``None`` for a missing repo or one without shards."""
        repo_id = self.resolve_repo_id()

        def fetch() -> dict[str, Any] | None:
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    path = self.api.hf_hub_download(
                        repo_id, MANIFEST_NAME, repo_type="dataset", local_dir=tmp
                    )
                except (RepositoryNotFoundError, EntryNotFoundError):
                    return None
                return json.loads(Path(path).read_text())

        return with_retries(
            fetch,
            action="read the manifest of",
            repo=repo_id,
            policy=self.policy,
            next_step="Check the network and run the same command again.",
            token=self.token,
        )

    def restore(
        self,
        store: ShardStore,
        identity: dict[str, Any],
        details: dict[str, Any] | None = None,
    ) -> int:
        """Download the shards the repo holds beyond the local folder's, and list them locally.

        A run that starts with an empty folder (another machine, a lost disk) thus continues
        after the last pushed shard instead of encoding from row 0. The shard files are put in
        place and listed by the folder's own mechanism (:meth:`ShardStore.list_completed`), as
        if this run had written them. Under ``torchrun`` the callers run it on rank 0 only.

        Args:
            store: The local shard folder (opened for ``identity`` here).
            identity: The job's identity; the repo's manifest must have the same.
            details: The job's provenance, recorded in a new local manifest.

        Returns:
            How many shards were downloaded.

        Raises:
            HubError: The repo holds embeddings of another job, the download failed, or a
                downloaded shard does not match the repo's manifest.
        """
        store.begin(identity, details)
        local = store.manifest()
        assert local is not None
        have = len(local["shards"])
        remote = self.remote_manifest()
        if remote is not None and remote.get("identity") == identity:
            self._pushed_rows = int(remote.get("num_rows", 0))
        if remote is None or len(remote.get("shards", [])) <= have:
            return 0
        repo_id = self.resolve_repo_id()
        self._check_identity(remote, identity, repo_id)
        wanted = remote["shards"][have:]
        logger.info(
            "The dataset repo %s holds %d shard(s) (%d rows) of this job, %d more than %s: "
            "downloading them and continuing after them",
            repo_id,
            len(remote["shards"]),
            remote["num_rows"],
            len(wanted),
            store.folder,
        )

        def download() -> None:
            with tempfile.TemporaryDirectory() as tmp:
                for shard in wanted:
                    path = Path(
                        self.api.hf_hub_download(
                            repo_id, shard["file"], repo_type="dataset", local_dir=tmp
                        )
                    )
                    if "sha256" in shard and sha256_file(path) != shard["sha256"]:
                        raise HubError(
                            f"{shard['file']} downloaded from the dataset repo {repo_id} does "
                            "not match the sha256 in its manifest; the repo is damaged. Delete "
                            "that repo (or set another repo_id) and run the same command again."
                        )
                    _move_into(path, store.folder / shard["file"])

        with_retries(
            download,
            action="download the pushed shards of",
            repo=repo_id,
            policy=self.policy,
            next_step="Check the network and run the same command again.",
            token=self.token,
        )
        store.list_completed()
        return len(wanted)

    def push(self, store: ShardStore) -> None:
        """Upload the shards the repo lacks, in commits of at most ``push_every`` rows.

        Each commit adds its shards with a manifest that lists what the repo holds after it (the
        last one: the local manifest as it is) and the dataset card.

        Raises:
            HubError: The push failed for good (the local shards are kept: rerun to resume), or
                the repo holds another job's embeddings.
        """
        manifest = store.manifest()
        assert manifest is not None, "push() needs a shard folder with a manifest"
        repo_id = self.resolve_repo_id()
        next_step = (
            f"The shards are safe in {store.folder}; run the same command again to resume (it "
            "pushes every shard the repo lacks)."
        )
        with_retries(
            lambda: self.api.create_repo(
                repo_id, repo_type="dataset", private=self.private, exist_ok=True
            ),
            action="create the dataset repo",
            repo=repo_id,
            policy=self.policy,
            next_step=next_step,
            token=self.token,
        )
        remote = self.remote_manifest()
        if remote is not None:
            self._check_identity(remote, manifest["identity"], repo_id)
        pushed = {shard["file"]: shard.get("sha256") for shard in (remote or {}).get("shards", [])}
        missing = [
            index for index, shard in enumerate(manifest["shards"]) if _needs_upload(shard, pushed)
        ]
        if not missing and remote is not None and remote["complete"] == manifest["complete"]:
            logger.info("The dataset repo %s is up to date", repo_id)
            self._pushed_rows = manifest["num_rows"]
            return
        for group in self._commit_groups(manifest, missing):
            self._commit(store, manifest, group, repo_id, next_step)

    def _commit_groups(self, manifest: dict[str, Any], missing: list[int]) -> list[list[int]]:
        """The missing shards cut into runs of at most ``push_every`` rows (one, if none)."""
        groups: list[list[int]] = [[]]
        rows = 0
        for index in missing:
            size = manifest["shards"][index]["num_rows"]
            if groups[-1] and rows + size > self.push_every:
                groups.append([])
                rows = 0
            groups[-1].append(index)
            rows += size
        return groups

    def _commit(
        self,
        store: ShardStore,
        manifest: dict[str, Any],
        group: list[int],
        repo_id: str,
        next_step: str,
    ) -> None:
        """One commit: the shards ``group`` and the manifest of the repo after it."""
        end = group[-1] + 1 if group else len(manifest["shards"])
        listed = manifest["shards"][:end]
        state = {
            **manifest,
            "shards": listed,
            "num_rows": sum(shard["num_rows"] for shard in listed),
            "complete": bool(manifest["complete"]) and end == len(manifest["shards"]),
        }
        new = [manifest["shards"][index] for index in group]
        operations = [
            CommitOperationAdd(
                path_in_repo=shard["file"], path_or_fileobj=str(store.folder / shard["file"])
            )
            for shard in new
        ]
        operations.append(
            CommitOperationAdd(
                path_in_repo=MANIFEST_NAME,
                path_or_fileobj=json.dumps(state, indent=2, sort_keys=True).encode(),
            )
        )
        if listed:
            first = store.folder / listed[0]["file"]
            card = redact(dataset_card(state, first, _card_info(state, store), repo_id), self.token)
            operations.append(
                CommitOperationAdd(path_in_repo=CARD_NAME, path_or_fileobj=card.encode())
            )
        rows = sum(shard["num_rows"] for shard in new)
        message = f"Add {len(new)} embedding shard(s), {rows} rows ({state['num_rows']} in all)"

        attempts: list[int] = []

        def commit() -> None:
            # A commit whose answer was lost may have landed: then there is nothing to redo.
            if attempts and self._commit_landed(state):
                return
            attempts.append(1)
            self.api.create_commit(
                repo_id, operations=operations, commit_message=message, repo_type="dataset"
            )

        with_retries(
            commit,
            action=f"push {len(new)} shard(s) to the dataset repo",
            repo=repo_id,
            policy=self.policy,
            next_step=next_step,
            token=self.token,
        )
        self._pushed_rows = state["num_rows"]
        logger.info(
            "Pushed %d shard(s) (%d rows; %d in the repo) to the dataset repo %s",
            len(new),
            rows,
            state["num_rows"],
            repo_id,
        )

    def _commit_landed(self, manifest: dict[str, Any]) -> bool:
        remote = self.remote_manifest()
        return (
            remote is not None
            and remote["shards"] == manifest["shards"]
            and (remote["complete"] == manifest["complete"])
        )

    @staticmethod
    def _check_identity(remote: dict[str, Any], identity: dict[str, Any], repo_id: str) -> None:
        if remote.get("identity") == identity:
            return
        theirs = remote.get("identity") or {}
        changed = sorted(k for k in set(identity) | set(theirs) if identity.get(k) != theirs.get(k))
        raise HubError(
            f"The dataset repo {repo_id} holds embeddings of a different job (changed: {changed}); "
            "refusing to mix them. Set repo_id to another repo, or delete that repo to start over."
        )


def _card_info(manifest: dict[str, Any], store: ShardStore) -> EmbeddingsCardInfo:
    """What made the embeddings, as the folder's manifest records it, for the dataset card."""
    provenance = EmbeddingsProvenance.from_manifest(manifest, store.folder)
    return EmbeddingsCardInfo(
        source_dataset=provenance.corpus or "corpus",
        teacher_model=provenance.teacher_model,
        output_type=provenance.output_type,
        layers=provenance.layers,
        embedding_dtype=provenance.embedding_dtype,
        split=store.split,  # the shard files' split: the card's data_files point at them
        command=current_command(),
    )


def _needs_upload(shard: dict[str, Any], pushed: dict[str, str | None]) -> bool:
    """True for a shard the repo lacks, or holds with another sha256 (where both record one)."""
    if shard["file"] not in pushed:
        return True
    theirs, ours = pushed[shard["file"]], shard.get("sha256")
    return theirs is not None and ours is not None and theirs != ours


def _move_into(source: Path, target: Path) -> None:
    """Move a downloaded file into place atomically (temporary name, then rename)."""
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.move(source, tmp)
    os.replace(tmp, target)
