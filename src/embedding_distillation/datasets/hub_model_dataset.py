"""``HubModelDataset``: pushes a trained model to the Hugging Face Hub when asked to."""

import logging
from dataclasses import dataclass, field
from typing import Any

from kedro.io import AbstractDataset, DatasetError
from sentence_transformers import SentenceTransformer

from embedding_distillation.hub import push_model

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelPush:
    """A request to push ``model`` to ``repo_id`` (``None``: do not push); the token is hidden."""

    model: SentenceTransformer
    repo_id: str | None
    private: bool = True
    token: str | None = field(default=None, repr=False)


class HubModelDataset(AbstractDataset[ModelPush, None]):
    """Write-only: saving a :class:`ModelPush` uploads its model (unless its repo_id is None).

    The token comes from the push request (``hub_token``), else from ``credentials``, else from
    ``HF_TOKEN``/the stored login; ``HF_ENDPOINT`` selects a private Hub deployment.

    Example catalog entry::

        student_model_hub:
          type: embedding_distillation.datasets.HubModelDataset
          credentials: huggingface

    Args:
        credentials: ``{"token": ...}``; never shown.
        metadata: Free-form metadata (kedro-viz shows it).
    """

    def __init__(
        self, *, credentials: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None
    ) -> None:
        self._token = (credentials or {}).get("token")
        self.metadata = metadata

    def save(self, data: ModelPush) -> None:
        """Push the model, or log that pushing is off."""
        if data.repo_id is None:
            logger.info("push_to_hub is false: the student model is not pushed")
            return
        push_model(data.model, data.repo_id, token=data.token or self._token, private=data.private)

    def load(self) -> None:
        """Nothing to load: the pushed model is read back with its repo id."""
        raise DatasetError("HubModelDataset is write-only; load the model by its repo id.")

    def _describe(self) -> dict[str, Any]:
        return {"credentials": "***" if self._token else None}
