"""Embeddings kept on disk between runs, for models whose weights do not change (the teacher).

mteb's own ``CachedEmbeddingWrapper`` does the work: it hands the model only the texts it has
not seen and stores each vector under the sha256 of its text, in a folder per task and prompt
type (``<folder>/<task>/<query|document>/``). This module picks the folder of a model,
``<cache_dir>/<source>/<cache_key>`` (its weights fingerprint and settings: new weights never
meet old vectors), and gives mteb's numpy backend a small start.
"""

import contextlib
import fcntl
import logging
from collections.abc import Collection, Iterator
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embedding_distillation import distributed
from embedding_distillation.evaluation.encoders import EvaluatedModel
from embedding_distillation.evaluation.mteb_tasks import MtebEncoder

if TYPE_CHECKING:
    from mteb.models.cache_wrappers import CachedEmbeddingWrapper

logger = logging.getLogger(__name__)

INITIAL_ROWS = 1024  # rows of a new cache file; mteb's default (100,000) is ~300 MB at 768-d


def cache_folder(cache_dir: Path, model: EvaluatedModel) -> Path | None:
    """``<cache_dir>/<source>/<cache_key>``, or ``None`` for a model without a cache key."""
    if model.cache_key is None:
        return None
    return Path(cache_dir) / Path(model.source).name / model.cache_key


def with_cache(encoder: Any, folder: Path) -> "CachedEmbeddingWrapper":
    """``encoder`` (an mteb encoder) behind mteb's ``CachedEmbeddingWrapper`` in ``folder``."""
    from mteb.models.cache_wrappers import CachedEmbeddingWrapper

    return CachedEmbeddingWrapper(encoder, folder, cache_backend=_numpy_cache_class())


@cache
def _numpy_cache_class() -> type:
    """The ``NumpyCache`` of mteb, subclassed once (mteb is imported only when a cache is used)."""
    from mteb.models.cache_wrappers.cache_backends.numpy_cache import NumpyCache

    class CompactNumpyCache(NumpyCache):  # type: ignore[misc]
        """Starts small, stores a text once, and starts afresh when its files are damaged."""

        def __init__(self, directory: str | Path) -> None:
            super().__init__(directory, initial_vectors=INITIAL_ROWS)

        def load(self) -> None:
            if not self.index_file.exists():  # a new folder: nothing to load (mteb would warn)
                return
            try:
                super().load()
            except (ValueError, OSError) as e:  # a run killed while it saved
                logger.warning("embedding cache %s is damaged (%s): emptied", self.directory, e)
                self.close()
                self.hash_to_index, self.vector_dim = {}, None
                for path in (self.vectors_file, self.index_file, self.dimension_file):
                    path.unlink(missing_ok=True)

        def add(self, items: list[dict[str, Any]], vectors: Any) -> None:
            # mteb warns once per text it already holds (a duplicate within one call).
            for item, vector in zip(items, vectors, strict=True):
                if item not in self:
                    super().add([item], vector[None])

    return CompactNumpyCache


@contextlib.contextmanager
def mteb_encoders(
    models: dict[str, EvaluatedModel],
    *,
    cache_dir: Path | None,
    cached: Collection[str],
    scratch: Path | None,
) -> Iterator[dict[str, Any]]:
    """An mteb encoder per model, named ``<role>/<source>``; closed (flushed) on exit.

    The roles in ``cached`` keep their embeddings in ``cache_dir`` (from one run to the next)
    where this process can hold the folder alone: rank 0 of a ``torchrun`` job, and not while
    another run holds it (mteb's numpy cache has no lock of its own; the other run's folder is
    left alone and this one uses ``scratch``). Other models, or all of them without
    ``cache_dir``, cache in ``scratch`` (this run only: the teacher's documents then serve
    every model's teacher-index run); without either, no cache.
    """
    with contextlib.ExitStack() as stack:
        encoders: dict[str, Any] = {}
        for role, model in models.items():
            folder = None
            if cache_dir and role in cached and distributed.is_main():
                lasting = cache_folder(cache_dir, model)
                if lasting is not None and stack.enter_context(_held_alone(lasting)):
                    folder = lasting
            if folder is None and scratch is not None:
                folder = scratch / role
            encoders[role] = MtebEncoder(model, role)
            if folder is not None:
                encoders[role] = with_cache(encoders[role], folder)
                stack.callback(encoders[role].close)  # flushes its memory-mapped vectors
                logger.debug("%s: embedding cache %s", role, folder)
        yield encoders


LOCK_FILE = ".lock"


@contextlib.contextmanager
def _held_alone(folder: Path) -> Iterator[bool]:
    """Hold ``folder``'s lock while the block runs; ``False`` when another process holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / LOCK_FILE).open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info(
                "embedding cache %s is in use by another run: this run keeps its own", folder
            )
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
