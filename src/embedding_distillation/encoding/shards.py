"""A folder of Parquet shards plus a manifest: the on-disk form of teacher embeddings.

Layout (a valid Hugging Face dataset folder, so the same files can go to the Hub)::

    <folder>/manifest.json            what was encoded, how, and which shards are done
    <folder>/data/train-00000.parquet  chunk_size rows each, in corpus order

A shard is written to a temporary name and renamed into place, so a file with a shard's name is
always complete. The manifest, rewritten the same way, lists the shards from the first one up to
the first gap, each with its size and sha256. Under ``torchrun`` every process writes its own
shards and only rank 0 writes the manifest (:meth:`ShardStore.list_completed`); a shard file that
is on disk but not listed yet (its process finished it, the manifest had not caught up) counts as
done when a run resumes.

Loading checks every listed shard against its size and sha256 and names a damaged one; a run
that resumes the folder encodes a damaged shard again. Manifests written before checksums were
recorded still load (their shards are reported as unverified, once per load).
"""

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from embedding_distillation.files import sha256_file

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
DATA_DIR = "data"
FORMAT_VERSION = 1


class ShardFolderError(ValueError):
    """The folder holds something other than the shards this job would write."""


@dataclass(frozen=True)
class ShardDamage:
    """A listed shard that no longer matches the manifest: its file and what is wrong."""

    file: str
    problem: str


class DamagedShardError(ShardFolderError):
    """Listed shards are missing, truncated or changed since they were written.

    Attributes:
        folder: The shard folder.
        damage: Each damaged shard and what is wrong with it.
    """

    def __init__(self, folder: Path, damage: list[ShardDamage], fix: str) -> None:
        self.folder = folder
        self.damage = damage
        listed = "; ".join(f"{d.file} {d.problem}" for d in damage)
        super().__init__(f"Teacher embeddings in {folder} are damaged: {listed}. {fix}")


REENCODE_FIX = (
    "Encoding the same job into this folder again (the same command) re-encodes only the "
    "damaged shard(s)."
)


def embedding_array(values: np.ndarray, dtype: str) -> pa.FixedSizeListArray:
    """(rows, dim) numpy array -> Arrow fixed-size list column of ``dtype`` (float32/float16)."""
    rows, dim = values.shape
    flat = pa.array(np.ascontiguousarray(values, dtype=dtype).reshape(rows * dim))
    return pa.FixedSizeListArray.from_arrays(flat, dim)


def write_parquet(table: pa.Table, path: Path) -> None:
    """Write ``table`` as Parquet with float-friendly encodings.

    Byte stream split stores the first bytes of every float together, then the second bytes,
    and so on; the sign-and-exponent bytes of embedding values vary little, so zstd then
    compresses them well (8% smaller float32 shards than plain encoding). Embedding values and
    texts are nearly all distinct, so dictionary encoding would only add bytes.
    """
    floats = [
        # An embedding column is a Parquet list: the encoding applies to its leaf column.
        f"{field.name}.list.element"
        for field in table.schema
        if pa.types.is_fixed_size_list(field.type) and pa.types.is_floating(field.type.value_type)
    ]
    pq.write_table(
        table,
        path,
        compression="zstd",
        use_dictionary=False,
        use_byte_stream_split=floats,
    )


def _readable_parquet(path: Path) -> bool:
    try:
        pq.read_metadata(path)
    except (OSError, pa.ArrowException):
        return False
    return True


def _write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True))
    os.replace(tmp, path)


def manifest_state(path: str | os.PathLike[str]) -> bool | None:
    """True for a complete shard folder, False for an unfinished one, None for neither."""
    try:
        return bool(json.loads((Path(path) / MANIFEST_NAME).read_text()).get("complete"))
    except (OSError, ValueError):
        return None


