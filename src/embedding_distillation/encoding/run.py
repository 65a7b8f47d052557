"""One encoding run: the sequence behind both the ``encode_corpus`` node and the Python API.

:func:`encode_to_shards` claims the output folder (one writer at a time), loads the teacher,
continues after any shards already pushed to the Hub, encodes what is missing (pushing every
``push_every`` rows on the way) and releases the folder. Where the folder is, and how it is
found again after a crash, is the output's business
(:mod:`~embedding_distillation.encoding.output`).

The final push (the complete manifest and the last shards) is not part of the run: the
``push_teacher_embeddings`` node makes it, and the API calls the same push after the run.
"""

import logging
from typing import Any, Protocol

from embedding_distillation import distributed
from embedding_distillation.encoding.engine import ShardEncoder, run_encoding
from embedding_distillation.encoding.job import EncodingJob
from embedding_distillation.encoding.output import ShardOutput
from embedding_distillation.encoding.shards import ShardStore

logger = logging.getLogger(__name__)


class ShardPusher(Protocol):
    """What a run asks of a Hub pusher (:class:`~embedding_distillation.hub.EmbeddingsPusher`)."""

    def restore(
        self, store: ShardStore, identity: dict[str, Any], details: dict[str, Any] | None
    ) -> int:
        """Download the shards the repo holds beyond the folder's; return how many."""

    def after_listing(self, store: ShardStore, all_listed: bool) -> None:
        """Push when the listed rows passed another ``push_every``."""


def encode_to_shards(
    job: EncodingJob,
    output: ShardOutput,
    *,
    pusher: ShardPusher | None = None,
    encoder: ShardEncoder | None = None,
) -> ShardStore:
    """Encode ``job`` into the folder ``output`` gives, resuming a run of the same job.

    Under ``torchrun`` every process calls this: rank 0 claims the folder, talks to the Hub and
    writes the manifest; every process loads the teacher and encodes its share of the shards.

    Args:
        job: The validated job.
        output: Where the shards go.
        pusher: Pushes to the Hub while encoding (``None``: no pushes).
        encoder: The run's state, when the caller made it already (its loaded teacher).

    Returns:
        The complete shard folder.

    Raises:
        FolderInUseError: Another process is writing the same job's folder.
    """
    distributed.init(job.device)  # the one place an encoding run joins the process group
    encoder = encoder or ShardEncoder(job)
    try:
        distributed.on_main(lambda: output.reserve(job))
        identity = encoder.identity()  # loads the teacher, on every process
        folder = distributed.on_main(lambda: output.open(identity))
        store = ShardStore(folder, split=job.config.split)
        if pusher is not None:  # continue after the shards already pushed (e.g. another machine)
            distributed.on_main(lambda: pusher.restore(store, identity, job.provenance()))
        return run_encoding(
            job,
            store,
            encoder=encoder,
            on_listed=pusher.after_listing if pusher is not None else None,
        )
    finally:
        if distributed.is_main():
            output.release()
