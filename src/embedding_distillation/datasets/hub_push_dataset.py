"""``HubPushDataset``: the base of the write-only datasets that push to the Hugging Face Hub."""

from typing import Any, ClassVar, TypeVar

from kedro.io import AbstractDataset, DatasetError

_DI = TypeVar("_DI")


class HubPushDataset(AbstractDataset[_DI, None]):
    """Write-only: saving a push request uploads it; where to and with which token is set here.

    The token comes from the request where it carries one, else from ``credentials``, else
    from ``HF_TOKEN``/the stored login. The Hub is ``hub_endpoint``, else ``HF_ENDPOINT``,
    else the public Hub.

    Args:
        credentials: ``{"token": ...}``; never shown.
        hub_endpoint: Hub URL; ``None`` = ``HF_ENDPOINT`` or the public Hub.
        metadata: Free-form metadata (kedro-viz shows it).
    """

    PUSHED: ClassVar[str] = "data"  # what the subclass pushes, for the write-only message

    def __init__(
        self,
        *,
        credentials: dict[str, Any] | None = None,
        hub_endpoint: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._token = (credentials or {}).get("token")
        self._hub_endpoint = hub_endpoint
        self.metadata = metadata

    def load(self) -> None:
        """Nothing to load: what was pushed is read back with its repo id."""
        raise DatasetError(
            f"{type(self).__name__} is write-only; load the pushed {self.PUSHED} by its repo id."
        )

    def _describe(self) -> dict[str, Any]:
        return {
            "credentials": "***" if self._token else None,
            "hub_endpoint": self._hub_endpoint,
        }
