"""``HubModelDataset``: pushes a trained model to the Hugging Face Hub when asked to."""

import logging

from embedding_distillation.datasets.hub_push_dataset import HubPushDataset
from embedding_distillation.hub.models import ModelPush, push_model
from embedding_distillation.students import StudentFailure, is_failure

logger = logging.getLogger(__name__)


class HubModelDataset(HubPushDataset[ModelPush]):
    """Write-only: saving a :class:`ModelPush` uploads its model (unless its repo_id is None).

    The token comes from the push request where it carries one (the pipeline's never does), else
    from ``credentials``, else from ``HF_TOKEN``/the stored login. The Hub is ``hub_endpoint``,
    else ``HF_ENDPOINT``, else the public Hub.

    Example catalog entry::

        student_model_hub:
          type: embedding_distillation.datasets.HubModelDataset
          credentials: huggingface
          hub_endpoint: https://hub.example.com   # optional: a private Hub deployment

    Args:
        credentials: ``{"token": ...}``; never shown.
        hub_endpoint: Hub URL; ``None`` = ``HF_ENDPOINT`` or the public Hub.
        metadata: Free-form metadata (kedro-viz shows it).
    """

    PUSHED = "model"

    def save(self, data: ModelPush) -> None:
        """Push the model, or log that pushing is off (or that the student failed)."""
        if is_failure(data):
            logger.warning("Not pushed: %s", StudentFailure.from_record(data).describe())
            return
        if data.repo_id is None:
            logger.info("push_to_hub is false: the student model is not pushed")
            return
        push_model(
            data.model,
            data.repo_id,
            token=data.token or self._token,
            private=data.private,
            endpoint=self._hub_endpoint,
            card=data.card,
            exports=data.exports,
        )
