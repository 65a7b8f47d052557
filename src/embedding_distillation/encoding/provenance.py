"""Stored teacher embeddings as the distillation sees them: the rows and where they came from.

The manifest of a shard folder records what made the embeddings (the teacher as given and its
weights fingerprint, the output type, dtype and corpus fingerprint). Distillation reads these
from the data it trains on, never from the current parameters, so that training on an older
version (``--load-versions teacher_embeddings:<version>``) names and scores that version's
teacher.
"""

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from datasets import Dataset

from embedding_distillation.encoding.shards import REENCODE_FIX, ShardStore


@dataclass(frozen=True)
class EmbeddingsProvenance:
    """What made a set of teacher embeddings, read from their manifest.

    Attributes:
        teacher_model: The teacher as it was given (Hub id or path).
        teacher_fingerprint: sha256 sample of the teacher's weights.
        output_type: ``final``, ``pre_dense`` or ``hidden_states``.
        embedding_dtype: Storage dtype of the embedding columns.
        corpus_fingerprint: sha256 over the encoded rows (``streamed`` for a stream).
        columns: Embedding column -> dimension.
        num_rows: Rows stored.
        corpus: Name of the source corpus, when recorded.
        split: Split name of the corpus (and of the shard files).
        layers: Layers of ``hidden_states``, when recorded.
        repo_id: The dataset repo named for pushes, when one was set.
        folder: The shard folder.
        version: The Kedro version of the folder, when it is one.
    """

    teacher_model: str
    teacher_fingerprint: str
    output_type: str
    embedding_dtype: str
    corpus_fingerprint: str
    columns: dict[str, int]
    num_rows: int
    corpus: str | None = None
    split: str = "train"
    layers: list[int] | None = None
    repo_id: str | None = None
    folder: str | None = None
    version: str | None = None

    @classmethod
    def from_manifest(
        cls, manifest: dict[str, Any], folder: Path, version: str | None = None
    ) -> "EmbeddingsProvenance":
        """Read a complete manifest (older ones keep the teacher in their run summary)."""
        identity = manifest["identity"]
        recorded = manifest.get("provenance") or {}
        return cls(
            teacher_model=recorded.get("teacher_model") or manifest["teacher_model"],
            teacher_fingerprint=identity["teacher_fingerprint"],
            output_type=identity["output_type"],
            embedding_dtype=identity["embedding_dtype"],
            corpus_fingerprint=identity["corpus_fingerprint"],
            columns=dict(identity["columns"]),
            num_rows=int(manifest["num_rows"]),
            corpus=recorded.get("corpus"),
            split=recorded.get("split", "train"),
            layers=recorded.get("layers", manifest.get("layers")),
            repo_id=recorded.get("repo_id"),
            folder=str(folder),
            version=version,
        )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "EmbeddingsProvenance":
        """Inverse of :meth:`to_dict` (unknown keys are ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)

    @property
    def training_data(self) -> str:
        """How a model card names these embeddings: the dataset repo, else the local version."""
        if self.repo_id:
            return self.repo_id
        where = f"teacher_embeddings version {self.version}" if self.version else self.folder
        corpus = f"{self.corpus}, " if self.corpus else ""
        return f"{where} ({corpus}{self.num_rows:,} rows; local)"


@dataclass(frozen=True)
class TeacherEmbeddings:
    """A complete, checked shard folder: its rows (memory-mapped on first use) and provenance.

    Attributes:
        store: The shard folder.
        provenance: What made the embeddings.
    """

    store: ShardStore
    provenance: EmbeddingsProvenance
    _rows: list[Dataset] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def open(
        cls, store: ShardStore, version: str | None = None, *, fix: str = REENCODE_FIX
    ) -> "TeacherEmbeddings":
        """Check ``store`` (complete, every shard intact) and read its provenance.

        Args:
            store: The shard folder.
            version: Its Kedro version, if it is one.
            fix: What to do about a damaged shard, for the error message.
        """
        manifest = store.check_complete()
        store.verify(fix)
        return cls(store, EmbeddingsProvenance.from_manifest(manifest, store.folder, version))

    @property
    def folder(self) -> Path:
        """The shard folder."""
        return self.store.folder

    @property
    def rows(self) -> Dataset:
        """Every row in corpus order: ``row_id``, the text and the embedding columns."""
        if not self._rows:
            self._rows.append(self.store.rows())
        return self._rows[0]
