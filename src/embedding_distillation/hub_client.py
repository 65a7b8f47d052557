"""One way to talk to the Hub: endpoint and token resolution, retries, and readable errors.

Transient faults (timeouts, dropped connections, 408/429/5xx) are retried with exponential
backoff through ``tenacity``; ``huggingface_hub`` itself does not retry a commit, because a
commit whose answer was lost would be made twice. Our pushes are idempotent instead: each
attempt first reads what the repo already holds. 401/403/404 fail at once with a message that
names the repo and what is missing. No message or log line ever holds a token.

It sits below both the loaders (models, corpus) and the pushers
(:mod:`embedding_distillation.hub`), so loading a model never imports the pushers.
"""

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx2
from huggingface_hub import HfApi, constants, get_session
from huggingface_hub.errors import HfHubHTTPError
from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

# huggingface_hub's shared client has no timeout: a stalled connection would hang a push forever.
HUB_TIMEOUT = httpx2.Timeout(120.0, connect=15.0)
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
TRANSIENT_ERRORS = (httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError)
_TOKEN_PATTERN = re.compile(r"hf_[A-Za-z0-9]{6,}")


class HubError(RuntimeError):
    """A Hub call failed for good; the message says what to do next."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently transient Hub faults are retried.

    Attributes:
        attempts: Tries in all (1 = no retry).
        first_wait: Seconds before the first retry; doubled each time.
        max_wait: Longest wait between two tries, in seconds.
    """

    attempts: int = 5
    first_wait: float = 2.0
    max_wait: float = 60.0


DEFAULT_RETRY = RetryPolicy()


def resolve_endpoint(endpoint: str | None = None) -> str:
    """``endpoint``, else ``HF_ENDPOINT`` (read now, not at import), else the public Hub."""
    chosen = endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
    return chosen.rstrip("/")


def hub_api(token: str | None, endpoint: str | None = None) -> HfApi:
    """An ``HfApi`` for ``endpoint``; ``token=None`` falls back to ``HF_TOKEN``/the stored login.

    Also gives huggingface_hub's shared HTTP client :data:`HUB_TIMEOUT` when it has no timeout
    (its default), so that a stalled connection raises a timeout, which is then retried; a
    timeout set by the user (``huggingface_hub.set_client_factory``) is kept.
    """
    session = get_session()
    if session.timeout == httpx2.Timeout(None):
        session.timeout = HUB_TIMEOUT
    return HfApi(endpoint=resolve_endpoint(endpoint), token=token)


def redact(text: str, token: str | None = None) -> str:
    """``text`` with ``token`` and anything shaped like a Hub token replaced by ``hf_***``."""
    if token:
        text = text.replace(token, "hf_***")
    return _TOKEN_PATTERN.sub("hf_***", text)


def is_transient(error: BaseException) -> bool:
    """True for faults worth retrying: timeouts, dropped connections, 408/429/5xx."""
    if isinstance(error, TRANSIENT_ERRORS):
        return True
    status = _status(error)
    return status is not None and status in TRANSIENT_STATUS


def _status(error: BaseException) -> int | None:
    if isinstance(error, HfHubHTTPError) and error.response is not None:
        return error.response.status_code
    return None


def _reason(error: BaseException, token: str | None) -> str:
    status = _status(error)
    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    label = f"HTTP {status}" if status is not None else type(error).__name__
    return redact(f"{label}: {first_line}", token)


def permission_error(
    error: BaseException, *, repo: str, action: str, token: str | None
) -> HubError | None:
    """A clear :class:`HubError` for 401/403/404, else None."""
    status = _status(error)
    if status == 401:
        hint = (
            "the Hub rejected the token (missing, expired or revoked). Set HF_TOKEN or "
            "conf/local/credentials.yml (huggingface.token) to a valid token"
        )
    elif status == 403:
        hint = (
            "the token has no write permission on it. Use a token with the 'write' role (or "
            "a fine-grained token with write access to this repo or its organisation)"
        )
    elif status == 404:
        hint = (
            "the repo does not exist or the token cannot read it (private repo). Check the "
            "repo id and that the token has read access"
        )
    else:
        return None
    return HubError(f"Cannot {action} {repo}: {hint} ({_reason(error, token)}).")


def with_retries(
    call: Callable[[], T],
    *,
    action: str,
    repo: str,
    policy: RetryPolicy,
    next_step: str,
    token: str | None,
) -> T:
    """Run ``call``, retrying transient faults with exponential backoff.

    Args:
        call: The Hub operation (it must be safe to repeat).
        action: What it does, for messages (``push 2 shards to``).
        repo: The repo it acts on.
        policy: Attempts and waits.
        next_step: What the user should do when it fails for good.
        token: Only used to keep it out of messages.

    Raises:
        HubError: Permission problems at once; transient faults after the last attempt.
    """

    def log_retry(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        logger.warning(
            "Could not %s %s (%s); retry %d of %d in %.1f s",
            action,
            repo,
            _reason(error, token) if error else "?",
            state.attempt_number,
            policy.attempts - 1,
            wait,
        )

    retrying = Retrying(
        stop=stop_after_attempt(policy.attempts),
        wait=wait_exponential(multiplier=policy.first_wait, max=policy.max_wait),
        retry=retry_if_exception(is_transient),
        before_sleep=log_retry,
        reraise=False,
    )
    try:
        return retrying(call)
    except RetryError as e:
        error = e.last_attempt.exception()
        raise HubError(
            f"Could not {action} {repo} after {policy.attempts} attempts "
            f"({_reason(error, token) if error else 'unknown error'}). {next_step}"
        ) from error
    except Exception as e:
        clear = permission_error(e, repo=repo, action=action, token=token)
        if clear is not None:
            raise clear from e
        raise
