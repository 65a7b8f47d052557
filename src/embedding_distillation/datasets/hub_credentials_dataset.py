"""``HubCredentialsDataset``: the catalog's Hub credentials, for nodes that push while they work.

Kedro hands credentials to datasets only, and a token in the parameters would show in kedro-viz
and in run logs. The nodes that push while they run (``encode_corpus``, with
``teacher_embeddings.push_every``; ``train_student_model``, with ``distillation.push_checkpoints``)
take their token from this read-only dataset instead.
"""

from typing import Any

from kedro.io import AbstractDataset, DatasetError

from embedding_distillation.hub.credentials import HubCredentials


class HubCredentialsDataset(AbstractDataset[HubCredentials, HubCredentials]):
    """Loads :class:`HubCredentials` from its ``credentials``; read-only, never shows the token.

    Example catalog entry::

        hub_credentials:
          type: embedding_distillation.datasets.hub_credentials_dataset.HubCredentialsDataset
          credentials: huggingface   # conf/local/credentials.yml, else HF_TOKEN
          hub_endpoint: https://hub.example.com   # optional: a private Hub deployment

    Args:
        credentials: ``{"token": ...}``; never shown.
        hub_endpoint: Hub URL; ``None`` = ``HF_ENDPOINT`` or the public Hub.
        metadata: Free-form metadata (kedro-viz shows it).
    """

    def __init__(
        self,
        *,
        credentials: dict[str, Any] | None = None,
        hub_endpoint: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._token = (credentials or {}).get("token") or None
        self._hub_endpoint = hub_endpoint
        self.metadata = metadata

    def load(self) -> HubCredentials:
        """The token of the credentials (``None`` when they hold none) and the endpoint."""
        return HubCredentials(token=self._token, endpoint=self._hub_endpoint)

    def save(self, data: HubCredentials) -> None:
        """Credentials come from ``conf/local/credentials.yml`` only."""
        raise DatasetError(
            "HubCredentialsDataset is read-only: put the token in conf/local/credentials.yml "
            "(huggingface: token: ...) or in HF_TOKEN."
        )

    def _describe(self) -> dict[str, Any]:
        return {
            "credentials": "***" if self._token else None,
            "hub_endpoint": self._hub_endpoint,
        }