class ShardStore:
    """Reads and writes one shard folder.

    Args:
        folder: The folder; created on first write.
        split: Split name used in shard file names (``<split>-00000.parquet``).
    """

    def __init__(self, folder: str | os.PathLike[str], split: str = "train") -> None:
        self.folder = Path(folder)
        self.split = split
        # file -> (size, mtime_ns) of shards this object hashed and found intact: checked again
        # only if they change (a run verifies on begin, then on load, without reading twice).
        self._intact: dict[str, tuple[int, int]] = {}

    @property
    def manifest_path(self) -> Path:
        """Path of the manifest file."""
        return self.folder / MANIFEST_NAME

    def manifest(self) -> dict[str, Any] | None:
        """The manifest, or ``None`` when the folder has none."""
        if not self.manifest_path.exists():
            return None
        try:
            manifest = json.loads(self.manifest_path.read_text())
        except json.JSONDecodeError as e:
            raise ShardFolderError(
                f"{self.manifest_path} is not valid JSON ({e}); the folder is corrupt. Delete "
                f"{self.folder} to start fresh."
            ) from e
        if manifest.get("format_version") != FORMAT_VERSION or "identity" not in manifest:
            raise ShardFolderError(
                f"{self.manifest_path} is not a teacher-embeddings manifest of format "
                f"{FORMAT_VERSION}. Delete {self.folder} or choose another output folder."
            )
        return manifest

    def is_complete(self) -> bool:
        """True when every shard of the job is written."""
        manifest = self.manifest()
        return bool(manifest and manifest["complete"])

    def begin(self, identity: dict[str, Any], details: dict[str, Any] | None = None) -> set[int]:
        """Open the folder for the job ``identity``; return the indices of the shards done.

        Shard files on disk that the manifest does not list yet are listed now when they follow
        its last shard, and kept (done, listed once the gap before them fills) otherwise.
        Temporary files and unreadable shards of an interrupted run are removed, and a listed
        shard that no longer matches its size or sha256 is dropped (with the listing after it)
        so that it is encoded again. Call it from one process (rank 0) before any process
        writes shards.

        Args:
            identity: What must match for the shards to be reused.
            details: Where the embeddings come from (teacher as given, corpus name, ...),
                recorded as the manifest's ``provenance`` when it has none yet.

        Raises:
            ShardFolderError: The folder holds another job's shards, or files without a manifest.
        """
        manifest = self.manifest()
        if manifest is None:
            if self.folder.exists() and any(
                not path.name.startswith(".") for path in self.folder.iterdir()
            ):
                raise ShardFolderError(
                    f"{self.folder} is not empty but has no {MANIFEST_NAME}: it is not a "
                    "teacher-embeddings folder. Choose an empty or new output folder."
                )
            (self.folder / DATA_DIR).mkdir(parents=True, exist_ok=True)
            manifest = {
                "format_version": FORMAT_VERSION,
                "identity": identity,
                "shards": [],
                "num_rows": 0,
                "complete": False,
            }
            if details is not None:
                manifest["provenance"] = details
            _write_json_atomic(self.manifest_path, manifest)
            return set()
        if manifest["identity"] != identity:
            changed = sorted(
                key
                for key in set(identity) | set(manifest["identity"])
                if identity.get(key) != manifest["identity"].get(key)
            )
            raise ShardFolderError(
                f"{self.folder} holds embeddings of a different job (changed: {changed}); "
                "refusing to mix them. Delete that folder or choose another output folder to "
                "start fresh."
            )
        damage = self.damaged_shards(manifest)
        if damage:
            self._drop_damaged(manifest, damage)
        if details is not None and "provenance" not in manifest:
            manifest["provenance"] = details
            _write_json_atomic(self.manifest_path, manifest)
        unlisted = self._clean_unlisted_files(manifest)
        self.list_completed()
        return set(range(self.num_listed())) | unlisted

    def damaged_shards(self, manifest: dict[str, Any] | None = None) -> list[ShardDamage]:
        """The listed shards that are missing or differ from their recorded size or sha256.

        A shard listed without checksums (a manifest written before they were recorded) is
        checked for a readable Parquet footer only.
        """
        manifest = manifest if manifest is not None else self.manifest() or {}
        damage = []
        for shard in manifest.get("shards", []):
            problem = self._shard_problem(shard)
            if problem is not None:
                damage.append(ShardDamage(shard["file"], problem))
        return damage

    def _shard_problem(self, shard: dict[str, Any]) -> str | None:
        path = self.folder / shard["file"]
        if not path.is_file():
            return "is missing"
        if "sha256" not in shard:
            return None if _readable_parquet(path) else "is not a readable Parquet file"
        stat = path.stat()
        if stat.st_size != shard["size"]:
            return f"is {stat.st_size:,} bytes, the manifest says {shard['size']:,}"
        if self._intact.get(shard["file"]) == (stat.st_size, stat.st_mtime_ns):
            return None
        if sha256_file(path) != shard["sha256"]:
            return "does not match the sha256 in the manifest (its bytes changed)"
        self._intact[shard["file"]] = (stat.st_size, stat.st_mtime_ns)
        return None

    def _drop_damaged(self, manifest: dict[str, Any], damage: list[ShardDamage]) -> None:
        """Delete damaged shards and unlist them and every shard after the first (kept on disk)."""
        files = [shard["file"] for shard in manifest["shards"]]
        first = min(files.index(d.file) for d in damage)
        for item in damage:
            logger.warning(
                "Shard %s in %s %s: encoding it again", item.file, self.folder, item.problem
            )
            (self.folder / item.file).unlink(missing_ok=True)
        manifest["shards"] = manifest["shards"][:first]
        manifest["num_rows"] = sum(shard["num_rows"] for shard in manifest["shards"])
        manifest["complete"] = False
        _write_json_atomic(self.manifest_path, manifest)

    def verify(self, fix: str = REENCODE_FIX) -> None:
        """Check every listed shard against the manifest.

        Args:
            fix: What to do about damage, for the error message.

        Raises:
            DamagedShardError: A listed shard is missing, truncated or changed.
        """
        manifest = self.manifest() or {}
        damage = self.damaged_shards(manifest)
        if damage:
            raise DamagedShardError(self.folder, damage, fix)
        unverified = sum("sha256" not in shard for shard in manifest.get("shards", []))
        if unverified:
            logger.warning(
                "%s: %d of %d shards are unverified (the manifest predates shard checksums; "
                "only their Parquet footers were checked)",
                self.folder,
                unverified,
                len(manifest["shards"]),
            )

    def _clean_unlisted_files(self, manifest: dict[str, Any]) -> set[int]:
        """Remove an interrupted run's leftovers; return the indices of complete unlisted shards."""
        listed = {shard["file"] for shard in manifest["shards"]}
        complete = set()
        for path in sorted((self.folder / DATA_DIR).glob("*")):
            relative = f"{DATA_DIR}/{path.name}"
            if relative in listed:
                continue
            index = self._shard_index(path.name)
            if index is not None and _readable_parquet(path):
                complete.add(index)
                continue
            logger.info("Removing leftover %s from an interrupted run", path)
            path.unlink()
        return complete

    def _shard_index(self, name: str) -> int | None:
        prefix, suffix = f"{self.split}-", ".parquet"
        number = name.removeprefix(prefix).removesuffix(suffix)
        if name.startswith(prefix) and name.endswith(suffix) and number.isdigit():
            return int(number)
        return None

    def shard_file(self, index: int) -> str:
        """Relative path of shard ``index``."""
        return f"{DATA_DIR}/{self.split}-{index:05d}.parquet"

    def write_shard(self, index: int, table: pa.Table) -> None:
        """Write shard ``index`` atomically, then list it in the manifest (one process)."""
        self.write_shard_file(index, table)
        self.list_completed()

    def write_shard_file(self, index: int, table: pa.Table) -> None:
        """Write shard ``index`` atomically without touching the manifest (any process)."""
        final = self.folder / self.shard_file(index)
        tmp = final.with_name(f".{final.name}.tmp")
        write_parquet(table, tmp)
        os.replace(tmp, final)

    def list_completed(self) -> int:
        """List in the manifest the shard files that follow its last listed shard, up to a gap.

        Only one process (rank 0) may call this: it is the manifest's only writer.

        Returns:
            The number of rows newly listed.
        """
        manifest = self.manifest()
        assert manifest is not None, "begin() must be called first"
        added = 0
        while (path := self.folder / self.shard_file(len(manifest["shards"]))).exists():
            rows = pq.read_metadata(path).num_rows
            stat = path.stat()
            file = self.shard_file(len(manifest["shards"]))
            manifest["shards"].append(
                {
                    "file": file,
                    "num_rows": rows,
                    "first_row": manifest["num_rows"],
                    "size": stat.st_size,
                    "sha256": sha256_file(path),
                }
            )
            self._intact[file] = (stat.st_size, stat.st_mtime_ns)
            manifest["num_rows"] += rows
            added += rows
        if added:
            _write_json_atomic(self.manifest_path, manifest)
        return added

    def num_listed(self) -> int:
        """Shards listed in the manifest."""
        return len((self.manifest() or {}).get("shards", []))

    def finish(self, **details: Any) -> None:
        """Mark the job complete and record ``details`` (counts, timings) in the manifest."""
        manifest = self.manifest()
        assert manifest is not None
        manifest.update(details, complete=True)
        _write_json_atomic(self.manifest_path, manifest)

    def files(self) -> list[Path]:
        """Shard paths in order."""
        manifest = self.manifest()
        return [self.folder / shard["file"] for shard in (manifest or {}).get("shards", [])]

    def check_complete(self) -> dict[str, Any]:
        """The manifest of a complete folder.

        Raises:
            ShardFolderError: The folder has no manifest, or its run has not finished.
        """
        manifest = self.manifest()
        if manifest is None or not manifest["complete"]:
            state = "missing" if manifest is None else f"{len(manifest['shards'])} shards"
            raise ShardFolderError(
                f"{self.folder} does not hold complete teacher embeddings ({state}). Run the "
                "teacher_embeddings pipeline (it resumes an interrupted run) first."
            )
        return manifest

    def load(self, fix: str = REENCODE_FIX) -> datasets.Dataset:
        """All shards as one memory-mapped ``datasets.Dataset`` (rows in corpus order), checked.

        Args:
            fix: What to do about damaged shards, for the error message.
        """
        self.check_complete()
        self.verify(fix)
        return self.rows()

    def rows(self) -> datasets.Dataset:
        """The listed shards as one memory-mapped ``datasets.Dataset``, without checking them."""
        files = [str(path) for path in self.files()]
        dataset = datasets.Dataset.from_parquet(files)
        assert isinstance(dataset, datasets.Dataset)
        return dataset
