"""``HubCredentials``: the catalog's Hub token and endpoint, for nodes that push while they work.

Kedro hands credentials to datasets only, and a token in the parameters would show in kedro-viz
and in run logs, so the nodes that push as they go get them as a loaded value instead.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class HubCredentials:
    """A Hub token and endpoint from the catalog; its ``repr`` never shows the token.

    Attributes:
        token: The token, or ``None`` (then ``HF_TOKEN`` or the stored login).
        endpoint: Hub URL, or ``None`` (then ``HF_ENDPOINT`` or the public Hub).
    """

    token: str | None = field(default=None, repr=False)
    endpoint: str | None = None
