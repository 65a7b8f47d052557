"""``HubCredentialsDataset``: the catalog's Hub credentials, for nodes that push while they work.

Kedro hands credentials to datasets only, and a token in the parameters would show in kedro-viz
and in run logs. The one node that pushes while it runs (``train_student``, with
``distillation.push_checkpoints``) takes its token from this read-only dataset instead.
"""

from dataclasses import dataclass, field
from typing import Any

from kedro.io import AbstractDataset, DatasetError


@dataclass(frozen=True)
class HubCredentials:
    """A Hub token from the catalog's credentials; its ``repr`` never shows it.

    Attributes:
        token: The token, or ``None`` (then ``HF_TOKEN`` or the stored login).
    """

    token: str | None = field(default=None, repr=False)


class HubCredentialsDataset(AbstractDataset[HubCredentials, HubCredentials]):
    """Loads :class:`HubCredentials` from its ``credentials``; read-only, never shows the token.

    Example catalog entry::

        hub_credentials:
          type: embedding_distillation.datasets.hub_credentials_dataset.HubCredentialsDataset
          credentials: huggingface   # conf/local/credentials.yml, else HF_TOKEN

    Args:
        credentials: ``{"token": ...}``; never shown.
        metadata: Free-form metadata (kedro-viz shows it).
    """

    def __init__(
        self,
        *,
        credentials: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._token = (credentials or {}).get("token") or None
        self.metadata = metadata

    def load(self) -> HubCredentials:
        """The token of the credentials (``None`` when they hold none)."""
        return HubCredentials(token=self._token)

    def save(self, data: HubCredentials) -> None:
        """Credentials come from ``conf/local/credentials.yml`` only."""
        raise DatasetError(
            "HubCredentialsDataset is read-only: put the token in conf/local/credentials.yml "
            "(huggingface: token: ...) or in HF_TOKEN."
        )

    def _describe(self) -> dict[str, Any]:
        return {"credentials": "***" if self._token else None}
