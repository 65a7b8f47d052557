"""Hugging Face Hub uploads: shards pushed as they complete, and trained models.

Only new shards go up, as one commit per push, together with the manifest, so a push never
re-uploads what the repo already has. ``HF_ENDPOINT`` selects a private Hub deployment.
Tokens are passed to ``huggingface_hub`` and never logged.
"""

import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from huggingface_hub import CommitOperationAdd, HfApi

from embedding_distillation.encoding.config import EncodingConfig
from embedding_distillation.encoding.shards import MANIFEST_NAME, ShardStore

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)


def slug(text: str) -> str:
    """``My Corpus!`` -> ``My-Corpus``: safe in repo and folder names (may be empty)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")


def default_repo_name(source_name: str) -> str:
    """``org/My Corpus.parquet`` -> ``My-Corpus-embeddings`` (the repo part only)."""
    base = source_name.rstrip("/").split("/")[-1].rsplit(".", 1)[0] or "corpus"
    return (slug(base) or "corpus") + "-embeddings"


@dataclass
class EmbeddingsPusher:
    """Pushes completed shards to a dataset repo every ``push_every`` rows (and at the end).

    Called by :func:`~embedding_distillation.encoding.engine.run_encoding` after each shard.
    """

    push_every: int
    repo_id: str | None = None
    private: bool = True
    token: str | None = field(default=None, repr=False)
    source_name: str = "corpus"
    _pending_rows: int = 0
    _pushed: set[str] = field(default_factory=set)

    @classmethod
    def from_config(
        cls, config: EncodingConfig, *, token: str | None, source_name: str = "corpus"
    ) -> "EmbeddingsPusher | None":
        """A pusher when ``push_every`` is set, else ``None``."""
        if config.push_every is None:
            return None
        return cls(
            push_every=config.push_every,
            repo_id=config.repo_id,
            private=config.private,
            token=token,
            source_name=source_name,
        )

    def __call__(self, store: ShardStore, rows: int, is_last: bool) -> None:
        """Count ``rows`` just written; push when ``push_every`` is reached or at the end."""
        self._pending_rows += rows
        if self._pending_rows >= self.push_every or is_last:
            self.push(store)

    def resolve_repo_id(self, api: HfApi) -> str:
        """The configured repo, or ``<token's user>/<source name>-embeddings``."""
        if self.repo_id is None:
            user = api.whoami(token=self.token)["name"]
            self.repo_id = f"{user}/{default_repo_name(self.source_name)}"
            logger.info("No repo_id given: pushing to %s", self.repo_id)
        return self.repo_id

    def push(self, store: ShardStore) -> None:
        """Upload the shards not yet pushed, plus the manifest, as one commit."""
        api = HfApi(token=self.token)
        repo_id = self.resolve_repo_id(api)
        api.create_repo(repo_id, repo_type="dataset", private=self.private, exist_ok=True)
        files = [path for path in store.files() if path.name not in self._pushed]
        operations = [
            CommitOperationAdd(path_in_repo=f"data/{path.name}", path_or_fileobj=str(path))
            for path in files
        ]
        operations.append(
            CommitOperationAdd(path_in_repo=MANIFEST_NAME, path_or_fileobj=str(store.manifest_path))
        )
        api.create_commit(
            repo_id,
            operations=operations,
            commit_message=f"Add {len(files)} embedding shard(s)",
            repo_type="dataset",
        )
        self._pushed.update(path.name for path in files)
        self._pending_rows = 0
        logger.info("Pushed %d shard(s) to the dataset repo %s", len(files), repo_id)


def push_model(
    model: "SentenceTransformer", repo_id: str, *, token: str | None, private: bool = True
) -> str:
    """Push a trained model (safetensors weights and model card); return the repo URL."""
    url = model.push_to_hub(repo_id, token=token, private=private, exist_ok=True)
    logger.info("Pushed the model to %s", repo_id)
    return str(url)
