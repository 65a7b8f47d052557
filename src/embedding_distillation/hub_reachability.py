"""Fail fast, with the fixes, when a model or corpus is a Hub id and the Hub cannot be reached.

Offline, ``huggingface_hub`` retries each file that is not in its cache five times with
exponential backoff (``file_download.hf_hub_download``: 1 + 2 + 4 + 8 + 8 s of sleep; no setting
turns it off), and loading a model asks for several files: ``AutoConfig`` of a Hub id alone took
25 s here to fail with "couldn't connect". One HEAD request to the endpoint, with a short timeout
and no retry, tells at once. Written here because the libraries have no such check.
"""

from pathlib import Path
from typing import Literal

import httpx2
from huggingface_hub import constants, get_session
from huggingface_hub.file_download import repo_folder_name

from embedding_distillation.hub_client import resolve_endpoint

HUB_CHECK_TIMEOUT = 5.0  # seconds the reachability request may take (connect and answer)

RepoType = Literal["model", "dataset"]


class HubUnreachableError(ConnectionError):
    """The Hub endpoint did not answer; the message names the cause and what to do instead."""


def check_hub_reachable(
    repo_id: str, *, repo_type: RepoType, what: str, timeout: float = HUB_CHECK_TIMEOUT
) -> None:
    """Raise :class:`HubUnreachableError` within ``timeout`` seconds when the Hub does not answer.

    Any HTTP answer counts as reachable (a missing or private repo is then reported by the
    library itself, at once). With ``HF_HUB_OFFLINE=1`` nothing is sent: the libraries read
    their cache only and fail at once when it lacks the files. A copy of ``repo_id`` in the
    Hugging Face cache does not help while the Hub is merely unreachable: the loaders still
    retry every optional file the cache lacks (measured: over 200 s for a cached
    sentence-transformers model), so the error tells to set ``HF_HUB_OFFLINE=1`` then.

    Args:
        repo_id: The Hub id (``org/name``).
        repo_type: ``model`` or ``dataset``.
        what: How to name it in the message (``teacher_model``, ``corpus``).
        timeout: Seconds to wait for the endpoint.
    """
    if constants.is_offline_mode():
        return
    endpoint = resolve_endpoint()
    try:
        get_session().request("HEAD", endpoint, timeout=timeout, follow_redirects=False)
    except httpx2.TransportError as error:
        reason = f"{type(error).__name__}: {error}".rstrip(": ")
        raise HubUnreachableError(
            unreachable_message(repo_id, repo_type, what, endpoint, reason)
        ) from error


def unreachable_message(
    repo_id: str, repo_type: RepoType, what: str, endpoint: str, reason: str
) -> str:
    """What went wrong, and the ways out: a local copy, offline mode, the network."""
    local = "a local model folder" if repo_type == "model" else "a local data file or folder"
    cached = cached_copy(repo_id, repo_type)
    offline = (
        f"{repo_id!r} is in the Hugging Face cache ({cached}): set HF_HUB_OFFLINE=1 to load it "
        "from there without the network"
        if cached is not None
        else f"if the files are in the Hugging Face cache (here: {constants.HF_HUB_CACHE}, where "
        f"{repo_id!r} is not), set HF_HUB_OFFLINE=1 to load them without the network"
    )
    return (
        f"Cannot load {what} {repo_id!r}: the Hugging Face Hub at {endpoint} does not answer "
        f"({reason}). Fixes: give {what} as {local} (a path such as data/01_raw/...); or "
        f"{offline}; or check the network connection, the proxy settings (HTTPS_PROXY) and "
        "HF_ENDPOINT."
    )


def cached_copy(repo_id: str, repo_type: RepoType) -> Path | None:
    """The snapshot folder of ``repo_id`` in the Hugging Face Hub cache, or ``None``."""
    try:
        folder = repo_folder_name(repo_id=repo_id, repo_type=repo_type)
    except ValueError:  # not a valid repo id: the library's own error says so
        return None
    snapshots = Path(constants.HF_HUB_CACHE) / folder / "snapshots"
    found = sorted(snapshots.iterdir()) if snapshots.is_dir() else []
    return found[0] if found else None
