"""``HubEmbeddingsDataset``: pushes stored teacher embeddings to a Hub dataset repo when asked.

The twin of :class:`~embedding_distillation.datasets.HubModelDataset`: the
``push_teacher_embeddings`` node returns an :class:`EmbeddingsPush` request, and saving it
uploads the shards the repo lacks (in commits of at most ``push_every`` rows, the last with the
complete manifest and the dataset card). Pushes made while encoding already sent most shards;
this one sends the rest, and a rerun (``kedro run --from-nodes push_teacher_embeddings``) sends
whatever a failed push left out. The card describes the embeddings from their manifest.
"""

import logging

from embedding_distillation.datasets.hub_push_dataset import HubPushDataset
from embedding_distillation.hub.embeddings import EmbeddingsPush, EmbeddingsPusher

logger = logging.getLogger(__name__)


class HubEmbeddingsDataset(HubPushDataset[EmbeddingsPush]):
    """Write-only: saving an :class:`EmbeddingsPush` uploads what the dataset repo lacks.

    The token comes from ``credentials``, else from ``HF_TOKEN``/the stored login. The Hub is
    ``hub_endpoint``, else ``HF_ENDPOINT``, else the public Hub.

    Example catalog entry::

        teacher_embeddings_hub:
          type: embedding_distillation.datasets.HubEmbeddingsDataset
          credentials: huggingface
          hub_endpoint: https://hub.example.com   # optional: a private Hub deployment

    Args:
        credentials: ``{"token": ...}``; never shown.
        hub_endpoint: Hub URL; ``None`` = ``HF_ENDPOINT`` or the public Hub.
        metadata: Free-form metadata (kedro-viz shows it).
    """

    PUSHED = "embeddings"

    def save(self, data: EmbeddingsPush) -> None:
        """Push what the repo lacks, or log that pushing is off."""
        if data.push_every is None:
            logger.info("push_every is null: the teacher embeddings are not pushed")
            return
        pusher = EmbeddingsPusher.create(
            data,
            source_name=data.embeddings.provenance.corpus or "corpus",
            token=self._token,
            endpoint=self._hub_endpoint,
        )
        assert pusher is not None  # push_every is set
        pusher.push(data.embeddings.store)
