"""Spies on :meth:`ShardEncoder.encode_shard`: which shards a run encodes, and a crash in one.

Both patch the class, so they also reach the runs that the API or a pipeline starts inside;
given a ``job``, they act on the runs of that job alone. Worker scripts outside pytest pass a
``pytest.MonkeyPatch()`` of their own.
"""

from collections.abc import Callable

import pytest

from embedding_distillation.encoding.batching import TokenizedShard
from embedding_distillation.encoding.engine import EncodingJob, ShardEncoder


class Crash(Exception):
    """Stands for a process killed while it encodes a shard."""


def _before_encoding(
    monkeypatch: pytest.MonkeyPatch, job: EncodingJob | None, hook: Callable[[int], None]
) -> None:
    """Call ``hook(shard index)`` before a run of ``job`` (any job when ``None``) encodes a shard."""
    original = ShardEncoder.encode_shard

    def encode(self: ShardEncoder, shard: TokenizedShard):
        if job is None or self.job is job:
            hook(shard.index)
        return original(self, shard)

    monkeypatch.setattr(ShardEncoder, "encode_shard", encode)


def crash_at(
    monkeypatch: pytest.MonkeyPatch,
    job: EncodingJob | None,
    index: int,
    error: type[BaseException] = Crash,
) -> None:
    """Make ``job`` (any job when ``None``) raise ``error`` when it starts shard ``index``."""

    def crash(shard: int) -> None:
        if shard == index:
            raise error()

    _before_encoding(monkeypatch, job, crash)


def record_encoded(monkeypatch: pytest.MonkeyPatch, job: EncodingJob | None = None) -> list[int]:
    """The indices of the shards ``job`` (any job when ``None``) encodes from now on, in order."""
    encoded: list[int] = []
    _before_encoding(monkeypatch, job, encoded.append)
    return encoded


def slow_shards(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Make every run sleep ``seconds`` before each shard (a long run, for kill and lock tests)."""
    import time

    _before_encoding(monkeypatch, None, lambda index: time.sleep(seconds))


def hold_until(monkeypatch: pytest.MonkeyPatch, path: str, timeout: float = 300) -> None:
    """Make every run wait before each shard until the file ``path`` exists (at most ``timeout``).

    A run held open while a test starts a second one, then let go at once: no fixed sleep.
    """
    import time
    from pathlib import Path

    def wait(index: int) -> None:
        deadline = time.monotonic() + timeout
        while not Path(path).exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path} did not appear within {timeout} s")
            time.sleep(0.05)

    _before_encoding(monkeypatch, None, wait)
